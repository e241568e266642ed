"""Loading transforms: images from LMDB bytes or files, face-pose annotations."""
from __future__ import annotations

import logging
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS
from mmengine import fileio
from mmengine.logging import print_log

from ..face_annotations import LANDMARK_MISSING, POSE_SENTINEL, AnnotationError, decode_image
from .pose_utils import POSE_FRAME_KEY


def _describe(results: dict) -> str:
    parts = []
    if results.get('lmdb_key') is not None:
        parts.append(f'LMDB record {results["lmdb_key"]!r}')
    elif results.get('img_id') is not None:
        parts.append(f'image {results["img_id"]!r}')
    if results.get('img_path'):
        parts.append(f'({results["img_path"]})')
    return ' '.join(parts) or 'image'


@TRANSFORMS.register_module()
class LoadFacePoseImage(LoadImageFromFile):
    """Decode ``results['img_bytes']`` (face-pose LMDB) or read ``results['img_path']``.

    Required Keys: ``img_bytes`` or ``img_path``.
    Modified Keys: ``img_bytes`` (removed).
    Added Keys: ``img``, ``img_shape``, ``ori_shape``.

    Args:
        to_float32, color_type, imdecode_backend, backend_args: as mmcv's
            ``LoadImageFromFile``.
        ignore_empty: return ``None`` (the dataset then draws another sample in
            training) instead of raising when the image cannot be read or decoded.

    Raises:
        ValueError: the image cannot be read or decoded; the message names the record
            key / image id and path.
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Load the image."""
        img_bytes = results.pop('img_bytes', None)
        try:
            if img_bytes is None:
                if not results.get('img_path'):
                    raise AnnotationError('neither img_bytes nor img_path in results')
                img_bytes = fileio.get(results['img_path'], backend_args=self.backend_args)
            img = decode_image(img_bytes, flag=self.color_type, backend=self.imdecode_backend)
        except (AnnotationError, OSError) as err:
            message = f'cannot load {_describe(results)}: {err}'
            if self.ignore_empty:
                print_log(message, logger='current', level=logging.WARNING)
                return None
            raise ValueError(message) from None
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadFacePoseAnnotations(LoadAnnotations):
    """mmdet's ``LoadAnnotations`` plus poses and landmarks.

    Required Keys: ``instances`` (``bbox``, ``bbox_label``, ``ignore_flag``, ``pose``,
    optional ``pose_valid`` and ``landmarks``), optional ``height``/``width``,
    ``num_landmarks``.

    Added Keys:

    - ``gt_bboxes`` (HorizontalBoxes), ``gt_bboxes_labels`` (int64), ``gt_ignore_flags``
    - ``gt_poses`` float32 ``(N, 6)`` global poses; faces without a pose hold -9 and are
      flagged ignored
    - ``gt_landmarks`` float32 ``(N, M, 2)``; -1 rows for faces without landmarks
    - ``pose_img_shape``: set when the annotations belong to the current image (loaded
      before any geometric transform, as in training): pose-aware transforms then keep
      the poses in step with the image. When the image was already resized (test
      pipelines), the annotations stay in the original image's frame like mmdet's boxes.

    Args:
        with_pose: load ``gt_poses``.
        with_landmarks: load ``gt_landmarks``.
        **kwargs: mmdet ``LoadAnnotations`` arguments (``with_bbox``, ``with_label``,
            ``box_type``, ...).
    """

    def __init__(self, with_pose: bool = True, with_landmarks: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.with_pose = with_pose
        self.with_landmarks = with_landmarks

    def _load_poses(self, results: dict) -> None:
        instances = results.get('instances', [])
        poses = np.full((len(instances), 6), POSE_SENTINEL, dtype=np.float32)
        for i, inst in enumerate(instances):
            pose = np.asarray(inst.get('pose', poses[i]), dtype=np.float64).reshape(6)
            if inst.get('pose_valid', True) and np.isfinite(pose).all() \
                    and not np.all(pose == POSE_SENTINEL):
                poses[i] = pose
        results['gt_poses'] = poses
        no_pose = np.all(poses == POSE_SENTINEL, axis=1)
        flags = results.get('gt_ignore_flags')
        results['gt_ignore_flags'] = no_pose if flags is None else (flags | no_pose)

    def _load_landmarks(self, results: dict) -> None:
        instances = results.get('instances', [])
        num_points = results.get('num_landmarks')
        if num_points is None:
            shapes = [np.shape(inst['landmarks']) for inst in instances if 'landmarks' in inst]
            num_points = shapes[0][0] if shapes else 68
        landmarks = np.full((len(instances), num_points, 2), LANDMARK_MISSING, dtype=np.float32)
        for i, inst in enumerate(instances):
            if inst.get('landmarks') is not None:
                landmarks[i] = np.asarray(inst['landmarks'], dtype=np.float32).reshape(
                    num_points, 2)
        results['gt_landmarks'] = landmarks

    def _annotation_shape(self, results: dict) -> Optional[Tuple[int, int]]:
        if results.get('height') is not None and results.get('width') is not None:
            return int(results['height']), int(results['width'])
        if results.get('ori_shape') is not None:
            return tuple(int(v) for v in results['ori_shape'][:2])
        return None

    def transform(self, results: dict) -> dict:
        """Load boxes, labels, ignore flags, poses and landmarks."""
        results = super().transform(results)
        if self.with_pose:
            self._load_poses(results)
            shape = self._annotation_shape(results)
            img = results.get('img')
            if shape is not None and (img is None or tuple(img.shape[:2]) == shape):
                results[POSE_FRAME_KEY] = shape
            elif shape is not None and tuple(results.get('ori_shape', ())[:2]) == \
                    tuple(img.shape[:2]):
                # nothing transformed the image since it was loaded: it is not the image
                # the annotations were made on
                raise ValueError(f'{_describe(results)} decodes to {tuple(img.shape[:2])} '
                                 f'but its annotations are for an image of {shape}')
        if self.with_landmarks:
            self._load_landmarks(results)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(with_bbox={self.with_bbox}, '
                f'with_label={self.with_label}, with_pose={self.with_pose}, '
                f'with_landmarks={self.with_landmarks}, box_type={self.box_type})')


__all__ = ['LoadFacePoseImage', 'LoadFacePoseAnnotations']
