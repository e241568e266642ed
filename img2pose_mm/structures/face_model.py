"""The face model: the 3D reference face and the rules that tie poses to boxes
(docs/conventions.md, "The face model")."""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from .pnp import pose_from_landmarks
from .pose import (
    ROTATION_METHODS,
    ShapeLike,
    global_to_local,
    local_to_global,
    points_to_bbox,
    project_pose_points,
)
from .reference_face import load_reference_points

PointsLike = Union[None, str, os.PathLike, np.ndarray, Tensor]
FaceModelLike = Union[None, 'FaceModel', Mapping[str, Any]]

#: The settings a face model is made of besides its points, with their defaults.
FACE_MODEL_SETTINGS = dict(bbox_x_factor=1.1, bbox_y_factor=1.1, expand_forehead=0.3,
                           rotation_method='svd', integer_box_centre=False)


def _points(value: PointsLike, num_points: int) -> Tuple[Tensor, str]:
    """Reference points as a float32 ``(num_points, 3)`` tensor and where they came from."""
    if value is None:
        return torch.from_numpy(load_reference_points(None, num_points)), 'packaged'
    if isinstance(value, (str, os.PathLike)):
        return (torch.from_numpy(load_reference_points(value, num_points)),
                os.path.basename(os.fspath(value)))
    points = torch.as_tensor(np.asarray(value, dtype=np.float32) if not isinstance(value, Tensor)
                             else value.detach().cpu().float())
    if tuple(points.shape) != (num_points, 3) or not torch.isfinite(points).all():
        raise ValueError(f'reference points must be {num_points} x 3 finite numbers, got shape '
                         f'{tuple(points.shape)}')
    return points.clone(), 'array'


class FaceModel(nn.Module):
    """The 3D reference face plus the pose <-> box rules (docs/conventions.md).

    An ``nn.Module`` whose state is all tensors (the points as buffers, the rules as its
    extra state), so the face travels in every checkpoint of a model that owns it, and
    moves, broadcasts and averages like any other weight.

    Args:
        reference_points: the 68 points: ``None`` (the packaged face), an ``.npy`` path
            (e.g. the original ``reference_3d_68_points_trans.npy``) or a ``(68, 3)``
            array.
        reference_points_5: the 5 alignment points, likewise.
        bbox_x_factor, bbox_y_factor, expand_forehead: the box-from-pose rule.
        rotation_method: ``'svd'`` (exact nearest rotation, what scipy >= 1.16
            ``Rotation.from_matrix`` does) or ``'markley'`` (the quaternion formula on the
            sheared matrix, as the scipy of 2021 the original was trained with).
        integer_box_centre: decode with the box centre truncated to an integer (the
            original's inference); encoding (training targets) always uses the
            fractional centre, as the original's loss.
    """

    def __init__(self,
                 reference_points: PointsLike = None,
                 reference_points_5: PointsLike = None,
                 bbox_x_factor: float = 1.1,
                 bbox_y_factor: float = 1.1,
                 expand_forehead: float = 0.3,
                 rotation_method: str = 'svd',
                 integer_box_centre: bool = False) -> None:
        super().__init__()
        if rotation_method not in ROTATION_METHODS:
            raise ValueError(f'rotation_method must be one of {ROTATION_METHODS}, '
                             f'got {rotation_method!r}')
        points_68, self.source_68 = _points(reference_points, 68)
        points_5, self.source_5 = _points(reference_points_5, 5)
        self.register_buffer('points_68', points_68)
        self.register_buffer('points_5', points_5)
        self.bbox_x_factor = float(bbox_x_factor)
        self.bbox_y_factor = float(bbox_y_factor)
        self.expand_forehead = float(expand_forehead)
        self.rotation_method = rotation_method
        self.integer_box_centre = bool(integer_box_centre)
        #: whether a config named this face: a checkpoint with another one then warns
        self.declared = False

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, cfg: FaceModelLike = None) -> FaceModel:
        """A face model from ``None`` (the default), a dict of arguments or a face model."""
        if cfg is None:
            return cls()
        if isinstance(cfg, FaceModel):
            return cfg
        if isinstance(cfg, Mapping):          # dict() = the defaults
            cfg = {k: v for k, v in dict(cfg).items() if k != 'type'}
            return cls(**cfg)
        raise TypeError(f'face_model must be None, a dict or a FaceModel, got '
                        f'{type(cfg).__name__}')

    def settings(self) -> Dict[str, Any]:
        """The rules of this face (everything but the points)."""
        return {key: getattr(self, key) for key in FACE_MODEL_SETTINGS}

    # The rules are the module's extra state: one float64 tensor, so that every tool
    # that handles state dicts (checkpoints, DDP broadcasts, EMA) handles them.
    def get_extra_state(self) -> Tensor:
        return torch.tensor([self.bbox_x_factor, self.bbox_y_factor, self.expand_forehead,
                             ROTATION_METHODS.index(self.rotation_method),
                             float(self.integer_box_centre)], dtype=torch.float64)

    def set_extra_state(self, state: Tensor) -> None:
        x, y, forehead, method, integer = torch.as_tensor(state).double().tolist()
        self.bbox_x_factor, self.bbox_y_factor, self.expand_forehead = x, y, forehead
        self.rotation_method = ROTATION_METHODS[int(round(method))]
        self.integer_box_centre = bool(integer)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        """Load a checkpoint's face; a different one than the config declared warns."""
        incoming = {k: state_dict[prefix + k] for k in ('points_68', 'points_5', '_extra_state')
                    if prefix + k in state_dict}
        if self.declared and len(incoming) == 3:
            other = FaceModel(incoming['points_68'], incoming['points_5'])
            other.set_extra_state(incoming['_extra_state'])
            other.source_68 = other.source_5 = 'checkpoint'
            if not self.same_as(other):
                warnings.warn(f'the checkpoint was trained with {other!r} but the config '
                              f'declares {self!r}: decoding with the checkpoint\'s face',
                              stacklevel=2)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if len(incoming) == 3:
            self.source_68 = self.source_5 = 'checkpoint'

    def same_as(self, other: FaceModel, atol: float = 1e-6) -> bool:
        """Same rules and (within ``atol``) the same points."""
        return (self.settings() == other.settings()
                and torch.allclose(self.points_68.cpu(), other.points_68.cpu(), rtol=0, atol=atol)
                and torch.allclose(self.points_5.cpu(), other.points_5.cpu(), rtol=0, atol=atol))

    def fingerprint(self) -> str:
        """A short hash of the points (what tells two faces apart in messages)."""
        digest = hashlib.sha1(self.points_68.detach().cpu().float().numpy().tobytes())
        digest.update(self.points_5.detach().cpu().float().numpy().tobytes())
        return digest.hexdigest()[:8]

    def extra_repr(self) -> str:
        centre = 'integer' if self.integer_box_centre else 'fractional'
        return (f'points {self.source_68}/{self.source_5} #{self.fingerprint()}, rotation '
                f'{self.rotation_method!r}, decode box centre {centre}, box x'
                f'{self.bbox_x_factor:g} y{self.bbox_y_factor:g} forehead '
                f'{self.expand_forehead:g}')

    # ------------------------------------------------------------------ geometry
    def points(self, num_points: int = 68, like: Optional[Tensor] = None) -> Tensor:
        """The 68 or 5 reference points, in the dtype/device of ``like``."""
        points = {68: self.points_68, 5: self.points_5}.get(num_points)
        if points is None:
            raise ValueError(f'num_points must be 5 or 68, got {num_points}')
        return points if like is None else points.to(like)

    def encode(self, poses: Tensor, bboxes: Tensor, img_shape: ShapeLike) -> Tensor:
        """Global poses ``(N, 6)`` -> poses local to ``bboxes`` (training targets)."""
        return global_to_local(poses, bboxes.to(poses), img_shape, self.rotation_method)

    def decode(self, poses: Tensor, bboxes: Tensor, img_shape: ShapeLike) -> Tensor:
        """Poses local to ``bboxes`` -> global poses (with this face's box-centre rounding)."""
        return local_to_global(poses, bboxes.to(poses), img_shape, self.rotation_method,
                               integer_centre=self.integer_box_centre)

    def project(self, poses: Tensor, img_shape: ShapeLike, num_points: int = 68) -> Tensor:
        """Pixels ``(N, M, 2)`` of the reference points under global ``poses`` ``(N, 6)``."""
        return project_pose_points(self.points(num_points, poses), poses, img_shape)

    def points_to_bbox(self, points_2d: Tensor, roll: Tensor,
                       img_shape: Optional[ShapeLike] = None) -> Tensor:
        """This face's box rule applied to 2D points ``(N, M, 2)`` (e.g. landmarks)."""
        return points_to_bbox(points_2d, roll, img_shape, self.bbox_x_factor,
                              self.bbox_y_factor, self.expand_forehead)

    def pose_to_bbox(self, poses: Tensor, img_shape: ShapeLike, clip: bool = True) -> Tensor:
        """Face boxes ``(N, 4)`` of global poses: the projected 68 points, boxed."""
        return self.points_to_bbox(self.project(poses, img_shape), poses[..., 2],
                                   img_shape if clip else None)

    def pose_from_landmarks(self, landmarks: np.ndarray, img_shape: Sequence[int]
                            ) -> Tuple[Tensor, Tensor]:
        """EPnP global poses of ``(N, M, 2)`` landmarks (M = 5 or 68) in the image camera."""
        num_points = np.shape(landmarks)[1] if np.ndim(landmarks) == 3 else 68
        return pose_from_landmarks(landmarks, self.points(num_points).detach().cpu().numpy(),
                                   img_shape)


__all__ = ['FaceModel', 'FaceModelLike', 'FACE_MODEL_SETTINGS']
