"""``Img2Pose``: the high-level face detection, 6DoF pose and alignment API.

It is a thin layer over mmdet's inference utilities: the model is built and loaded by
:func:`mmdet.apis.init_detector`, images go through the config's test pipeline (loaded
from memory with ``LoadImageFromNDArray``, annotation loading removed) and the batch
through ``model.test_step``, like :func:`mmdet.apis.inference_detector` but with the
whole list in one batch.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config, ConfigDict

from img2pose_mm.structures import load_reference_points

from .alignment import (
    SizeLike,
    align_faces,
    keypoints_from_faces,
    keypoints_to_dict,
    pose_keypoints,
)
from .image_io import ImageSource, load_image

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = 'img2pose_r18.py'
FACE_METAINFO = {'classes': ('face',), 'palette': [(0, 255, 0)]}

Face = Dict[str, Any]


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


def _fix_pose_stats(node: Any) -> List[str]:
    """Replace missing pose-statistics files of every ``PoseBBoxCoder`` in a config by
    ``None``: a checkpoint restores the statistics (they are buffers of the head),
    without one they become mean 0 / std 1. Returns the missing paths."""
    missing: List[str] = []
    if isinstance(node, dict):
        if str(node.get('type', '')).split('.')[-1] == 'PoseBBoxCoder':
            for key in ('pose_mean', 'pose_stddev'):
                value = node.get(key)
                if isinstance(value, (str, os.PathLike)) and not os.path.isfile(value):
                    missing.append(os.fspath(value))
                    node[key] = None
        for value in node.values():
            missing += _fix_pose_stats(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            missing += _fix_pose_stats(value)
    return missing


def check_checkpoint_format(path: str) -> None:
    """Refuse an original img2pose file (``{'fpn_model': ...}``): mmdet would load none of
    its weights (different key names) and leave the model random."""
    try:
        ckpt = torch.load(path, map_location='cpu', mmap=True, weights_only=True)
    except Exception:   # noqa: BLE001 - not peekable here: init_detector reports real problems
        return
    if isinstance(ckpt, dict) and 'fpn_model' in ckpt and 'state_dict' not in ckpt:
        raise ValueError(f'{path} is an original img2pose checkpoint; convert it first: '
                         f'python tools/model_converters/img2pose_to_mmdet.py {path} '
                         '<converted.pth> (and use configs/img2pose_r18_original.py to '
                         'reproduce its numbers)')


def _lower_score_thr(node: Any, threshold: float) -> None:
    """Let ``test_cfg.rcnn.score_thr`` pass every score the API keeps."""
    rcnn = node.get('rcnn') if isinstance(node, dict) else None
    if isinstance(rcnn, dict) and 'score_thr' in rcnn:
        rcnn['score_thr'] = min(float(rcnn['score_thr']), float(threshold))


def build_inference_pipeline(cfg: Config, min_size: Optional[int] = None,
                             max_size: Optional[int] = None) -> List[dict]:
    """The config's test pipeline for in-memory images.

    The image-loading step becomes ``mmdet.LoadImageFromNDArray``, annotation loading
    goes, ``instances`` leaves the packed meta keys, and with ``min_size``/``max_size``
    the resize becomes ``PoseResize(scale=(max_size, min_size), keep_ratio=True)``
    (short side ``min_size`` unless the long side would pass ``max_size``). When only one
    of them is given, the other comes from the config's resize ``scale``.
    """
    from mmdet.utils import get_test_pipeline_cfg
    pipeline = copy.deepcopy(get_test_pipeline_cfg(cfg))
    pipeline = [p.to_dict() if isinstance(p, ConfigDict) else dict(p) for p in pipeline]
    if (min_size is None) != (max_size is None):
        scales = [tuple(p['scale']) for p in pipeline if 'Resize' in str(p.get('type', ''))
                  and isinstance(p.get('scale'), (list, tuple)) and len(p['scale']) == 2]
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
    for step in pipeline:
        kind = str(step.get('type', '')).split('.')[-1]
        if kind in ('TestTimeAug', 'MultiScaleFlipAug'):
            raise ValueError(f'{kind} test pipelines are not supported by Img2Pose; use a '
                             'config with a single-scale test pipeline')
        if 'Annotation' in kind:
            continue
        if not loaded and kind.startswith('Load') and 'Image' in kind:
            result.append(dict(type='mmdet.LoadImageFromNDArray'))
            loaded = True
            continue
        if 'Resize' in kind and min_size is not None:
            if kind in ('PoseResize', 'Resize'):     # keep its other settings
                step = {k: v for k, v in step.items() if k != 'scale_factor'}
                step.update(scale=(max_size, min_size), keep_ratio=True)
            else:
                step = dict(type='PoseResize', scale=(max_size, min_size), keep_ratio=True)
            resized = True
        if kind.startswith('Pack') and 'meta_keys' in step:
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


class Img2Pose:
    """Detect faces with their 6DoF poses, and align them.

    Args:
        config: config path or :class:`mmengine.Config` (``None``: the packaged
            ``configs/img2pose_r18.py``).
        checkpoint: weights (``.pth``); ``None`` gives a randomly initialised model.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ... or ``'auto'``.
        score_threshold: faces with a lower confidence are dropped.
        max_faces: keep at most this many faces per image (the most confident);
            ``<= 0`` keeps all.
        min_size, max_size: test resize (short side ``min_size`` unless the long side
            would pass ``max_size``); ``None`` keeps the config's resize.
        cfg_options: overrides merged into the config (as ``--cfg-options``).
        batch_size: images per forward pass of :meth:`detect_faces` (``None``: the
            whole list at once).

    Pose statistics: files named by the config that do not exist are ignored — a
    checkpoint restores the statistics it was trained with (they are buffers of the
    head); a model without checkpoint uses mean 0 / std 1.

    Each face is ``{'box': [x1, y1, x2, y2], 'confidence': float, 'pose': [rx, ry, rz,
    tx, ty, tz], 'keypoints': {'left_eye': [x, y], 'right_eye', 'nose', 'mouth_left',
    'mouth_right'}}`` in the pixels / camera of the input image (camera
    ``K = [[w + h, 0, w // 2], [0, w + h, h // 2], [0, 0, 1]]``); keypoints are the 5
    reference points projected with the pose. Faces are sorted by confidence.
    """

    def __init__(self,
                 config: Union[str, os.PathLike, Config, None] = None,
                 checkpoint: Union[str, os.PathLike, None] = None,
                 device: Optional[str] = 'auto',
                 score_threshold: float = 0.5,
                 max_faces: int = -1,
                 min_size: Optional[int] = 640,
                 max_size: Optional[int] = 1400,
                 cfg_options: Optional[dict] = None,
                 batch_size: Optional[int] = None) -> None:
        from mmcv.transforms import Compose
        from mmdet.apis import init_detector
        from mmdet.registry import TRANSFORMS

        if config is None:
            config = default_config_path()
        if isinstance(config, (str, os.PathLike)):
            if not os.path.isfile(config):
                raise FileNotFoundError(f'config file not found: {os.fspath(config)}')
            cfg = Config.fromfile(os.fspath(config))
        elif isinstance(config, Config):
            cfg = copy.deepcopy(config)
        else:
            raise TypeError(f'config must be a path or an mmengine Config, got '
                            f'{type(config).__name__}')
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        if checkpoint is not None:
            checkpoint = os.fspath(checkpoint)
            if not os.path.isfile(checkpoint):
                raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
            check_checkpoint_format(checkpoint)
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f'batch_size must be >= 1 or None, got {batch_size}')
        self.score_threshold = float(score_threshold)
        self.max_faces = int(max_faces)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.device = resolve_device(device)

        missing = _fix_pose_stats(cfg.model)
        if missing and checkpoint is None:
            warnings.warn(f'pose statistics {missing} not found and no checkpoint given: '
                          'using mean 0 / std 1', stacklevel=2)
        _lower_score_thr(cfg.model.get('test_cfg', {}), self.score_threshold)
        if 'init_cfg' in cfg.model.get('backbone', {}):
            cfg.model.backbone.init_cfg = None      # never fetch pretrained weights here

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            self.model = init_detector(cfg, checkpoint, palette='random', device=self.device)
        for item in caught:
            # mmdet falls back to COCO classes without checkpoint meta: ours are set below
            if 'COCO classes' not in str(item.message):
                warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
        if checkpoint is None:
            # the config's initialisation, as training starts (its per-parameter report
            # is logged at INFO level: keep it out of the user's console)
            with _quiet_logger():
                self.model.init_weights()
            self.model.eval()
        meta = dict(getattr(self.model, 'dataset_meta', None) or {})
        if tuple(meta.get('classes', ())) != FACE_METAINFO['classes']:
            meta = dict(FACE_METAINFO)
        if meta.get('palette') in (None, 'random'):
            meta['palette'] = FACE_METAINFO['palette']
        self.model.dataset_meta = meta
        self.cfg = self.model.cfg
        self.pipeline_cfg = build_inference_pipeline(cfg, min_size, max_size)
        self.pipeline = Compose([TRANSFORMS.build(step) for step in self.pipeline_cfg])
        self.reference_points = self._alignment_points()

    # ------------------------------------------------------------------ helpers
    def _alignment_points(self) -> np.ndarray:
        """The model's 5 reference points (its coder's), else the packaged ones."""
        head = getattr(getattr(self.model, 'roi_head', None), 'bbox_head', None)
        heads = head if isinstance(head, (list, tuple, torch.nn.ModuleList)) else [head]
        for item in heads:
            points = getattr(getattr(item, 'bbox_coder', None), 'points5', None)
            if points is not None:
                return np.asarray(torch.as_tensor(points).cpu(), dtype=np.float64)
        return load_reference_points(num_points=5).astype(np.float64)

    @staticmethod
    def _as_batch(images: Any) -> Tuple[List[Any], bool]:
        if isinstance(images, (list, tuple)):
            return list(images), True
        return [images], False

    @staticmethod
    def _load(images: List[Any], is_batch: bool) -> List[np.ndarray]:
        return [load_image(img, f'images[{i}]' if is_batch else 'image')
                for i, img in enumerate(images)]

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray]) -> list:
        """mmdet predictions (``DetDataSample``, on the CPU) of RGB uint8 arrays run as
        one batch (or ``batch_size`` chunks)."""
        from mmengine.dataset import pseudo_collate
        if len(images) == 0:
            return []
        step = self.batch_size or len(images)
        samples = []
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            # mmdet pipelines and data preprocessors expect BGR images
            data = [self.pipeline(dict(img=np.ascontiguousarray(img[..., ::-1]), img_id=start + i))
                    for i, img in enumerate(chunk)]
            outputs = self.model.test_step(pseudo_collate(data))
            samples += [out.cpu() for out in outputs]
        return samples

    def _to_faces(self, sample, img_shape: Tuple[int, int]) -> List[Face]:
        pred = sample.pred_instances
        if 'poses' not in pred:
            raise RuntimeError('the model predicts no poses (pred_instances.poses): Img2Pose '
                               'needs a detector with the img2pose 6DoF head (DoFRoIHead)')
        scores = pred.scores.detach().double()
        keep = scores >= self.score_threshold
        order = torch.argsort(scores[keep], descending=True, stable=True)
        if self.max_faces > 0:
            order = order[:self.max_faces]
        idx = torch.nonzero(keep).flatten()[order]
        boxes = pred.bboxes[idx].double().numpy()
        poses = pred.poses[idx].double().numpy()
        scores = scores[idx].numpy()
        keypoints = pose_keypoints(poses, img_shape, self.reference_points)
        return [{'box': [float(v) for v in box],
                 'confidence': float(score),
                 'pose': [float(v) for v in pose],
                 'keypoints': keypoints_to_dict(kps)}
                for box, score, pose, kps in zip(boxes, scores, poses, keypoints)]

    # ------------------------------------------------------------------ public API
    def detect_faces(self, images: Union[ImageSource, Sequence[ImageSource]]
                     ) -> Union[List[Face], List[List[Face]]]:
        """Faces of one image (a list of face dicts) or of a list of images run as one
        batch (a list of such lists; ``[]`` for an empty list).

        Args:
            images: a path, a PIL image, an RGB array, or a list/tuple of them.
        """
        items, is_batch = self._as_batch(images)
        arrays = self._load(items, is_batch)
        samples = self.predict(arrays)
        faces = [self._to_faces(s, a.shape[:2]) for s, a in zip(samples, arrays)]
        return faces if is_batch else faces[0]

    __call__ = detect_faces

    def align_faces(self, image: ImageSource, faces, output_size: SizeLike = 224,
                    return_array: bool = False, template: Union[str, int] = 'auto'):
        """Aligned crops of ``faces`` (face dicts, e.g. from :meth:`detect_faces`, or
        keypoints ``(N, 5, 2)``) in ``image``.

        Returns:
            ``return_array=False``: a list of RGB ``PIL.Image``; else an ``(N, S, S, 3)``
            uint8 RGB array (``(0, S, S, 3)`` without faces).
        """
        array = image if _is_rgb_uint8(image) else load_image(image)
        keypoints = keypoints_from_faces(faces, array.shape[:2], self.reference_points)
        crops = align_faces(array, keypoints, output_size, template)
        return crops if return_array else _to_pil(crops)

    def detect_and_align(self, image: ImageSource, output_size: SizeLike = 224,
                         return_array: bool = False,
                         template: Union[str, int] = 'auto') -> List[Face]:
        """Detect the faces of one image and align them: a list of
        ``{'image', 'box', 'confidence', 'pose', 'keypoints'}`` (``'image'``: PIL image,
        or an ``(S, S, 3)`` array with ``return_array``)."""
        array = load_image(image)
        faces = self.detect_faces(array)
        crops = self.align_faces(array, faces, output_size, return_array=True, template=template)
        images = list(crops) if return_array else _to_pil(crops)
        return [{'image': crop, **face} for crop, face in zip(images, faces)]

    def align_faces_batch(self, images: Sequence[ImageSource], faces_per_image: Sequence,
                          output_size: SizeLike = 224, return_array: bool = True,
                          template: Union[str, int] = 'auto') -> list:
        """:meth:`align_faces` for each image: one result per image (an ``(N_i, S, S, 3)``
        array, or a list of PIL images without ``return_array``)."""
        images, _ = self._as_batch(images)
        faces_per_image = list(faces_per_image)
        if len(images) != len(faces_per_image):
            raise ValueError(f'got {len(images)} images but faces for {len(faces_per_image)}')
        results = []
        for i, (image, faces) in enumerate(zip(images, faces_per_image)):
            array = load_image(image, f'images[{i}]')
            results.append(self.align_faces(array, faces, output_size, return_array, template))
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(device={self.device!r}, score_threshold='
                f'{self.score_threshold}, max_faces={self.max_faces})')


@contextlib.contextmanager
def _quiet_logger(level: int = logging.WARNING) -> Iterator[None]:
    """Raise the current mmengine logger's level for the duration."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    before = logger.level
    logger.setLevel(max(level, before))
    try:
        yield
    finally:
        logger.setLevel(before)


def _is_rgb_uint8(image: Any) -> bool:
    return (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
            and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0)


def _to_pil(crops: np.ndarray) -> list:
    from PIL import Image
    return [Image.fromarray(np.ascontiguousarray(crop)) for crop in crops]


__all__ = ['Img2Pose', 'default_config_path', 'resolve_device', 'build_inference_pipeline',
           'FACE_METAINFO']
