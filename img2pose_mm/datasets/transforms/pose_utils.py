"""Helpers shared by the pose-aware transforms (not registered); ``results['gt_poses']`` is
a :class:`~img2pose_mm.structures.FacePoses` that knows its image, so they call its methods."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from mmdet.structures.bbox import BaseBoxes

from img2pose_mm.structures import LANDMARK_MISSING, FaceModel, FacePoses, landmarks_valid

INSTANCE_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags', 'gt_poses', 'gt_landmarks')


def image_hw(results: dict) -> Tuple[int, int]:
    """``(h, w)`` of the current image."""
    if results.get('img') is not None:
        return tuple(int(v) for v in results['img'].shape[:2])
    return tuple(int(v) for v in results['img_shape'][:2])


def landmark_valid_mask(landmarks: np.ndarray) -> np.ndarray:
    """Rows of ``landmarks`` ``(N, M, 2)`` that hold usable landmarks."""
    if len(landmarks) == 0:
        return np.zeros(0, dtype=bool)
    return landmarks_valid(landmarks)


def pose_valid_mask(results: dict) -> np.ndarray:
    """Faces with a pose (all faces when the pipeline has no poses)."""
    poses = results.get('gt_poses')
    if poses is None:
        return np.ones(num_instances(results), dtype=bool)
    return poses.valid.cpu().numpy()


def num_instances(results: dict) -> int:
    """Number of GT instances, checking every instance-level key agrees."""
    sizes = {k: len(results[k]) for k in INSTANCE_KEYS if results.get(k) is not None}
    if len(set(sizes.values())) > 1:
        raise ValueError(f'GT instance keys disagree in length: {sizes}. A transform that '
                         'does not know gt_poses/gt_landmarks dropped instances (e.g. '
                         "mmdet's FilterAnnotations or RandomCrop); use the Pose* transforms")
    return next(iter(sizes.values()), 0)


def select_instances(results: dict, keep: np.ndarray) -> None:
    """Keep the instances where ``keep`` (bool ``(N,)``) is true, in every instance key."""
    keep = np.asarray(keep, dtype=bool)
    for key in INSTANCE_KEYS:
        if results.get(key) is not None:
            results[key] = results[key][keep]


def boxes_numpy(boxes) -> np.ndarray:
    """``gt_bboxes`` (``BaseBoxes`` or array) as a float64 ``(N, 4)`` array."""
    if isinstance(boxes, BaseBoxes):
        return boxes.tensor.detach().cpu().numpy().astype(np.float64)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def set_boxes(results: dict, boxes: np.ndarray) -> None:
    """Write ``(N, 4)`` boxes back into ``gt_bboxes`` keeping its type."""
    old = results['gt_bboxes']
    if isinstance(old, BaseBoxes):
        results['gt_bboxes'] = type(old)(torch.as_tensor(boxes, dtype=old.tensor.dtype))
    else:
        results['gt_bboxes'] = np.asarray(boxes, dtype=np.float32)


def map_landmarks(landmarks: np.ndarray, pixel_map: np.ndarray) -> np.ndarray:
    """Apply an affine pixel map to the usable landmarks; unusable rows stay missing."""
    out = np.array(landmarks, dtype=np.float32, copy=True)
    valid = landmark_valid_mask(out)
    if valid.any():
        pts = out[valid].astype(np.float64)
        moved = pts @ pixel_map[:2, :2].T + pixel_map[:2, 2]
        out[valid] = moved.astype(np.float32)
    out[~valid] = LANDMARK_MISSING
    return out


def record_homography(results: dict, matrix: np.ndarray) -> None:
    """Compose ``matrix`` into ``results['homography_matrix']`` (mmdet's convention)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if results.get('homography_matrix') is None:
        results['homography_matrix'] = matrix
    else:
        results['homography_matrix'] = matrix @ results['homography_matrix']


def in_original_frame(results: dict, poses: FacePoses) -> bool:
    """Whether ``poses`` are test-time GT left in the original image's frame (loaded after a
    resize, like mmdet's boxes), which no transform moves."""
    scale = results.get('scale_factor')
    resized = scale is not None and tuple(float(s) for s in scale[:2]) != (1.0, 1.0)
    ori_shape = results.get('ori_shape')
    return resized and ori_shape is not None and poses.img_shape == tuple(
        int(v) for v in ori_shape[:2])


def follow_pad(results: dict, face_model: FaceModel = None, refine: bool = True,
               allow_original_frame: bool = False) -> None:
    """Make ``gt_poses`` relative to the current image's camera after mmdet's ``Pad``.

    Nothing to do when the poses already describe the current image, or, with
    ``allow_original_frame`` (packing), are test-time GT in the original frame
    (:func:`in_original_frame`). A bottom/right pad (``pad_shape`` equals the image shape,
    which only grew) moves the poses to the padded camera.

    Raises:
        RuntimeError: the image geometry changed in a way the poses do not follow.
    """
    poses = results.get('gt_poses')
    if poses is None:
        return
    current = image_hw(results)
    if poses.img_shape == current or (allow_original_frame
                                       and in_original_frame(results, poses)):
        return
    frame = poses.img_shape
    pad_shape = results.get('pad_shape')
    padded = (pad_shape is not None and tuple(int(v) for v in pad_shape[:2]) == current
              and current[0] >= frame[0] and current[1] >= frame[1])
    if not padded:
        raise RuntimeError(
            f'gt_poses are relative to an image of shape {frame} but the image is now '
            f'{current}: a transform that is not pose-aware changed the image geometry; use '
            'PoseResize / PoseMultiScaleResize / PoseRandomFlip / PoseRandomCrop instead of '
            "mmdet's Resize / RandomFlip / RandomCrop")
    poses.warp_(np.eye(3), current, face_model, refine)


__all__ = ['INSTANCE_KEYS', 'image_hw', 'landmark_valid_mask', 'pose_valid_mask',
           'num_instances', 'select_instances', 'boxes_numpy', 'set_boxes', 'map_landmarks',
           'record_homography', 'in_original_frame', 'follow_pad']
