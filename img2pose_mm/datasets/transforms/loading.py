"""Loading transforms: images from LMDB bytes or files, face-pose annotations."""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS
from mmengine import fileio
from mmengine.logging import print_log

from img2pose_mm.structures import LANDMARK_MISSING, FacePoses

from ..face_annotations import AnnotationError
from ..image_files import decode_image


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

    Required Keys: ``instances`` (``bbox``, ``bbox_label``, ``ignore_flag``); ``poses``
    (:class:`~img2pose_mm.structures.FacePoses` of the annotated image; without it every
    face has an invalid pose), optional ``landmarks`` ``(N, M, 2)``.

    Added Keys:

    - ``gt_bboxes`` (HorizontalBoxes), ``gt_bboxes_labels`` (int64), ``gt_ignore_flags``
      (faces without a pose are flagged ignored)
    - ``gt_poses``: a copy of ``poses``; pose-aware transforms move it with the image.
      Loaded after a resize (test pipelines), it stays in the original image's frame
      like mmdet's boxes (its ``img_shape`` says which frame it is in).
    - ``gt_landmarks`` float32 ``(N, M, 2)``; -1 rows for faces without landmarks

    Args:
        with_pose: load ``gt_poses``.
        with_landmarks: load ``gt_landmarks``.
        ignore_without_pose: flag faces without a pose ignored (training, detection
            metrics); head-pose benchmarks whose ground truth has angles but no pose in
            img2pose's camera (BIWI) keep them counted with ``False``.
        **kwargs: mmdet ``LoadAnnotations`` arguments (``with_bbox``, ``with_label``,
            ``box_type``, ...).

    Raises:
        ValueError: the image was decoded with another size than its annotations.
    """

    def __init__(self, with_pose: bool = True, with_landmarks: bool = True,
                 ignore_without_pose: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.with_pose = with_pose
        self.with_landmarks = with_landmarks
        self.ignore_without_pose = ignore_without_pose

    def _load_poses(self, results: dict) -> None:
        poses = results.get('poses')
        if poses is None:           # a dataset without poses (e.g. WIDER FACE)
            shape = results.get('ori_shape', results.get('img_shape'))
            poses = FacePoses(np.zeros((len(results.get('instances', [])), 6)),
                              valid=np.zeros(len(results.get('instances', [])), dtype=bool),
                              img_shape=tuple(shape[:2]) if shape is not None else (0, 0))
        if not isinstance(poses, FacePoses):
            raise ValueError(f'{_describe(results)}: data_info["poses"] must be FacePoses, '
                             f'got {type(poses).__name__}')
        img = results.get('img')
        if (img is not None and tuple(results.get('ori_shape', ())[:2]) == tuple(img.shape[:2])
                and tuple(img.shape[:2]) != poses.img_shape):
            # nothing transformed the image since it was loaded: it is not the image the
            # annotations were made on
            raise ValueError(f'{_describe(results)} decodes to {tuple(img.shape[:2])} but its '
                             f'annotations are for an image of {poses.img_shape}')
        results['gt_poses'] = poses.clone()
        if self.ignore_without_pose:
            flags = results.get('gt_ignore_flags')
            no_pose = ~poses.valid.numpy()
            results['gt_ignore_flags'] = no_pose if flags is None else (flags | no_pose)

    def _load_landmarks(self, results: dict) -> None:
        landmarks = results.get('landmarks')
        if landmarks is None:
            landmarks = np.full((len(results.get('instances', [])), 68, 2), LANDMARK_MISSING)
        results['gt_landmarks'] = np.array(landmarks, dtype=np.float32, copy=True)

    def transform(self, results: dict) -> dict:
        """Load boxes, labels, ignore flags, poses and landmarks."""
        results = super().transform(results)
        if self.with_pose:
            self._load_poses(results)
        if self.with_landmarks:
            self._load_landmarks(results)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(with_bbox={self.with_bbox}, '
                f'with_label={self.with_label}, with_pose={self.with_pose}, '
                f'with_landmarks={self.with_landmarks}, box_type={self.box_type})')


__all__ = ['LoadFacePoseImage', 'LoadFacePoseAnnotations']
