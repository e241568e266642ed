"""What :class:`~img2pose_mm.apis.Img2Pose` does to a config before building the model
(docs/conventions.md, "The config").
"""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import torch
from mmengine.config import Config, ConfigDict

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = 'img2pose_r18.py'


def default_config_path(name: str = DEFAULT_CONFIG) -> Path:
    """The packaged config ``name``: ``<repo>/configs`` (source or editable install) or
    ``img2pose_mm/.mim/configs`` (a packaged install)."""
    candidates = [PACKAGE_DIR.parent / 'configs' / name, PACKAGE_DIR / '.mim' / 'configs' / name]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f'the default config {name} is not installed (looked in '
                            f'{[str(p) for p in candidates]}); pass config=<path to a config>')


def resolve_device(device: Optional[str] = 'auto') -> str:
    """``'auto'``/``None`` -> ``'cuda'`` when available else ``'cpu'``; others as given."""
    if device in (None, 'auto'):
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    device = str(device)
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise RuntimeError(f'device {device!r} requested but CUDA is not available; '
                           "use device='cpu' or 'auto'")
    return device


def checkpoint_meta(path: str) -> dict:
    """The ``meta`` of an img2pose_mm checkpoint (``{}`` when it has none).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an original img2pose checkpoint (``{'fpn_model': ...}``): mmdet would
            load none of its weights and leave the model random.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    try:
        ckpt = torch.load(path, map_location='cpu', mmap=True, weights_only=True)
    except Exception:   # noqa: BLE001 - not peekable here: init_detector reports real problems
        return {}
    if isinstance(ckpt, dict) and 'fpn_model' in ckpt and 'state_dict' not in ckpt:
        raise ValueError(f'{path} is an original img2pose checkpoint; convert it first: '
                         'python tools/model_converters/img2pose_to_mmdet.py --release-dir '
                         f'<img2pose checkout> <converted.pth> (or {path} <converted.pth>)')
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}


def read_config(config: Union[str, os.PathLike, Config]) -> Config:
    """A copy of ``config``: an mmengine ``Config`` or the path of a config file."""
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if isinstance(config, (str, os.PathLike)):
        if not os.path.isfile(config):
            raise FileNotFoundError(f'config file not found: {os.fspath(config)}')
        return Config.fromfile(os.fspath(config))
    raise TypeError(f'config must be a path or an mmengine Config, got {type(config).__name__}')


def load_config(config: Union[str, os.PathLike, Config, None], checkpoint: Optional[str],
                cfg_options: Optional[dict] = None) -> Config:
    """The config :class:`Img2Pose` builds its model from (docs/conventions.md, "The config")."""
    meta = checkpoint_meta(checkpoint) if checkpoint is not None else {}
    if config is None:
        if isinstance(meta.get('cfg'), str):
            cfg = Config.fromstring(meta['cfg'], file_format='.py')
        else:
            cfg = Config.fromfile(str(default_config_path()))
    else:
        cfg = read_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    missing = drop_missing_files(cfg.model)
    if missing and checkpoint is None:
        warnings.warn(f'{missing} not found and no checkpoint given: using the defaults (pose '
                      'mean 0 / std 1, the packaged face)', stacklevel=3)
    if 'init_cfg' in cfg.model.get('backbone', {}):
        cfg.model.backbone.init_cfg = None      # never fetch pretrained weights here
    return cfg


def pose_coder_cfgs(node: Any, path: str = 'model') -> List[Tuple[str, dict]]:
    """Every ``PoseBBoxCoder`` config inside a model config, with its dotted path.

    Paths are ``--cfg-options`` keys (list items by index): ``model.roi_head.bbox_head.
    bbox_coder`` (two-stage), ``model.roi_head.bbox_head.0.bbox_coder`` (cascades),
    ``model.bbox_head.bbox_coder`` (one-stage).
    """
    found: List[Tuple[str, dict]] = []
    if isinstance(node, dict):
        if str(node.get('type', '')).split('.')[-1] == 'PoseBBoxCoder':
            found.append((path, node))
        for key, value in node.items():
            found += pose_coder_cfgs(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += pose_coder_cfgs(value, f'{path}.{i}')
    return found


def drop_missing_files(node: Any) -> List[str]:
    """Replace the missing files named by every ``PoseBBoxCoder`` of a config (pose
    statistics, the face model's reference points) by their defaults.

    A checkpoint restores both (they are the pose head's state). Returns the missing
    paths.
    """
    missing: List[str] = []
    for _, coder in pose_coder_cfgs(node):
        for key in ('pose_mean', 'pose_stddev'):
            value = coder.get(key)
            if isinstance(value, (str, os.PathLike)) and not os.path.isfile(value):
                missing.append(os.fspath(value))
                coder[key] = None
        face = coder.get('face_model')
        if isinstance(face, dict):
            files = [v for k, v in face.items() if k.startswith('reference_points')
                     and isinstance(v, (str, os.PathLike)) and not os.path.isfile(v)]
            if files:
                missing += [os.fspath(v) for v in files]
                coder['face_model'] = None
    return missing


def lower_score_thr(cfg: Config, threshold: float) -> None:
    """Let the detector's score threshold pass every score the API keeps
    (``test_cfg.rcnn.score_thr`` of two-stage models, ``test_cfg.score_thr`` of one-stage
    ones)."""
    test_cfg = cfg.model.get('test_cfg') or {}
    for stage in (test_cfg, test_cfg.get('rcnn')):
        if isinstance(stage, dict) and 'score_thr' in stage:
            stage['score_thr'] = min(float(stage['score_thr']), float(threshold))


def build_inference_pipeline(cfg: Config, min_size: Optional[int] = None,
                             max_size: Optional[int] = None) -> List[dict]:
    """The config's test pipeline for in-memory images.

    The image-loading step becomes ``mmdet.LoadImageFromNDArray``, annotation loading
    goes, ``instances`` leaves the packed meta keys, and with ``min_size``/``max_size``
    the resize becomes a keep-ratio ``PoseResize(scale=(max_size, min_size))`` (short
    side ``min_size`` unless the long side would pass ``max_size``; when only one is
    given the other comes from the config's resize). Without them the config's resize
    stays as it is. Steps are recognised by their class (mmcv's ``LoadImageFromFile``,
    ``Resize``, mmdet's ``LoadAnnotations`` and ``PackDetInputs`` and their subclasses).
    """
    from mmcv.transforms import LoadImageFromFile, Resize
    from mmdet.datasets.transforms import LoadAnnotations, PackDetInputs
    from mmdet.registry import TRANSFORMS
    from mmdet.utils import get_test_pipeline_cfg
    pipeline = copy.deepcopy(get_test_pipeline_cfg(cfg))
    pipeline = [p.to_dict() if isinstance(p, ConfigDict) else dict(p) for p in pipeline]
    classes = [step['type'] if isinstance(step.get('type'), type)
               else TRANSFORMS.get(str(step.get('type'))) for step in pipeline]

    def is_a(cls, base) -> bool:
        return isinstance(cls, type) and issubclass(cls, base)

    resizes = [step for step, cls in zip(pipeline, classes) if is_a(cls, Resize)]
    if (min_size is None) != (max_size is None):
        scales = [tuple(s['scale']) for s in resizes
                  if isinstance(s.get('scale'), (list, tuple)) and len(s['scale']) == 2]
        if not scales:
            raise ValueError('give both min_size and max_size: the config has no resize '
                             'scale to take the other from')
        min_size = min(scales[0]) if min_size is None else min_size
        max_size = max(scales[0]) if max_size is None else max_size
    if min_size is not None:
        min_size, max_size = int(min_size), int(max_size)
        if min_size < 1 or max_size < min_size:
            raise ValueError(f'need 1 <= min_size <= max_size, got {min_size}, {max_size}')
    result: List[dict] = []
    loaded = resized = False
    for step, cls in zip(pipeline, classes):
        name = str(step.get('type', '')).split('.')[-1]
        if name in ('TestTimeAug', 'MultiScaleFlipAug'):
            raise ValueError(f'{name} test pipelines are not supported by Img2Pose; use a '
                             'config with a single-scale test pipeline')
        if is_a(cls, LoadAnnotations):
            continue
        if is_a(cls, LoadImageFromFile) and not loaded:
            result.append(dict(type='mmdet.LoadImageFromNDArray'))
            loaded = True
            continue
        if is_a(cls, Resize) and min_size is not None:
            step = {k: v for k, v in step.items() if k != 'scale_factor'}
            step.update(scale=(max_size, min_size), keep_ratio=True)
            resized = True
        if is_a(cls, PackDetInputs) and 'meta_keys' in step:
            keys = [k for k in step['meta_keys'] if k != 'instances']
            for key in ('ori_shape', 'img_shape', 'scale_factor'):
                if key not in keys:
                    keys.append(key)
            step['meta_keys'] = tuple(keys)
        result.append(step)
    if not loaded:
        result.insert(0, dict(type='mmdet.LoadImageFromNDArray'))
    if min_size is not None and not resized:
        result.insert(1, dict(type='PoseResize', scale=(max_size, min_size), keep_ratio=True))
    return result


__all__ = ['default_config_path', 'resolve_device', 'checkpoint_meta', 'read_config', 'load_config',
           'pose_coder_cfgs', 'drop_missing_files', 'lower_score_thr', 'build_inference_pipeline']
