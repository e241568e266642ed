"""Draw the faces of :class:`~img2pose_mm.apis.Img2Pose` (used by the demos)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from img2pose_mm.structures import FIVE_POINT_NAMES

Color = Tuple[int, int, int]


def draw_faces(image: np.ndarray, faces: Sequence[dict], mesh: bool = True, axes: bool = True,
               boxes: bool = True, keypoints: bool = True, mesh_alpha: float = 0.5,
               mesh_color: Color = (130, 170, 255), box_color: Color = (0, 255, 0),
               keypoint_color: Color = (255, 255, 0),
               axis_length: float = 1.0, img_shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """A copy of ``image`` (RGB uint8) with each face's mesh overlay, pose axes, box with
    confidence and keypoints (colours RGB; draw functions of
    :mod:`img2pose_mm.visualization.draw`).

    Args:
        faces: face dicts (``box``, ``confidence``, ``pose``, ``keypoints``), poses in
            the camera of ``image`` (or of ``img_shape`` ``(h, w)`` when given).
    """
    from img2pose_mm.visualization.draw import (
        draw_bboxes,
        draw_landmarks,
        draw_pose_axes,
        render_pose_meshes,
    )
    out = np.ascontiguousarray(image).copy()
    if not faces:
        return out
    poses = np.array([f['pose'] for f in faces], dtype=np.float64)
    if mesh:
        out = render_pose_meshes(out, poses, img_shape=img_shape, color=mesh_color,
                                 alpha=mesh_alpha)
    if boxes:
        out = draw_bboxes(out, np.array([f['box'] for f in faces], dtype=np.float64),
                          color=box_color, thickness=max(1, round(min(out.shape[:2]) / 300)),
                          scores=np.array([f['confidence'] for f in faces]))
    if axes:
        out = draw_pose_axes(out, poses, img_shape=img_shape, length=axis_length)
    if keypoints:
        points = np.array([[f['keypoints'][n] for n in FIVE_POINT_NAMES] for f in faces],
                          dtype=np.float64)
        out = draw_landmarks(out, points, color=keypoint_color,
                             radius=max(1, round(min(out.shape[:2]) / 250)))
    return out


__all__ = ['draw_faces']
