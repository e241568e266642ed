"""What a face dict of :class:`~img2pose_mm.apis.Img2Pose` holds, built from global poses
(docs/conventions.md, "What the numbers mean").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor

from img2pose_mm.structures import (
    FIVE_POINT_NAMES,
    CameraLike,
    FaceModel,
    camera_intrinsics,
    change_camera,
    check_convention,
    euler_names,
    image_intrinsics,
    rotvec_to_euler,
)

Face = Dict[str, Any]
#: The order of the keys of ``face['euler']``.
EULER_KEYS = ('yaw', 'pitch', 'roll')


def _landmarks(value: Any) -> Optional[int]:
    """``None`` / ``0`` / ``False`` -> no landmarks; ``68`` (or ``True``) -> 68 points."""
    if value is None or value is False or value == 0:
        return None
    if value is True or value == 68:
        return 68
    raise ValueError(f'landmarks must be None or 68 (the iBUG points; the 5 keypoints are '
                     f'always given), got {value!r}')


@dataclass(frozen=True)
class FaceOutputs:
    """What the face dicts hold beyond box, confidence, pose and keypoints.

    Args:
        euler: Euler convention of ``face['euler']`` (``'aflw'``, ``'XYZ'``, ... see
            :mod:`img2pose_mm.structures.euler`) or ``None`` for no ``'euler'`` key.
        landmarks: ``68`` adds ``face['landmarks']``, the 68 projected reference points.
        camera: the camera of ``pose`` and ``euler`` (see
            :func:`~img2pose_mm.structures.camera_intrinsics`): ``None`` is img2pose's
            camera of the image, else a focal length in pixels or a ``3 x 3`` matrix.
    """
    euler: Optional[str] = 'aflw'
    landmarks: Optional[int] = None
    camera: CameraLike = None

    def __post_init__(self) -> None:
        if self.euler is not None:
            check_convention(self.euler)
        object.__setattr__(self, 'landmarks', _landmarks(self.landmarks))
        if self.camera is not None:          # fail early on a malformed camera
            camera_intrinsics(self.camera, (1, 1))

    def replace(self, **changes: Any) -> FaceOutputs:
        """A copy with ``changes`` (keys of this class; ``...`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not ...}
        return dataclasses.replace(self, **changes) if changes else self


def camera_from_values(values: Optional[Sequence[float]]) -> CameraLike:
    """A camera from command-line numbers: none, one (a focal length in pixels) or nine
    (a 3 x 3 matrix, row by row)."""
    if not values:
        return None
    values = [float(v) for v in values]
    if len(values) == 1:
        return values[0]
    if len(values) == 9:
        return [values[0:3], values[3:6], values[6:9]]
    raise ValueError(f'a camera is one number (the focal length in pixels) or nine (the 3x3 '
                     f'matrix, row by row), got {len(values)}: {values}')


def faces_from_poses(poses: Tensor, scores: Tensor, img_shape: Sequence[int],
                     face_model: FaceModel, outputs: FaceOutputs = FaceOutputs(),
                     boxes: Optional[Tensor] = None) -> List[Face]:
    """Face dicts (docs/conventions.md) of global poses ``(N, 6)`` in img2pose's camera of an
    image ``(h, w)``.

    Args:
        poses: ``(N, 6)`` global poses in ``K0`` of ``img_shape``.
        scores: ``(N,)`` confidences.
        face_model: the face the poses were decoded with (points and box rule).
        outputs: Euler convention, landmarks and camera.
        boxes: ``(N, 4)`` boxes to report (default: ``face_model.pose_to_bbox`` of the
            poses, which is what the detector reports).
    """
    img_shape = (int(img_shape[0]), int(img_shape[1]))
    poses = torch.as_tensor(poses).detach().cpu().double().reshape(-1, 6)
    scores = torch.as_tensor(scores).detach().cpu().double().reshape(-1)
    if len(scores) != len(poses):
        raise ValueError(f'{len(poses)} poses but {len(scores)} scores')
    if len(poses) == 0:
        return []
    if boxes is None:
        boxes = face_model.pose_to_bbox(poses, img_shape)
    boxes = torch.as_tensor(boxes).detach().cpu().double().reshape(-1, 4)
    keypoints = face_model.project(poses, img_shape, 5)
    landmarks = face_model.project(poses, img_shape, 68) if outputs.landmarks else None
    out_poses = poses
    if outputs.camera is not None:
        out_poses = change_camera(poses, image_intrinsics(img_shape, poses),
                                  camera_intrinsics(outputs.camera, img_shape, poses),
                                  face_model.points(68, poses))
    faces: List[Face] = [{'box': box, 'confidence': score, 'pose': pose}
                         for box, score, pose in zip(boxes.tolist(), scores.tolist(),
                                                     out_poses.tolist())]
    if outputs.euler is not None:
        names = euler_names(outputs.euler)
        angles = rotvec_to_euler(out_poses[:, :3], outputs.euler).tolist()
        for face, values in zip(faces, angles):
            named = dict(zip(names, values))
            face['euler'] = {key: named[key] for key in EULER_KEYS}
    for i, face in enumerate(faces):
        face['keypoints'] = dict(zip(FIVE_POINT_NAMES, keypoints[i].tolist()))
        if landmarks is not None:
            face['landmarks'] = landmarks[i].tolist()
    return faces


__all__ = ['Face', 'FaceOutputs', 'EULER_KEYS', 'camera_from_values', 'faces_from_poses']
