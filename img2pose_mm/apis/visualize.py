"""Draw the faces of :class:`~img2pose_mm.apis.Img2Pose` (used by the demos)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from img2pose_mm.structures import FIVE_POINT_NAMES, CameraLike, camera_intrinsics

Color = Tuple[int, int, int]


def draw_faces(image: np.ndarray, faces: Sequence[dict], mesh: bool = True, axes: bool = True,
               boxes: bool = True, keypoints: bool = True, mesh_alpha: float = 0.5,
               mesh_color: Color = (130, 170, 255), box_color: Color = (0, 255, 0),
               keypoint_color: Color = (255, 255, 0),
               axis_length: float = 1.0, img_shape: Optional[Sequence[int]] = None,
               landmarks: bool = True, landmark_color: Color = (255, 80, 200),
               camera: CameraLike = None) -> np.ndarray:
    """A copy of ``image`` (RGB uint8) with each face's mesh overlay, pose axes, box with
    confidence (and ``track_id`` when the faces have one), keypoints and 68 landmarks
    (when the faces have them; colours RGB; draw functions of
    :mod:`img2pose_mm.visualization.draw`).

    Args:
        faces: face dicts (``box``, ``confidence``, ``pose``, ``keypoints``, optional
            ``landmarks``, ``track_id``), poses in the camera of ``image`` (or of
            ``img_shape`` ``(h, w)`` when given).
        landmarks: draw ``face['landmarks']`` where present.
        camera: the camera the poses are expressed in, as given to
            :class:`~img2pose_mm.apis.Img2Pose` (``None``: img2pose's camera of the
            image).
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
    shape = tuple(img_shape[:2]) if img_shape is not None else out.shape[:2]
    intrinsics = None if camera is None else camera_intrinsics(camera, shape)
    poses = np.array([f['pose'] for f in faces], dtype=np.float64)
    radius = max(1, round(min(out.shape[:2]) / 250))
    if mesh:
        out = render_pose_meshes(out, poses, img_shape=img_shape, color=mesh_color,
                                 alpha=mesh_alpha, intrinsics=intrinsics)
    if boxes:
        labels = ([f"#{f['track_id']}" for f in faces]
                  if all('track_id' in f for f in faces) else None)
        out = draw_bboxes(out, np.array([f['box'] for f in faces], dtype=np.float64),
                          color=box_color, thickness=max(1, round(min(out.shape[:2]) / 300)),
                          scores=np.array([f['confidence'] for f in faces]), labels=labels)
    if axes:
        out = draw_pose_axes(out, poses, img_shape=img_shape, length=axis_length,
                             intrinsics=intrinsics)
    if landmarks:
        points = [f['landmarks'] for f in faces if f.get('landmarks') is not None]
        if points:
            out = draw_landmarks(out, np.array(points, dtype=np.float64), color=landmark_color,
                                 radius=max(1, radius - 1))
    if keypoints:
        points = np.array([[f['keypoints'][n] for n in FIVE_POINT_NAMES] for f in faces],
                          dtype=np.float64)
        out = draw_landmarks(out, points, color=keypoint_color, radius=radius)
    return out


__all__ = ['draw_faces']
