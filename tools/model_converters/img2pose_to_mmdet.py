#!/usr/bin/env python
"""Convert an original img2pose checkpoint to a self-contained img2pose_mm (mmdet) checkpoint.

The key mapping, the two layouts converted and what travels in the checkpoint:
docs/datasets.md, "Command-line converters".

    python tools/model_converters/img2pose_to_mmdet.py --release-dir img2pose/ img2pose_v1_mmdet.pth
"""
from __future__ import annotations

import argparse
import io
import os
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

DEFAULT_CONFIG = (Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'models'
                  / 'img2pose_r18_fpn.py')
ORIGINAL_CONFIG = Path(__file__).resolve().parents[2] / 'configs' / 'img2pose_r18_original.py'


def _reorder_classes(value: torch.Tensor) -> torch.Tensor:
    """[background, face] -> [face, background] rows."""
    return torch.cat([value[1:], value[:1]])


def _face_pose_rows(value: torch.Tensor) -> torch.Tensor:
    """Rows 6:12 (class 1 = face) of the 2 x 6 pose outputs."""
    if value.shape[0] != 12:
        raise ValueError(f'dof_pred.3 should have 12 outputs (2 classes x 6), got {value.shape[0]}')
    return value[6:12]


# (pattern, replacement, transform) applied in order; the first match wins.
KEY_RULES: List[Tuple[str, str, Optional[Callable]]] = [
    (r'^backbone\.body\.(.+)$', r'backbone.\1', None),
    (r'^backbone\.fpn\.inner_blocks\.(\d+)(?:\.0)?\.(weight|bias)$', r'neck.lateral_convs.\1.conv.\2',
     None),
    (r'^backbone\.fpn\.layer_blocks\.(\d+)(?:\.0)?\.(weight|bias)$', r'neck.fpn_convs.\1.conv.\2',
     None),
    (r'^rpn\.head\.conv(?:\.0\.0)?\.(weight|bias)$', r'rpn_head.rpn_conv.\1', None),
    (r'^rpn\.head\.cls_logits\.(weight|bias)$', r'rpn_head.rpn_cls.\1', None),
    (r'^rpn\.head\.bbox_pred\.(weight|bias)$', r'rpn_head.rpn_reg.\1', None),
    (r'^roi_heads\.box_head\.fc6\.(weight|bias)$', r'roi_head.bbox_head.pose_fcs.0.\1', None),
    (r'^roi_heads\.box_head\.fc7\.(weight|bias)$', r'roi_head.bbox_head.pose_fcs.1.\1', None),
    (r'^roi_heads\.class_head\.fc6\.(weight|bias)$', r'roi_head.bbox_head.cls_fcs.0.\1', None),
    (r'^roi_heads\.class_head\.fc7\.(weight|bias)$', r'roi_head.bbox_head.cls_fcs.1.\1', None),
    (r'^roi_heads\.box_predictor\.dof_pred\.([01])\.(.+)$', r'roi_head.bbox_head.fc_pose.\1.\2', None),
    (r'^roi_heads\.box_predictor\.dof_pred\.3\.(weight|bias)$', r'roi_head.bbox_head.fc_pose.3.\1',
     _face_pose_rows),
    (r'^roi_heads\.class_predictor\.cls_score\.(weight|bias)$', r'roi_head.bbox_head.fc_cls.\1',
     _reorder_classes),
]


def map_key(key: str) -> Tuple[Optional[str], Optional[Callable]]:
    """The mmdet name (and value transform) of an original key; ``(None, None)`` if unknown."""
    for pattern, repl, transform in KEY_RULES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key), transform
    return None, None


def extract_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The original model's state dict, ``module.`` prefixes removed."""
    if isinstance(checkpoint, dict) and 'fpn_model' in checkpoint:
        state = checkpoint['fpn_model']
    elif isinstance(checkpoint, dict) and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state = checkpoint
    else:
        keys = list(checkpoint)[:5] if isinstance(checkpoint, dict) else type(checkpoint)
        raise ValueError(f"not an img2pose checkpoint: expected a dict with 'fpn_model', got {keys}")
    return OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                       for k, v in state.items())


def convert_state_dict(state: Dict[str, torch.Tensor],
                       reference: Optional[Dict[str, torch.Tensor]] = None,
                       extra_state: Optional[Dict[str, torch.Tensor]] = None
                       ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Map an original img2pose state dict to img2pose_mm names.

    Args:
        state: the original state dict (``module.`` already stripped).
        reference: the target model's state dict, to check shapes and report what
            the original does not provide.
        extra_state: entries to add under their img2pose_mm names (the pose coder's
            face model and pose statistics).

    Returns:
        The converted state dict and a list of notes (what was reordered/reduced).

    Raises:
        KeyError: an original key has no mapping.
        ValueError: a converted tensor's shape differs from the target model's.
    """
    converted: Dict[str, torch.Tensor] = OrderedDict()
    notes: List[str] = []
    unknown = []
    for key, value in state.items():
        new_key, transform = map_key(key)
        if new_key is None:
            unknown.append(key)
            continue
        if transform is not None:
            value = transform(value)
            notes.append(f'{key} -> {new_key}: {transform.__doc__.strip()}')
        converted[new_key] = value.clone()
    if unknown:
        raise KeyError(f'{len(unknown)} original keys have no mapping: {unknown[:10]}')
    # torchvision's FrozenBatchNorm2d has no batch counter; mmdet's BatchNorm does
    for key in list(converted):
        if key.endswith('.running_var'):
            counter = key[:-len('running_var')] + 'num_batches_tracked'
            converted.setdefault(counter, torch.tensor(0, dtype=torch.long))
    converted.update(extra_state or {})
    if reference is not None:
        bad = [f'{k}: {tuple(v.shape)} vs model {tuple(reference[k].shape)}'
               for k, v in converted.items() if k in reference and v.shape != reference[k].shape]
        if bad:
            raise ValueError('shape mismatch against the config model:\n  ' + '\n  '.join(bad))
        extra = [k for k in converted if k not in reference]
        if extra:
            raise KeyError(f'converted keys missing from the config model: {extra[:10]}')
        missing = [k for k in reference if k not in converted]
        if missing:
            notes.append(f'{len(missing)} model keys not in the original: {missing[:10]}')
    return converted, notes


def build_reference_state_dict(config: str) -> Dict[str, torch.Tensor]:
    """State dict of the model described by an img2pose_mm config."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import img2pose_mm  # noqa: F401  (registers the components)
    init_default_scope('mmdet')
    cfg = Config.fromfile(config)
    return MODELS.build(cfg.model).state_dict()


RELEASE_FILES = dict(
    checkpoint=('img2pose_v1.pth', 'models/img2pose_v1.pth'),
    pose_mean=('WIDER_train_pose_mean_v1.npy', 'models/WIDER_train_pose_mean_v1.npy'),
    pose_stddev=('WIDER_train_pose_stddev_v1.npy', 'models/WIDER_train_pose_stddev_v1.npy'),
    reference_points=('pose_references/reference_3d_68_points_trans.npy',
                      'reference_3d_68_points_trans.npy',
                      '../pose_references/reference_3d_68_points_trans.npy'),
    reference_points_5=('pose_references/reference_3d_5_points_trans.npy',
                        'reference_3d_5_points_trans.npy',
                        '../pose_references/reference_3d_5_points_trans.npy'),
)


def find_release_files(release_dir: str) -> Dict[str, str]:
    """The original release's files under ``release_dir`` (the img2pose checkout or its
    ``models/`` folder): checkpoint, pose statistics and reference points.

    Raises:
        FileNotFoundError: naming every file that is missing and where it was looked for.
    """
    found, missing = {}, []
    for name, candidates in RELEASE_FILES.items():
        paths = [os.path.normpath(os.path.join(release_dir, c)) for c in candidates]
        hit = next((p for p in paths if os.path.isfile(p)), None)
        if hit is None:
            missing.append(f'{name} (looked for {", ".join(paths)})')
        else:
            found[name] = hit
    if missing:
        raise FileNotFoundError(f'{release_dir} lacks release files: ' + '; '.join(missing))
    return found


def coder_state(face_model: dict, pose_mean: Optional[str], pose_stddev: Optional[str],
                prefix: str = 'roi_head.bbox_head.bbox_coder.') -> Dict[str, torch.Tensor]:
    """The pose coder's state for the original release: its pose statistics and its face
    model (the :class:`~img2pose_mm.structures.FaceModel` arguments ``face_model``)."""
    from img2pose_mm.task_modules import PoseBBoxCoder
    coder = PoseBBoxCoder(face_model=face_model, pose_mean=pose_mean, pose_stddev=pose_stddev)
    return OrderedDict((prefix + k, v) for k, v in coder.state_dict().items())


def convert(src: str, dst: str, config: Optional[str] = str(DEFAULT_CONFIG),
            pose_mean: Optional[str] = None, pose_stddev: Optional[str] = None,
            reference_points: Optional[str] = None, reference_points_5: Optional[str] = None,
            rotation_method: str = 'svd') -> List[str]:
    """Convert ``src`` to a self-contained ``dst`` (written atomically); returns the notes.

    What ``dst`` carries besides the weights: docs/datasets.md. Missing statistics or
    reference points fall back to mean 0 / std 1 and the packaged face, with a note.
    """
    checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    reference = build_reference_state_dict(config) if config else None
    notes: List[str] = []
    for what, path in (('pose_mean', pose_mean), ('pose_stddev', pose_stddev),
                       ('reference_points', reference_points),
                       ('reference_points_5', reference_points_5)):
        if path is None:
            notes.append(f'no {what} given: the checkpoint uses the default (its outputs will '
                         'not be the original\'s)')
    # the original's face model: its reference points, the integer box centre of its decode
    face_model = dict(rotation_method=rotation_method, integer_box_centre=True,
                      reference_points=reference_points, reference_points_5=reference_points_5)
    state, map_notes = convert_state_dict(extract_state_dict(checkpoint), reference,
                                          coder_state(face_model, pose_mean, pose_stddev))
    notes += map_notes
    from mmengine.config import Config
    # the config with its bases merged, as mmengine's runner saves it
    cfg_text = Config.fromfile(str(ORIGINAL_CONFIG)).pretty_text if ORIGINAL_CONFIG.is_file() else None
    meta = dict(converted_from=os.path.abspath(src), source='img2pose (torchvision layout)',
                cfg=cfg_text,
                dataset_meta=dict(classes=('face',), palette=[(0, 255, 0)]),
                face_model=face_model,
                pose_mean_path=pose_mean and os.path.abspath(pose_mean),
                pose_stddev_path=pose_stddev and os.path.abspath(pose_stddev))
    from img2pose_mm.utils import atomic_write
    buf = io.BytesIO()
    torch.save(dict(state_dict=state, meta=meta), buf)
    atomic_write(dst, buf.getvalue())
    return notes


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description='Convert the original img2pose release to a self-contained img2pose_mm '
                    'checkpoint (weights, pose statistics and face model).')
    parser.add_argument('paths', nargs='+', metavar='[SRC] DST',
                        help="the original checkpoint ({'fpn_model': state_dict}; optional "
                             'with --release-dir) and the output file')
    parser.add_argument('--release-dir',
                        help='folder of the original release (img2pose checkout or its models/ '
                             'folder): img2pose_v1.pth, WIDER_train_pose_{mean,stddev}_v1.npy, '
                             'pose_references/*.npy')
    parser.add_argument('--pose-mean', help='WIDER_train_pose_mean_v1.npy')
    parser.add_argument('--pose-stddev', help='WIDER_train_pose_stddev_v1.npy')
    parser.add_argument('--reference-points-68', help='reference_3d_68_points_trans.npy')
    parser.add_argument('--reference-points-5', help='reference_3d_5_points_trans.npy')
    parser.add_argument('--rotation-method', choices=('svd', 'markley'), default='svd',
                        help="nearest rotation of the decode: 'svd' = what the original gives "
                             "when run with scipy >= 1.16 today; 'markley' = the scipy of "
                             "2021 behind the paper's numbers")
    parser.add_argument('--config', default=str(DEFAULT_CONFIG),
                        help='img2pose_mm config whose model checks the shapes')
    args = parser.parse_args(argv)
    if len(args.paths) > 2 or (len(args.paths) == 1 and not args.release_dir):
        parser.error('give SRC DST, or --release-dir DIR and DST')
    files = dict.fromkeys(RELEASE_FILES)
    try:
        if args.release_dir:
            files.update(find_release_files(args.release_dir))
        given = dict(pose_mean=args.pose_mean, pose_stddev=args.pose_stddev,
                     reference_points=args.reference_points_68,
                     reference_points_5=args.reference_points_5)
        files.update({k: v for k, v in given.items() if v is not None})
        src = args.paths[0] if len(args.paths) == 2 else files['checkpoint']
        notes = convert(src, args.paths[-1], args.config, files['pose_mean'],
                        files['pose_stddev'], files['reference_points'],
                        files['reference_points_5'], args.rotation_method)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f'conversion failed: {exc}', file=sys.stderr)
        return 1
    for note in notes:
        print(f'note: {note}')
    print(f'saved {args.paths[-1]}: python tools/test.py configs/img2pose_r18_original.py '
          f'{args.paths[-1]}  or  Img2Pose(checkpoint={args.paths[-1]!r})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
