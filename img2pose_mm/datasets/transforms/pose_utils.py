"""Helpers shared by the pose-aware transforms (not registered).

The pipeline keeps ``results['pose_img_shape']``: the ``(h, w)`` of the image whose
camera ``gt_poses`` are relative to. Pose-aware transforms keep it equal to the image
shape; when mmdet's ``Pad`` (which is not pose-aware) grows the image at the bottom/right,
:func:`sync_pose_frame` re-expresses the poses in the padded image's camera.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from mmdet.structures.bbox import BaseBoxes

from img2pose_mm.structures import (
    landmarks_valid,
    load_reference_points,
    pose_from_landmarks,
    project_pose_points,
    warp_pose,
)

from ..face_annotations import LANDMARK_MISSING, POSE_SENTINEL

POSE_FRAME_KEY = 'pose_img_shape'
INSTANCE_KEYS = ('gt_bboxes', 'gt_bboxes_labels', 'gt_ignore_flags', 'gt_poses', 'gt_landmarks')


def reference_points_68(path: Optional[str] = None) -> torch.Tensor:
    """The 68 reference points as a float64 tensor (packaged face by default)."""
    return torch.from_numpy(load_reference_points(path, 68)).double()


def image_hw(results: dict) -> Tuple[int, int]:
    """``(h, w)`` of the current image."""
    if results.get('img') is not None:
        return tuple(int(v) for v in results['img'].shape[:2])
    return tuple(int(v) for v in results['img_shape'][:2])


def pose_valid_mask(poses: np.ndarray) -> np.ndarray:
    """Rows of ``poses`` ``(N, 6)`` that hold a pose (not the -9 sentinel)."""
    poses = np.asarray(poses)
    return ~np.all(poses == POSE_SENTINEL, axis=-1) & np.isfinite(poses).all(-1)


def landmark_valid_mask(landmarks: np.ndarray) -> np.ndarray:
    """Rows of ``landmarks`` ``(N, M, 2)`` that hold usable landmarks."""
    if len(landmarks) == 0:
        return np.zeros(0, dtype=bool)
    return landmarks_valid(landmarks)


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
    """Apply an affine pixel map to the usable landmarks; unusable rows stay -1."""
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


def _mean_point_error(points: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean distance between point sets ``(N, M, 2)``, divided by the target's size."""
    size = (target.amax(-2) - target.amin(-2)).amax(-1).clamp(min=1e-6)
    return (points - target).norm(dim=-1).mean(-1) / size


def update_poses(poses: np.ndarray, src_shape: Sequence[int], dst_shape: Sequence[int],
                 pixel_map: np.ndarray, points: torch.Tensor, refine: bool = True,
                 tolerance: float = 1e-3) -> np.ndarray:
    """Global poses after an affine pixel map from an image ``src_shape`` to ``dst_shape``.

    :func:`~img2pose_mm.structures.warp_pose` is exact when the camera keeps its
    shape (flip, isotropic resize), but the image camera's focal is ``w + h``, so a crop
    or pad changes the focal while the pixels stay put, and an anisotropic resize
    squeezes the view: no rigid pose then reproduces the moved face exactly and the
    closed form leaves a few percent of the face size off at the face's edges. With
    ``refine``, faces whose reference points land more than ``tolerance`` (mean, in face
    sizes) off are re-solved with EPnP against their moved projections under the new
    camera (what labelling the transformed image would give), and the better pose kept.

    Args:
        poses: ``(N, 6)``; rows holding the -9 sentinel are kept as they are.
        pixel_map: ``(3, 3)``: ``[u', v', 1] = pixel_map @ [u, v, 1]``.
        points: ``(68, 3)`` float64 reference points.

    Returns:
        float32 ``(N, 6)``.
    """
    poses = np.asarray(poses)
    out = np.array(poses, dtype=np.float32, copy=True)
    valid = pose_valid_mask(poses)
    if not valid.any():
        return out
    src_shape = tuple(int(v) for v in src_shape[:2])
    dst_shape = tuple(int(v) for v in dst_shape[:2])
    old = torch.from_numpy(np.asarray(poses[valid], dtype=np.float64))
    pmap = torch.as_tensor(np.asarray(pixel_map, dtype=np.float64))
    new = warp_pose(old, src_shape, dst_shape, pmap)
    if refine:
        target = project_pose_points(points, old, src_shape) @ pmap[:2, :2].T + pmap[:2, 2]
        err = _mean_point_error(project_pose_points(points, new, dst_shape), target)
        redo = torch.nonzero(err > tolerance).flatten()
        if len(redo):
            refit, solved = pose_from_landmarks(target[redo].numpy(), points.numpy(), dst_shape)
            refit_err = _mean_point_error(project_pose_points(points, refit, dst_shape),
                                          target[redo])
            better = solved & (refit[:, 5] > 0) & (refit_err < err[redo])
            new[redo[better]] = refit[better]
    out[valid] = new.numpy().astype(np.float32)
    return out


def sync_pose_frame(results: dict, points: torch.Tensor, refine: bool = True) -> None:
    """Make ``gt_poses`` relative to the current image's camera.

    Nothing to do when the poses already follow the image (``pose_img_shape`` equals
    the image shape) or are not tracked (annotations loaded after a resize, as in test
    pipelines). A bottom/right pad (mmdet's ``Pad``: ``pad_shape`` equals the image
    shape, which only grew) moves the poses to the padded camera.

    Raises:
        RuntimeError: the image geometry changed in a way the poses do not follow.
    """
    frame = results.get(POSE_FRAME_KEY)
    if frame is None or results.get('gt_poses') is None:
        return
    frame = tuple(int(v) for v in frame[:2])
    current = image_hw(results)
    if frame == current:
        return
    pad_shape = results.get('pad_shape')
    padded = (pad_shape is not None and tuple(int(v) for v in pad_shape[:2]) == current
              and current[0] >= frame[0] and current[1] >= frame[1])
    if not padded:
        raise RuntimeError(
            f'gt_poses are relative to an image of shape {frame} but the image is now '
            f'{current}: a transform that is not pose-aware changed the image geometry; use '
            'PoseResize / PoseMultiScaleResize / PoseRandomFlip / PoseRandomCrop instead of '
            "mmdet's Resize / RandomFlip / RandomCrop")
    results['gt_poses'] = update_poses(results['gt_poses'], frame, current, np.eye(3), points,
                                       refine)
    results[POSE_FRAME_KEY] = current


__all__ = ['POSE_FRAME_KEY', 'INSTANCE_KEYS', 'reference_points_68', 'image_hw',
           'pose_valid_mask', 'landmark_valid_mask', 'num_instances', 'select_instances',
           'boxes_numpy', 'set_boxes', 'map_landmarks', 'record_homography', 'update_poses',
           'sync_pose_frame']
