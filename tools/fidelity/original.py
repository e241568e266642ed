"""Importing the original img2pose from the user's own checkout (never copied into this
project), with run-time shims for today's stack; the checkout and torchvision stay untouched."""
from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import subprocess
import sys
import types
import warnings
from pathlib import Path
from typing import Dict, Iterator

import numpy as np

#: Top-level module names of the original checkout (they may clash with others').
ORIGINAL_MODULES = ('img2pose', 'models', 'generalized_rcnn', 'rpn', 'losses', 'model_loader',
                    'utils', 'convert_json_list_to_lmdb')


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

