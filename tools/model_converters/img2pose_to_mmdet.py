#!/usr/bin/env python
"""Convert an original img2pose checkpoint to an img2pose_mm (mmdet) checkpoint.

The original file is ``{'fpn_model': state_dict}`` with torchvision key names
(possibly prefixed by ``module.``). Every original key is mapped; shapes are checked
against the model built from ``--config``; nothing is dropped silently. Two
layouts differ and are converted explicitly:

* classifier rows: torchvision orders classes ``[background, face]``, mmdet
  ``[face, background]``;
* pose outputs: the original predicts 6 numbers per class including background
  (12); mmdet's class-specific regression has only the face's 6. The 6 background
  outputs (never trained: the pose loss only reads the face class) are reported.

Example::

    python tools/model_converters/img2pose_to_mmdet.py img2pose_v1.pth img2pose_r18_mmdet.pth \\
        --pose-mean WIDER_train_pose_mean_v1.npy --pose-stddev WIDER_train_pose_stddev_v1.npy

Evaluate converted weights with ``rotation_method='markley'`` (see
``configs/img2pose_r18_original.py``) to reproduce the original's numbers.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

DEFAULT_CONFIG = (Path(__file__).resolve().parents[2] / 'configs' / '_base_' / 'models'
                  / 'img2pose_r18_fpn.py')


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
    (r'^roi_heads\.box_head\.fc6\.(weight|bias)$', r'roi_head.bbox_head.reg_fcs.0.\1', None),
    (r'^roi_heads\.box_head\.fc7\.(weight|bias)$', r'roi_head.bbox_head.reg_fcs.1.\1', None),
    (r'^roi_heads\.class_head\.fc6\.(weight|bias)$', r'roi_head.bbox_head.cls_fcs.0.\1', None),
    (r'^roi_heads\.class_head\.fc7\.(weight|bias)$', r'roi_head.bbox_head.cls_fcs.1.\1', None),
    (r'^roi_heads\.box_predictor\.dof_pred\.([01])\.(.+)$', r'roi_head.bbox_head.fc_reg.\1.\2', None),
    (r'^roi_heads\.box_predictor\.dof_pred\.3\.(weight|bias)$', r'roi_head.bbox_head.fc_reg.3.\1',
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
        extra_state: entries to add under their img2pose_mm names (the pose
            statistics, kept as buffers by the head).

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


def convert(src: str, dst: str, config: Optional[str] = str(DEFAULT_CONFIG),
            pose_mean: Optional[str] = None, pose_stddev: Optional[str] = None) -> List[str]:
    """Convert ``src`` to ``dst`` (written atomically); returns the conversion notes."""
    checkpoint = torch.load(src, map_location='cpu', weights_only=True)
    reference = build_reference_state_dict(config) if config else None
    meta = dict(converted_from=os.path.abspath(src), source='img2pose (torchvision layout)',
                rotation_method='markley')
    stats = {}
    for name, path in (('pose_mean', pose_mean), ('pose_stddev', pose_stddev)):
        if path is not None:
            values = np.load(path).astype(np.float64).reshape(-1)
            if values.shape != (6,):
                raise ValueError(f'{path}: {name} must hold 6 numbers, got {values.shape}')
            meta[f'{name}_path'] = os.path.abspath(path)
            meta[name] = values.tolist()
            # the head keeps the statistics as buffers: the checkpoint is self-contained
            stats[f'roi_head.bbox_head.{name}'] = torch.tensor(values, dtype=torch.float32)
    state, notes = convert_state_dict(extract_state_dict(checkpoint), reference, stats)
    out_dir = os.path.dirname(os.path.abspath(dst))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix='.part')
    os.close(fd)
    try:
        torch.save(dict(state_dict=state, meta=meta), tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return notes


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description='Convert img2pose weights to img2pose_mm.')
    parser.add_argument('src', help="original checkpoint ({'fpn_model': state_dict})")
    parser.add_argument('dst', help='output mmdet checkpoint')
    parser.add_argument('--config', default=str(DEFAULT_CONFIG),
                        help='img2pose_mm config whose model checks the shapes')
    parser.add_argument('--pose-mean', help='the original WIDER_train_pose_mean_v1.npy')
    parser.add_argument('--pose-stddev', help='the original WIDER_train_pose_stddev_v1.npy')
    args = parser.parse_args(argv)
    try:
        notes = convert(args.src, args.dst, args.config, args.pose_mean, args.pose_stddev)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f'conversion failed: {exc}', file=sys.stderr)
        return 1
    for note in notes:
        print(f'note: {note}')
    print(f'saved {args.dst}')
    print("evaluate it with model.roi_head.bbox_head.bbox_coder.rotation_method='markley' "
          'and the pose mean/stddev above to reproduce the original numbers')
    return 0


if __name__ == '__main__':
    sys.exit(main())
