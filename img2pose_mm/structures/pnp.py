"""Landmarks -> global 6DoF pose by EPnP (how img2pose's training data is labelled)."""
from __future__ import annotations

from typing import Sequence, Tuple

import cv2
import numpy as np
import torch

from .pose import image_intrinsics

#: Value of every coordinate of a landmark set that is missing ("no pose" in the
#: img2pose JSON list).
LANDMARK_MISSING = -1.0


def landmarks_valid(landmarks: np.ndarray) -> np.ndarray:
    """Faces whose landmarks are usable: finite and free of the ``-1`` "no pose" marker.

    Args:
        landmarks: ``(N, M, 2)``.

    Returns:
        ``(N,)`` bool.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f'landmarks must be (N, M, 2), got {landmarks.shape}')
    return np.isfinite(landmarks).all((1, 2)) & ~(landmarks == LANDMARK_MISSING).any((1, 2))


def solve_pnp(landmarks: np.ndarray, reference_points: np.ndarray, intrinsics: np.ndarray,
              single_precision: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Poses of faces from their 2D landmarks with ``cv2.solvePnP`` (EPnP), no distortion.

    Args:
        landmarks: ``(N, M, 2)`` pixel coordinates, M = 5 or 68, matching
            ``reference_points`` ``(M, 3)``.
        intrinsics: the camera ``(3, 3)``, or one per face ``(N, 3, 3)``.
        single_precision: hand the points to cv2 as float32 (what the original img2pose
            labelling does) instead of float64.

    Returns:
        poses ``(N, 6)`` float64 (rows of faces without a solution are NaN) and a
        ``(N,)`` bool mask of faces that got a pose (unusable landmarks get none).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    reference_points = np.asarray(reference_points, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (reference_points.shape[0], 2):
        raise ValueError(f'landmarks {landmarks.shape} do not match reference points '
                         f'{reference_points.shape}: expected (N, {reference_points.shape[0]}, 2)')
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    if intrinsics.ndim == 2:
        intrinsics = np.broadcast_to(intrinsics, (len(landmarks), 3, 3))
    dtype = np.float32 if single_precision else np.float64
    object_points = reference_points.astype(dtype)
    valid = landmarks_valid(landmarks)
    poses = np.full((len(landmarks), 6), np.nan)
    for i in np.flatnonzero(valid):   # cv2 solves one face per call
        ok, rvec, tvec = cv2.solvePnP(object_points, landmarks[i].astype(dtype),
                                      np.ascontiguousarray(intrinsics[i]), None,
                                      flags=cv2.SOLVEPNP_EPNP)
        if ok and np.isfinite(rvec).all() and np.isfinite(tvec).all():
            poses[i] = np.concatenate([rvec.ravel(), tvec.ravel()])
        else:
            valid[i] = False
    return torch.from_numpy(poses), torch.from_numpy(valid)


def pose_from_landmarks(landmarks: np.ndarray, reference_points: np.ndarray,
                        img_shape: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Global poses of faces from their 2D landmarks: :func:`solve_pnp` in the image's
    camera (``f = w + h``, centre ``(w // 2, h // 2)``).

    Args:
        landmarks: ``(N, M, 2)`` pixel coordinates, M = 5 or 68, matching
            ``reference_points`` ``(M, 3)``.
        img_shape: ``(h, w)`` of the image the landmarks live in.

    Returns:
        poses ``(N, 6)`` and the mask of faces that got one, as :func:`solve_pnp`.
    """
    return solve_pnp(landmarks, reference_points, image_intrinsics(tuple(img_shape)).numpy())
