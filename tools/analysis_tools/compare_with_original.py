#!/usr/bin/env python
"""Run the original img2pose and img2pose_mm on the same images and compare them.

The original is built at run time from *your own* checkout of
https://github.com/vitoralbiero/img2pose (``--original-repo``): its modules are imported
from there (nothing of it is copied into this project) with a few run-time shims for
today's stack (see :func:`import_original`). Its weights are converted with
``tools/model_converters/img2pose_to_mmdet.py`` and both models run on the same images
at their native size (scale factor exactly 1 on both sides: the original with
``min_size = min(h, w)``, ``max_size = max(h, w)``; img2pose_mm with
``PoseResize(scale_factor=1.0)``), 1000 test proposals and score threshold 0.05::

    # seeded random weights in the original's layout (no release files needed)
    python tools/analysis_tools/compare_with_original.py --original-repo ~/img2pose
    # the real release
    python tools/analysis_tools/compare_with_original.py --original-repo ~/img2pose \\
        --release-dir ~/img2pose
    # store the original's detections as the fixture of tests/test_models/test_original_fidelity.py
    python tools/analysis_tools/compare_with_original.py --original-repo ~/img2pose \\
        --write-fixture tests/data/original

Seeded weights (``--seed``, default 0) come from
:func:`img2pose_mm.testing.original_state_dict`; the pose statistics are then
:data:`img2pose_mm.testing.SEEDED_POSE_MEAN` / ``SEEDED_POSE_STDDEV`` (a frontal face
centred in its box at box-local depth 4.5, std (0.25, 0.35, 0.2, 0.1, 0.1, 0.6)) and both
models get img2pose_mm's packaged reference face (``--checkout-references``: the
checkout's ``pose_references/*.npy`` instead). The fixture is written with the packaged
face so that the test reproduces it without any file of the original (its reference
points are CC BY-NC data, not ours to commit): it checks the pipeline and the rules, not
the face.

Detections are paired one-to-one and counted as agreeing within box 1 px (largest
coordinate difference), score 1e-4, rotation 1e-4 rad (geodesic angle) and translation
1e-4 (relative to the original's distance) (:mod:`img2pose_mm.testing.compare`).

``--labels JSONL`` instead runs the original's dataset labelling
(``utils/json_loader.py`` + ``convert_json_list_to_lmdb.py``) on a JSON-lines dataset with
img2pose_mm's packaged reference face, and ``--write-fixture`` stores its labels.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from img2pose_mm.testing import (  # noqa: E402
    SAMPLE_PHOTOS,
    SEEDED_POSE_MEAN,
    SEEDED_POSE_STDDEV,
    as_rgb,
    native_size_pipeline,
    sample_photos,
    save_original_checkpoint,
)
from img2pose_mm.testing.compare import DEFAULT_TOLERANCES, QUANTITIES, match_detections  # noqa: E402

#: Top-level module names of the original checkout (they may clash with others').
ORIGINAL_MODULES = ('img2pose', 'models', 'generalized_rcnn', 'rpn', 'losses', 'model_loader',
                    'utils', 'convert_json_list_to_lmdb')
FIXTURE_NAME = 'detections_r18_seed{seed}.npz'


def _load_converter():
    path = REPO / 'tools' / 'model_converters' / 'img2pose_to_mmdet.py'
    spec = importlib.util.spec_from_file_location('img2pose_to_mmdet', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------
# the original, imported from the user's checkout
# ---------------------------------------------------------------------------------------
def _resnet_fpn_backbone_offline(backbone_name, pretrained=False, norm_layer=None,
                                 trainable_layers=3, **kwargs):
    """torchvision's ``resnet_fpn_backbone`` under the original's (torchvision 0.8) call
    ``resnet_fpn_backbone(name, pretrained=True)``: today's function is keyword-only and
    ``pretrained=True`` would download ImageNet weights. The weights are loaded from the
    checkpoint afterwards anyway, so none are fetched."""
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.ops import misc
    return resnet_fpn_backbone(backbone_name=backbone_name, weights=None,
                               norm_layer=norm_layer or misc.FrozenBatchNorm2d,
                               trainable_layers=trainable_layers, **kwargs)


def _smooth_l1_sum(input, target, beta: float = 1.0 / 9, size_average: bool = True):
    """torchvision < 0.13's ``det_utils.smooth_l1_loss`` (the original's RPN loss), gone
    from today's torchvision: the Huber-like smooth L1, summed unless ``size_average``."""
    import torch.nn.functional as F
    return F.smooth_l1_loss(input, target, beta=beta,
                            reduction='mean' if size_average else 'sum')


def _det_utils_with_smooth_l1(det_utils: types.ModuleType) -> types.ModuleType:
    """A view of torchvision's ``detection._utils`` with ``smooth_l1_loss`` added, for the
    original's ``rpn`` module only (torchvision itself is left as it is)."""
    view = types.ModuleType(det_utils.__name__)
    view.__dict__.update({k: v for k, v in vars(det_utils).items() if not k.startswith('__')})
    view.smooth_l1_loss = _smooth_l1_sum
    return view


def _stub_module(name: str, **attrs) -> types.ModuleType:
    import importlib.machinery
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    module.__file__ = f'<img2pose_mm shim for {name}>'
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    return module


def _read_list_file(path, delimiter=' ', header=None):
    """The one use the original makes of ``pandas.read_csv``: a list of paths, one per
    line, read back as an ``(N, 1)`` array."""
    with open(path) as f:
        rows = [line.rstrip('\n').split(delimiter) for line in f if line.strip()]
    return np.array(rows, dtype=object)


def _missing_dependency_shims() -> Dict[str, types.ModuleType]:
    """Stand-ins for the original's requirements that this stack may lack: ``pandas``
    (only ``read_csv`` of a list file) and ``msgpack`` (LMDB record encoding; pickle is an
    equivalent lossless encoding of the same Python values)."""
    import pickle

    import torchvision  # noqa: F401  (imported before any stand-in exists: torch probes
    import torchvision.datasets  # noqa: F401  optional packages such as pandas on import)
    shims = {}
    for name, attrs in (('pandas', dict(read_csv=_read_list_file)),
                        ('msgpack', dict(dumps=pickle.dumps, loads=pickle.loads))):
        try:
            importlib.import_module(name)
        except ImportError:
            shims[name] = _stub_module(name, **attrs)
    return shims


@contextlib.contextmanager
def _original_import_context(repo: Path) -> Iterator[None]:
    """``sys.path``/``sys.modules`` set up to import the original's top-level modules from
    ``repo`` (its ``utils`` folder has no ``__init__.py``: it is bound explicitly so that
    no other ``utils`` wins), restored afterwards (the imported modules stay usable)."""
    saved = {name: sys.modules.pop(name) for name in list(sys.modules)
             if name.split('.')[0] in ORIGINAL_MODULES}
    shims = _missing_dependency_shims()
    sys.modules.update(shims)
    utils = types.ModuleType('utils')
    utils.__path__ = [str(repo / 'utils')]
    utils.__file__ = str(repo / 'utils')
    sys.modules['utils'] = utils
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        sys.path.remove(str(repo))
        for name in list(sys.modules):
            if name.split('.')[0] in ORIGINAL_MODULES or name in shims:
                del sys.modules[name]
        sys.modules.update(saved)


def import_original(repo: str, *names: str) -> Dict[str, types.ModuleType]:
    """The original's modules ``names`` (e.g. ``'img2pose'``, ``'utils.json_loader'``)
    imported from the checkout ``repo``, with the run-time shims:

    * ``img2pose.resnet_fpn_backbone`` -> :func:`_resnet_fpn_backbone_offline` (the
      original calls torchvision 0.8's positional signature with ``pretrained=True``);
    * ``pandas`` / ``msgpack`` stand-ins where they are not installed
      (:func:`_missing_dependency_shims`);
    * the original's ``rpn`` module sees torchvision's ``detection._utils`` with the
      ``smooth_l1_loss`` that torchvision 0.13 removed (training only).

    Nothing in the checkout is modified.
    """
    root = Path(repo).expanduser().resolve()
    if not (root / 'img2pose.py').is_file() or not (root / 'utils' / 'pose_operations.py').is_file():
        raise FileNotFoundError(f'{root} is not an img2pose checkout (no img2pose.py / '
                                'utils/pose_operations.py)')
    modules = {}
    with _original_import_context(root), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for name in names:
            modules[name] = importlib.import_module(name)
        if 'img2pose' in modules:
            modules['img2pose'].resnet_fpn_backbone = _resnet_fpn_backbone_offline
        rpn = sys.modules.get('rpn')
        if rpn is not None and not hasattr(rpn.det_utils, 'smooth_l1_loss'):
            rpn.det_utils = _det_utils_with_smooth_l1(rpn.det_utils)
    return modules


def original_commit(repo: str) -> str:
    """The checkout's commit (``unknown`` when git cannot tell)."""
    try:
        return subprocess.run(['git', '-C', str(repo), 'rev-parse', 'HEAD'], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


class OriginalDetector:
    """The original ``img2poseModel`` (depth 18) on the CPU, run at native size."""

    def __init__(self, repo: str, state: Dict[str, torch.Tensor], pose_mean: np.ndarray,
                 pose_stddev: np.ndarray, points_68: np.ndarray, points_5: np.ndarray,
                 proposals: int = 1000, score_thr: float = 0.05, frozen_bn_eps=None):
        mod = import_original(repo, 'img2pose')['img2pose']
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            self.wrapper = mod.img2poseModel(
                18, 800, 1333, device=torch.device('cpu'), pose_mean=pose_mean,
                pose_stddev=pose_stddev, threed_68_points=points_68, threed_5_points=points_5,
                rpn_post_nms_top_n_test=proposals)
        self.model = self.wrapper.fpn_model_without_ddp
        net = self.net = getattr(self.model, 'module', self.model)
        wanted = self.model.state_dict()
        prefix = 'module.' if next(iter(wanted)).startswith('module.') else ''
        plain = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
        self.model.load_state_dict({prefix + k: v for k, v in plain.items()}, strict=True)
        net.roi_heads.score_thresh = float(score_thr)
        if frozen_bn_eps is not None:         # e.g. 0.0: torchvision 0.8's FrozenBatchNorm2d
            for module in net.modules():
                if type(module).__name__ == 'FrozenBatchNorm2d':
                    module.eps = float(frozen_bn_eps)
        self.wrapper.evaluate()

    def __call__(self, rgb: np.ndarray) -> Dict[str, np.ndarray]:
        """Detections of an RGB uint8 image at its own size (float32 numpy)."""
        from torchvision.transforms.functional import to_tensor
        h, w = rgb.shape[:2]
        self.net.set_max_min_size(max(h, w), min(h, w))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            out = self.wrapper.predict([to_tensor(rgb)])[0]
        return dict(boxes=out['boxes'].float().numpy(), scores=out['scores'].float().numpy(),
                    poses=out['dofs'].float().numpy().reshape(-1, 6))


# ---------------------------------------------------------------------------------------
# img2pose_mm
# ---------------------------------------------------------------------------------------
class OursDetector:
    """``Img2Pose(checkpoint=converted)`` (no config) at native size."""

    def __init__(self, checkpoint: str, proposals: int = 1000, score_thr: float = 0.05):
        from img2pose_mm.apis import Img2Pose
        self.api = Img2Pose(checkpoint=checkpoint, device='cpu', score_threshold=score_thr,
                            cfg_options={'test_dataloader.dataset.pipeline':
                                         native_size_pipeline(),
                                         'model.test_cfg.rpn.max_per_img': proposals})

    def __call__(self, rgb: np.ndarray) -> Dict[str, np.ndarray]:
        faces = self.api.detect_faces(rgb)
        return dict(boxes=np.array([f['box'] for f in faces], np.float32).reshape(-1, 4),
                    scores=np.array([f['confidence'] for f in faces], np.float32),
                    poses=np.array([f['pose'] for f in faces], np.float32).reshape(-1, 6))


# ---------------------------------------------------------------------------------------
# weights and images
# ---------------------------------------------------------------------------------------
def resolve_weights(args, workdir: Path) -> Dict[str, object]:
    """The original checkpoint, statistics and reference points of this run: the release
    files given, or seeded weights with :data:`SEEDED_POSE_MEAN`/``STDDEV`` and the
    checkout's ``pose_references``."""
    converter = _load_converter()
    files = dict(checkpoint=args.original_checkpoint, pose_mean=args.pose_mean,
                 pose_stddev=args.pose_stddev, reference_points=args.reference_points_68,
                 reference_points_5=args.reference_points_5)
    if args.release_dir:
        found = converter.find_release_files(args.release_dir)
        files.update({k: v for k, v in found.items() if files.get(k) is None})
    seeded = files['checkpoint'] is None
    if seeded:
        files['checkpoint'] = save_original_checkpoint(
            str(workdir / f'img2pose_seed{args.seed}.pth'), args.seed, module_prefix=True)
        for key, value in (('pose_mean', SEEDED_POSE_MEAN), ('pose_stddev', SEEDED_POSE_STDDEV)):
            if files[key] is None:
                files[key] = str(workdir / f'{key}.npy')
                np.save(files[key], value)
    from img2pose_mm.structures.reference_face import DEFAULT_5, DEFAULT_68
    checkout = Path(args.original_repo).expanduser() / 'pose_references'
    for key, name, packaged in (
            ('reference_points', 'reference_3d_68_points_trans.npy', DEFAULT_68),
            ('reference_points_5', 'reference_3d_5_points_trans.npy', DEFAULT_5)):
        if files[key] is None:
            files[key] = str(checkout / name if args.checkout_references else packaged)
    missing = [f'{k}: {v}' for k, v in files.items() if not os.path.isfile(v)]
    if missing:
        raise FileNotFoundError('missing input files: ' + '; '.join(missing))
    from img2pose_mm.structures.reference_face import DEFAULT_68 as packaged_68
    packaged = os.path.samefile(files['reference_points'], packaged_68)
    return dict(files=files, seeded=seeded, packaged_face=packaged)


def load_images(paths: Optional[Sequence[str]],
                photos: Sequence[str] = SAMPLE_PHOTOS) -> List[Tuple[str, np.ndarray]]:
    """``(name, RGB uint8)`` of ``paths`` or of the scikit-image ``photos``; grey images
    get their channel repeated (PIL's ``convert('RGB')``) once, for both models."""
    if not paths:
        return sample_photos(photos)
    from PIL import Image
    images = []
    for path in paths:
        with Image.open(path) as img:
            images.append((Path(path).stem, as_rgb(np.asarray(img.convert('RGB')))))
    return images


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def format_table(rows: List[Dict[str, object]]) -> str:
    """Per-image counts, share within all tolerances, per-quantity shares and maxima."""
    head = (f'{"image":<12}{"size":>10}{"orig":>6}{"ours":>6}{"within":>8}'
            + ''.join(f'{q + " ok":>15}' for q in QUANTITIES)
            + ''.join(f'{"max " + q:>17}' for q in QUANTITIES))
    lines = [head, '-' * len(head)]
    for row in rows:
        m = row['match']
        pairs = max(m['num_pairs'], 1)
        lines.append(
            f'{row["name"]:<12}{row["size"]:>10}{m["num_ref"]:>6}{m["num_ours"]:>6}'
            f'{m["share_within"]:>8.2%}'
            + ''.join(f'{m["within"][q] / pairs:>15.2%}' for q in QUANTITIES)
            + ''.join(f'{m["max"][q]:>17.3g}' for q in QUANTITIES))
    total_ref = sum(r['match']['num_ref'] for r in rows)
    total_ours = sum(r['match']['num_ours'] for r in rows)
    total_within = sum(r['match']['num_within'] for r in rows)
    lines.append('-' * len(head))
    lines.append(f'{"all":<12}{"":>10}{total_ref:>6}{total_ours:>6}'
                 f'{total_within / max(total_ref, total_ours, 1):>8.2%}')
    tol = ', '.join(f'{q} {DEFAULT_TOLERANCES[q]:g}' for q in QUANTITIES)
    lines.append(f'tolerances: {tol} (box: largest coordinate difference in px; rotation: '
                 'geodesic angle in rad; translation: |dt| / |t_original|)')
    return '\n'.join(lines)


def stack_versions() -> Dict[str, str]:
    import scipy
    import torchvision
    return dict(python=platform.python_version(), torch=torch.__version__,
                torchvision=torchvision.__version__, scipy=scipy.__version__,
                numpy=np.__version__)


def write_detections_fixture(out_dir: Path, seed: int, names: List[str],
                             detections: List[Dict[str, np.ndarray]], settings: Dict) -> Path:
    """The original's detections as float32 arrays, one group per image, plus settings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = dict(image_names=np.array(names), seed=np.array(seed),
                  settings=np.array(json.dumps(settings, sort_keys=True)))
    for name, det in zip(names, detections):
        for key in ('boxes', 'scores', 'poses'):
            arrays[f'{name}/{key}'] = det[key].astype(np.float32)
    path = out_dir / FIXTURE_NAME.format(seed=seed)
    np.savez_compressed(path, **arrays)
    return path


def run_detections(args) -> int:
    with tempfile.TemporaryDirectory(prefix='img2pose_compare_') as tmp:
        workdir = Path(tmp)
        weights = resolve_weights(args, workdir)
        files = weights['files']
        converter = _load_converter()
        converted = str(workdir / 'converted.pth')
        converter.convert(files['checkpoint'], converted, pose_mean=files['pose_mean'],
                          pose_stddev=files['pose_stddev'],
                          reference_points=files['reference_points'],
                          reference_points_5=files['reference_points_5'],
                          rotation_method=args.rotation_method)
        state = torch.load(files['checkpoint'], map_location='cpu', weights_only=True)
        state = state['fpn_model'] if 'fpn_model' in state else state
        original = OriginalDetector(
            args.original_repo, state, np.load(files['pose_mean']), np.load(files['pose_stddev']),
            np.load(files['reference_points']), np.load(files['reference_points_5']),
            proposals=args.proposals, score_thr=args.score_thr, frozen_bn_eps=args.frozen_bn_eps)
        ours = OursDetector(converted, proposals=args.proposals, score_thr=args.score_thr)
        images = load_images(args.images, args.photos)
        if args.resize:
            from PIL import Image
            h, w = args.resize
            images = [(name, np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR)))
                      for name, rgb in images]
        rows, originals = [], []
        for name, rgb in images:
            t0 = time.perf_counter()
            ref = original(rgb)
            t1 = time.perf_counter()
            mine = ours(rgb)
            t2 = time.perf_counter()
            match = match_detections(ref, mine)
            rows.append(dict(name=name, size=f'{rgb.shape[1]}x{rgb.shape[0]}', match=match,
                             seconds=(t1 - t0, t2 - t1)))
            originals.append(ref)
            print(f'{name}: original {len(ref["scores"])} detections in {t1 - t0:.1f} s, '
                  f'img2pose_mm {len(mine["scores"])} in {t2 - t1:.1f} s', file=sys.stderr)
        speed_table = None
        if args.speed:
            speed_table = run_speed(original, ours, images, args.speed_repeats,
                                    train=not args.no_train_speed,
                                    train_batch=args.train_batch)
    source = f'seeded random, seed {args.seed}' if weights['seeded'] else files['checkpoint']
    face = 'packaged face' if weights['packaged_face'] else files['reference_points']
    print(f'original: {args.original_repo} @ {original_commit(args.original_repo)}; '
          f'weights: {source}; reference points: {face}; '
          f'rotation method {args.rotation_method}; {args.proposals} proposals; '
          f'score > {args.score_thr}; native size, scale 1')
    print(format_table(rows))
    if speed_table:
        print(speed_table)
    if args.write_fixture:
        if not (weights['seeded'] and weights['packaged_face']):
            print('--write-fixture stores seeded runs with the packaged face only (the test '
                  'must reproduce them without the original\'s files)', file=sys.stderr)
            return 1
        settings = dict(seed=args.seed, depth=18, proposals=args.proposals,
                        score_thr=args.score_thr, rotation_method=args.rotation_method,
                        pose_mean=SEEDED_POSE_MEAN.tolist(), pose_stddev=SEEDED_POSE_STDDEV.tolist(),
                        reference_points='img2pose_mm packaged face',
                        resize='native size (scale factor 1)', images=[n for n, _ in images],
                        original_commit=original_commit(args.original_repo), **stack_versions())
        path = write_detections_fixture(Path(args.write_fixture), args.seed,
                                        [n for n, _ in images], originals, settings)
        print(f'wrote {path} ({path.stat().st_size / 1024:.0f} KiB)')
    worst = min(r['match']['share_within'] for r in rows)
    counts_equal = all(r['match']['num_ref'] == r['match']['num_ours'] for r in rows)
    return 0 if counts_equal and worst >= args.min_share else 2


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--original-repo',
                        help='your checkout of github.com/vitoralbiero/img2pose')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights')
    parser.add_argument('--original-checkpoint', help="a real original checkpoint "
                        "({'fpn_model': ...}) instead of seeded weights")
    parser.add_argument('--release-dir', help='folder of the original release files '
                        '(img2pose_v1.pth, WIDER_train_pose_{mean,stddev}_v1.npy, ...)')
    parser.add_argument('--pose-mean')
    parser.add_argument('--pose-stddev')
    parser.add_argument('--reference-points-68')
    parser.add_argument('--reference-points-5')
    parser.add_argument('--checkout-references', action='store_true',
                        help="seeded runs: give both models the checkout's pose_references "
                             "instead of img2pose_mm's packaged face")
    parser.add_argument('--rotation-method', choices=('svd', 'markley'), default='svd',
                        help="img2pose_mm's nearest rotation ('svd' = scipy >= 1.16)")
    parser.add_argument('--images', nargs='+', help='image files (default: the scikit-image '
                        'photos ' + ', '.join(SAMPLE_PHOTOS) + ')')
    parser.add_argument('--photos', nargs='+', default=list(SAMPLE_PHOTOS),
                        metavar='NAME', help='scikit-image photos to use without --images')
    parser.add_argument('--proposals', type=int, default=1000, help='RPN test proposals')
    parser.add_argument('--score-thr', type=float, default=0.05)
    parser.add_argument('--frozen-bn-eps', type=float, default=None,
                        help="set the original's FrozenBatchNorm2d eps (0 = torchvision "
                             '0.8, the stack the release was trained on; default: today\'s)')
    parser.add_argument('--speed', action='store_true',
                        help='also time both models per stage (preprocess, backbone+FPN, '
                             'RPN, RoI features, heads, decode+NMS; a training step: '
                             'forward+loss, backward, optimizer)')
    parser.add_argument('--speed-repeats', type=int, default=5,
                        help='timed rounds over the images (after one warm-up round); '
                             'the tables show medians')
    parser.add_argument('--train-batch', type=int, default=2,
                        help='images per training step in --speed')
    parser.add_argument('--resize', type=int, nargs=2, metavar=('H', 'W'),
                        help='resize every image to H x W (bilinear, before both models)')
    parser.add_argument('--no-train-speed', action='store_true',
                        help='--speed without the training step')
    parser.add_argument('--min-share', type=float, default=0.99,
                        help='exit status 2 when an image agrees less than this')
    parser.add_argument('--write-fixture', metavar='DIR',
                        help='store the original\'s outputs (numbers only) under DIR')
    parser.add_argument('--labels', metavar='JSONL',
                        help="run the original's dataset labelling on a JSON-lines dataset "
                             'instead of comparing detections')
    parser.add_argument('--make-labels-dataset', metavar='DIR',
                        help='write the labelling fixture dataset (images + faces.jsonl, '
                             'img2pose_mm.testing.label_fixture) under DIR and exit')
    args = parser.parse_args(argv)
    if args.original_repo is None and not args.make_labels_dataset:
        parser.error('--original-repo is required')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.make_labels_dataset:
        return make_labels_dataset(args.make_labels_dataset)
    if args.labels:
        return run_labels(args)
    return run_detections(args)


# ---------------------------------------------------------------------------------------
# speed: per-stage timing of both models
# ---------------------------------------------------------------------------------------
INFERENCE_STAGES = ('preprocess', 'backbone+FPN', 'RPN', 'RoI features', 'heads',
                    'decode+NMS')
TRAIN_STAGES = ('forward+loss', 'backward', 'optimizer')


class StageTimer:
    """Wall time per named stage, measured by wrapping methods of module instances (the
    wrapped object's own code runs unchanged; nothing is re-implemented)."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self._wrapped: List[Tuple[object, str]] = []

    def wrap(self, obj, method: str, stage: str) -> None:
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

        setattr(obj, method, timed)
        self._wrapped.append((obj, method))

    def reset(self) -> None:
        self.seconds = {}

    def unwrap(self) -> None:
        for obj, method in self._wrapped:
            delattr(obj, method)
        self._wrapped = []


def _time_original_inference(original: OriginalDetector, timer: StageTimer) -> None:
    net = original.net
    roi = net.roi_heads
    timer.wrap(net.transform, 'forward', 'preprocess')
    timer.wrap(net.backbone, 'forward', 'backbone+FPN')
    timer.wrap(net.rpn, 'forward', 'RPN')
    for module in (roi.box_roi_pool, roi.class_roi_pool):      # the original pools twice
        timer.wrap(module, 'forward', 'RoI features')
    for module in (roi.box_head, roi.box_predictor, roi.class_head, roi.class_predictor):
        timer.wrap(module, 'forward', 'heads')
    timer.wrap(roi, 'postprocess_detections', 'decode+NMS')


def _time_ours_inference(ours: OursDetector, timer: StageTimer) -> None:
    model = ours.api.model
    roi = model.roi_head
    timer.wrap(model.data_preprocessor, 'forward', 'preprocess')
    timer.wrap(model, 'extract_feat', 'backbone+FPN')
    timer.wrap(model.rpn_head, 'predict', 'RPN')
    timer.wrap(roi.bbox_roi_extractor, 'forward', 'RoI features')
    for method in ('forward_cls', 'forward_pose'):    # the two branches (test: no forward)
        timer.wrap(roi.bbox_head, method, 'heads')
    timer.wrap(roi.bbox_head, 'predict_by_feat', 'decode+NMS')


def synthetic_faces(img_shape: Tuple[int, int], count: int = 3) -> Tuple[np.ndarray, np.ndarray]:
    """``count`` frontal-ish global poses spread over an image and their boxes (the
    packaged face's box rule): ground truth for a training step."""
    from img2pose_mm.structures import FaceModel
    h, w = img_shape
    f = float(w + h)
    size = min(h, w) / 4.0
    poses = []
    for i in range(count):
        cx, cy = w * (i + 1) / (count + 1), h * (0.4 + 0.2 * (i % 2))
        tz = f * 2.0 / size
        poses.append([0.1 * (i - 1), 0.2 * (1 - i), 0.05 * i,
                      (cx - w // 2) * tz / f, (cy - h // 2) * tz / f, tz])
    poses = torch.tensor(poses, dtype=torch.float32)
    boxes = FaceModel().pose_to_bbox(poses, (h, w))
    return poses.numpy(), boxes.numpy()


def _timed_step(forward, optimizer, timer: StageTimer) -> None:
    """One training step (``forward()`` returns the total loss), its forward + losses,
    backward and optimizer times added to ``timer`` under :data:`TRAIN_STAGES`."""
    optimizer.zero_grad()
    start = time.perf_counter()
    loss = forward()
    mid = time.perf_counter()
    loss.backward()
    end = time.perf_counter()
    optimizer.step()
    done = time.perf_counter()
    for stage, seconds in zip(TRAIN_STAGES, (mid - start, end - mid, done - end)):
        timer.seconds[stage] = timer.seconds.get(stage, 0.0) + seconds


def _original_train_step(original: OriginalDetector, batch: List[np.ndarray], optimizer,
                         timer: StageTimer) -> None:
    from torchvision.transforms.functional import to_tensor
    h, w = batch[0].shape[:2]
    original.net.set_max_min_size(max(h, w), min(h, w))
    targets = []
    for rgb in batch:
        poses, boxes = synthetic_faces(rgb.shape[:2])
        targets.append(dict(boxes=torch.from_numpy(boxes).float(),
                            dofs=torch.from_numpy(poses).float(),
                            labels=torch.ones(len(boxes), dtype=torch.int64)))
    _timed_step(lambda: sum(original.model([to_tensor(rgb) for rgb in batch],
                                           targets).values()), optimizer, timer)


def _ours_train_step(ours: OursDetector, batch: List[np.ndarray], optimizer,
                     timer: StageTimer) -> None:
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from img2pose_mm.structures import FacePoses
    model = ours.api.model
    inputs, samples = [], []
    for rgb in batch:
        h, w = rgb.shape[:2]
        poses, boxes = synthetic_faces((h, w))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.from_numpy(boxes).float(),
            labels=torch.zeros(len(boxes), dtype=torch.long),
            poses=FacePoses(torch.from_numpy(poses).float(), img_shape=(h, w)))
        samples.append(sample)
        inputs.append(torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1])).permute(2, 0, 1))

    def forward() -> torch.Tensor:
        data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)
        return model.parse_losses(model.loss(data['inputs'], data['data_samples']))[0]
    _timed_step(forward, optimizer, timer)


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every ``interval`` s by a
    thread reading ``/proc/self/statm`` (Linux; ``peak_mb`` stays ``None`` elsewhere)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak_mb: Optional[float] = None

    @staticmethod
    def _rss_mb() -> Optional[float]:
        try:
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
        except (OSError, ValueError, IndexError):
            return None

    def __enter__(self) -> PeakMemory:
        import threading
        self._base = self._rss_mb()
        self._high = self._base
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                rss = self._rss_mb()
                if rss is not None and rss > self._high:
                    self._high = rss
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        if self._base is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._base is not None:
            self._thread.join()
            self.peak_mb = max(self._high, self._rss_mb() or 0.0) - self._base


def _median_stages(runs: List[Dict[str, float]]) -> Dict[str, float]:
    keys = {k for run in runs for k in run}
    return {k: float(np.median([run.get(k, 0.0) for run in runs])) for k in keys}


def run_speed(original: OriginalDetector, ours: OursDetector,
              images: List[Tuple[str, np.ndarray]], repeats: int, train: bool = True,
              train_batch: int = 2) -> str:
    """Median seconds per image and stage of both models, interleaved (original, ours,
    original, ...) after one warm-up call each, so that both see the same machine load;
    the peak memory above the level before each call (MB, largest over the calls).
    ``train`` adds training steps of ``train_batch`` images (the first images, repeated
    when there are fewer) with the same synthetic targets on both sides: forward +
    losses, backward, SGD step (lr 0 so both stay where they are: momentum 0.9, weight
    decay 5e-4 as the original)."""
    sides = (('original', original, _time_original_inference),
             ('img2pose_mm', ours, _time_ours_inference))
    timers = {}
    for side, detector, hook in sides:
        timers[side] = StageTimer()
        hook(detector, timers[side])
        for _, rgb in images:
            detector(rgb)                                  # warm-up (not timed)
    runs = {side: [] for side, _, _ in sides}
    peaks = {side: 0.0 for side, _, _ in sides}
    for _ in range(repeats):
        for _, rgb in images:
            for side, detector, _ in sides:
                timers[side].reset()
                with PeakMemory() as mem:
                    start = time.perf_counter()
                    detector(rgb)
                    total = time.perf_counter() - start
                runs[side].append(dict(timers[side].seconds, total=total))
                peaks[side] = max(peaks[side], mem.peak_mb or 0.0)
    results = {side: dict(_median_stages(runs[side]), **{'peak MB': peaks[side]})
               for side in runs}
    for timer in timers.values():
        timer.unwrap()
    if train:
        batch = [rgb for _, rgb in (images * train_batch)[:train_batch]]
        models = dict(original=original.model, img2pose_mm=ours.api.model)
        steps = dict(original=_original_train_step, img2pose_mm=_ours_train_step)
        detectors = dict(original=original, img2pose_mm=ours)
        optimizers, states = {}, {}
        for side, model in models.items():
            params = [p for p in model.parameters() if p.requires_grad]
            optimizers[side] = torch.optim.SGD(params, lr=0.0, momentum=0.9, weight_decay=5e-4)
            states[side] = {k: v.clone() for k, v in model.state_dict().items()}
            model.train()
        train_runs = {side: [] for side in models}
        train_peaks = {side: 0.0 for side in models}
        torch.manual_seed(0)
        try:
            for i in range(repeats + 1):                   # the first round warms up
                for side in models:
                    timer = StageTimer()
                    with PeakMemory() as mem:
                        steps[side](detectors[side], batch, optimizers[side], timer)
                    if i:
                        train_runs[side].append(
                            dict(timer.seconds, **{'train total': sum(timer.seconds.values())}))
                        train_peaks[side] = max(train_peaks[side], mem.peak_mb or 0.0)
        finally:
            for side, model in models.items():
                model.load_state_dict(states[side])
                model.eval()
        for side in models:
            results[side].update(_median_stages(train_runs[side]),
                                 **{'train peak MB': train_peaks[side]})
    stages = list(INFERENCE_STAGES) + ['total', 'peak MB'] + (
        list(TRAIN_STAGES) + ['train total', 'train peak MB'] if train else [])
    lines = [f'{"stage (s)":<20}{"original":>12}{"img2pose_mm":>14}{"ratio":>9}']
    for stage in stages:
        a, b = results['original'].get(stage), results['img2pose_mm'].get(stage)
        ratio = f'{a / b:>9.2f}' if a and b else f'{"":>9}'
        lines.append(f'{stage:<20}{a if a is not None else float("nan"):>12.3f}'
                     f'{b if b is not None else float("nan"):>14.3f}{ratio}')
    h, w = images[0][1].shape[:2]
    lines.append(f'ratio = original / img2pose_mm; medians of {repeats} interleaved round(s) '
                 f'after one warm-up, {len(images)} image(s) ({w}x{h} first), '
                 f'{original.net.rpn._post_nms_top_n["testing"]} proposals; training: batch '
                 f'{train_batch}; peak MB = resident memory above the level before the call; '
                 f'{torch.get_num_threads()} CPU thread(s)')
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------
# labelling oracle
# ---------------------------------------------------------------------------------------
LABELS_FIXTURE = 'original_labels.npz'


def write_original_layout(jsonl: Path, workdir: Path) -> Tuple[Path, Path, List[dict]]:
    """The original's input layout for a JSON-lines dataset: one JSON file per image and a
    list file of their paths (``convert_json_list_to_lmdb.py --json_list``); returns the
    list file, the dataset root (``--dataset_path``) and the entries."""
    entries = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    frames = workdir / 'frames'
    frames.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, entry in enumerate(entries):
        path = frames / f'{i:05d}.json'
        path.write_text(json.dumps(entry))
        paths.append(str(path))
    list_file = workdir / 'faces_list.txt'
    list_file.write_text('\n'.join(paths) + '\n')
    return list_file, jsonl.parent.resolve(), entries


def run_original_labelling(repo: str, jsonl: Path, points_68: str, points_5: str,
                           workdir: Path) -> Dict[str, object]:
    """The original's labels of a JSON-lines dataset.

    Per image, ``utils/json_loader.FramesJsonList`` (the kept int boxes, box-local and
    global poses, -9 rows for faces without a pose); then ``convert_json_list_to_lmdb.
    json_list_to_lmdb`` with ``--train`` on the same list decides which images are written
    (the others are skipped) and computes the pose mean/std.
    """
    mods = import_original(repo, 'utils.json_loader', 'convert_json_list_to_lmdb')
    loader_mod, lmdb_mod = mods['utils.json_loader'], mods['convert_json_list_to_lmdb']
    list_file, root, entries = write_original_layout(jsonl, workdir)
    dataset = loader_mod.FramesJsonList(np.load(points_5), np.load(points_68), str(list_file),
                                        str(root))
    images = []
    for index in range(len(dataset)):
        raw, global_poses, boxes, local_poses, landmarks = dataset[index]
        # which input faces survived (the loader returns their landmark lists as given)
        kept = [next(j for j, lm in enumerate(entries[index]['landmarks']) if lm == want)
                for want in landmarks]
        images.append(dict(raw=raw, boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
                           local_poses=np.asarray(local_poses, np.float64).reshape(-1, 6),
                           global_poses=np.asarray(global_poses, np.float64).reshape(-1, 6),
                           kept=np.asarray(kept, np.int64)))
    dest = workdir / 'lmdb'
    args = argparse.Namespace(json_list=str(list_file), dataset_path=str(root), num_workers=0,
                              write_frequency=5000, dest=str(dest), train=True,
                              threed_5_points=points_5, threed_68_points=points_68)
    dest.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):
        lmdb_mod.json_list_to_lmdb(args)
    name = list_file.name[:-4]
    written = _lmdb_images(dest / f'{name}.lmdb', lmdb_mod.msgpack.loads)
    for image in images:
        image['skipped'] = image['raw'] not in written
    return dict(images=images, entries=entries,
                pose_mean=np.load(dest / f'{name}_pose_mean.npy'),
                pose_stddev=np.load(dest / f'{name}_pose_stddev.npy'))


def _lmdb_images(path: Path, loads) -> List[bytes]:
    """The raw image bytes of every record of the original's LMDB."""
    import lmdb
    env = lmdb.open(str(path), subdir=path.is_dir(), readonly=True, lock=False)
    with env.begin() as txn:
        keys = loads(txn.get(b'__keys__'))
        records = [loads(txn.get(key)) for key in keys]
    env.close()
    return [record[0] for record in records]


def run_labels(args) -> int:
    from img2pose_mm.structures.reference_face import DEFAULT_5, DEFAULT_68
    jsonl = Path(args.labels)
    points_68 = args.reference_points_68 or str(DEFAULT_68)
    points_5 = args.reference_points_5 or str(DEFAULT_5)
    with tempfile.TemporaryDirectory(prefix='img2pose_labels_') as tmp:
        result = run_original_labelling(args.original_repo, jsonl, points_68, points_5,
                                        Path(tmp))
    names = [Path(e['image_path']).stem for e in result['entries']]
    print(f'original: {args.original_repo} @ {original_commit(args.original_repo)}; '
          f'{jsonl}: {len(names)} images; reference points {points_68}, {points_5}')
    np.set_printoptions(precision=5, suppress=True, linewidth=120)
    for name, image in zip(names, result['images']):
        state = 'skipped (no face with a pose)' if image['skipped'] else 'written'
        print(f'{name}: faces kept {image["kept"].tolist()} of '
              f'{len(result["entries"][names.index(name)]["bboxes"])}; {state}')
        for box, local, glob in zip(image['boxes'], image['local_poses'], image['global_poses']):
            print(f'  box {box.astype(int).tolist()}  local {local}  global {glob}')
    print(f'pose mean   {result["pose_mean"]}\npose stddev {result["pose_stddev"]}')
    if args.write_fixture:
        packaged = os.path.samefile(points_68, DEFAULT_68) and os.path.samefile(points_5, DEFAULT_5)
        if not packaged:
            print('--write-fixture stores labels made with the packaged face only',
                  file=sys.stderr)
            return 1
        out = Path(args.write_fixture)
        out.mkdir(parents=True, exist_ok=True)
        arrays = dict(image_names=np.array(names),
                      skipped=np.array([i['skipped'] for i in result['images']]),
                      pose_mean=result['pose_mean'].astype(np.float64),
                      pose_stddev=result['pose_stddev'].astype(np.float64),
                      settings=np.array(json.dumps(dict(
                          dataset=jsonl.name, reference_points='img2pose_mm packaged face',
                          original_commit=original_commit(args.original_repo),
                          **stack_versions()), sort_keys=True)))
        for name, image in zip(names, result['images']):
            for key in ('boxes', 'local_poses', 'global_poses', 'kept'):
                arrays[f'{name}/{key}'] = image[key]
        path = out / LABELS_FIXTURE
        np.savez(path, **arrays)
        print(f'wrote {path} ({path.stat().st_size / 1024:.0f} KiB)')
    return 0


def make_labels_dataset(out_dir: str) -> int:
    from img2pose_mm.testing.label_fixture import make_label_dataset
    print(f'wrote {make_label_dataset(out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
