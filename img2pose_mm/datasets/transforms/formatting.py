"""Face boxes from poses, faces without pose, and packing ``gt_instances.poses``."""
from __future__ import annotations

from typing import Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS

from img2pose_mm.structures import FaceModel, FaceModelLike

from .pose_utils import (
    boxes_numpy,
    follow_pad,
    image_hw,
    num_instances,
    pose_valid_mask,
    select_instances,
    set_boxes,
)


@TRANSFORMS.register_module()
class PoseToBBox(BaseTransform):
    """Rebuild the GT boxes of faces with a pose from the pose (the face model's box rule,
    :meth:`~img2pose_mm.structures.FacePoses.to_bboxes`), as the original builds its
    training boxes. Faces without a pose keep their boxes. Faces whose pose box is
    smaller than ``min_size`` pixels (width or height, e.g. projected outside the image)
    are dropped.

    Required Keys: ``img``/``img_shape``, ``gt_bboxes``, ``gt_poses``.
    Modified Keys: ``gt_bboxes`` and, when faces are dropped, every GT instance key.
    """

    def __init__(self, face_model: FaceModelLike = None, min_size: float = 1.0) -> None:
        self.face_model = FaceModel.build(face_model)
        self.min_size = float(min_size)

    def transform(self, results: dict) -> dict:
        """Replace the boxes of faces with a pose."""
        if results.get('gt_poses') is None or results.get('gt_bboxes') is None:
            return results
        follow_pad(results, self.face_model)
        num_instances(results)
        valid = pose_valid_mask(results)
        if not valid.any():
            return results
        boxes = boxes_numpy(results['gt_bboxes'])
        boxes[valid] = results['gt_poses'].to_bboxes(self.face_model).double().numpy()[valid]
        set_boxes(results, boxes)
        small = valid & ((boxes[:, 2] - boxes[:, 0] < self.min_size)
                         | (boxes[:, 3] - boxes[:, 1] < self.min_size))
        if small.any():
            select_instances(results, ~small)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(face_model={self.face_model!r}, min_size={self.min_size})'


@TRANSFORMS.register_module()
class BlackOutFacesWithoutPose(BaseTransform):
    """Fill the boxes of faces without a pose with ``fill_value`` and drop those faces,
    so that they are neither positives without a target nor negatives (as img2pose does).

    Required Keys: ``img``, ``gt_bboxes``, ``gt_poses``.
    Modified Keys: ``img`` and every GT instance key.

    Args:
        fill_value: pixel value (scalar or per channel).
        drop: remove the blacked-out faces from the annotations (else keep them, they
            stay flagged ignored).
    """

    def __init__(self, fill_value: Union[float, tuple] = 0, drop: bool = True) -> None:
        self.fill_value = fill_value
        self.drop = drop

    def transform(self, results: dict) -> dict:
        """Black out and drop."""
        if results.get('gt_poses') is None or results.get('gt_bboxes') is None:
            return results
        num_instances(results)
        missing = ~pose_valid_mask(results)
        if not missing.any():
            return results
        h, w = image_hw(results)
        boxes = boxes_numpy(results['gt_bboxes'])[missing]
        x1 = np.clip(np.floor(boxes[:, 0]), 0, w).astype(np.int64)
        y1 = np.clip(np.floor(boxes[:, 1]), 0, h).astype(np.int64)
        x2 = np.clip(np.ceil(boxes[:, 2]), 0, w).astype(np.int64)
        y2 = np.clip(np.ceil(boxes[:, 3]), 0, h).astype(np.int64)
        ok = (x2 > x1) & (y2 > y1)
        # union of the boxes via a 2D difference array: no loop over faces
        diff = np.zeros((h + 1, w + 1), dtype=np.int32)
        np.add.at(diff, (y1[ok], x1[ok]), 1)
        np.add.at(diff, (y1[ok], x2[ok]), -1)
        np.add.at(diff, (y2[ok], x1[ok]), -1)
        np.add.at(diff, (y2[ok], x2[ok]), 1)
        covered = diff.cumsum(0).cumsum(1)[:h, :w] > 0
        img = results['img'].copy()
        img[covered] = self.fill_value
        results['img'] = img
        if self.drop:
            select_instances(results, ~missing)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(fill_value={self.fill_value}, drop={self.drop})'


@TRANSFORMS.register_module()
class PackFacePoseInputs(PackDetInputs):
    """mmdet's ``PackDetInputs`` that also packs ``gt_poses`` -> ``gt_instances.poses``
    (the :class:`~img2pose_mm.structures.FacePoses` as it is) and ``gt_landmarks`` ->
    ``gt_instances.landmarks``; ignored faces go to ``ignored_instances`` like their boxes.

    If mmdet's ``Pad`` ran after the pose-aware transforms, the poses are first moved to
    the padded image's camera (``Pad`` sets ``img_shape`` to the padded shape, and the
    model's camera is ``image_intrinsics(img_shape)``).

    Args:
        meta_keys: as mmdet's.
        face_model: the face model (used to follow mmdet's ``Pad``).

    Raises:
        ValueError: GT instance keys disagree in length (a transform that does not know
            poses dropped instances).
    """

    mapping_table = {
        'gt_bboxes': 'bboxes',
        'gt_bboxes_labels': 'labels',
        'gt_masks': 'masks',
        'gt_landmarks': 'landmarks',
    }

    def __init__(self, meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                  'scale_factor', 'flip', 'flip_direction'),
                 face_model: FaceModelLike = None) -> None:
        super().__init__(meta_keys=meta_keys)
        self.face_model = FaceModel.build(face_model)

    def transform(self, results: dict) -> dict:
        """Pack image, meta and GT instances."""
        num_instances(results)
        follow_pad(results, self.face_model, allow_original_frame=True)
        if results.get('gt_landmarks') is not None:
            results['gt_landmarks'] = np.asarray(results['gt_landmarks'], dtype=np.float32)
        poses = results.pop('gt_poses', None)
        packed = super().transform(results)
        if poses is not None:
            sample = packed['data_samples']
            flags = results.get('gt_ignore_flags')
            if flags is None:
                sample.gt_instances.poses = poses
            else:
                flags = np.asarray(flags, dtype=bool)
                sample.gt_instances.poses = poses[~flags]
                sample.ignored_instances.poses = poses[flags]
            results['gt_poses'] = poses
        return packed


__all__ = ['PoseToBBox', 'BlackOutFacesWithoutPose', 'PackFacePoseInputs']
