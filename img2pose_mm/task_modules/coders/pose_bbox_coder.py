"""The img2pose box coder: proposal-local, normalised 6DoF poses <-> global poses + boxes."""
from __future__ import annotations

import os
from typing import Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.models.task_modules.coders import BaseBBoxCoder
from mmdet.registry import TASK_UTILS
from torch import Tensor, nn

from img2pose_mm.structures import FaceModel, FaceModelLike
from img2pose_mm.utils.precision import full_precision

ArrayLike = Union[Sequence[float], np.ndarray, Tensor, str, os.PathLike, None]
ShapeLike = Union[Sequence[int], Tensor]


def load_pose_stats(value: ArrayLike, default: float, name: str) -> Tensor:
    """Pose mean/stddev from a list, an array or an ``.npy`` path, as a float32 ``(6,)``."""
    if value is None:
        return torch.full((6,), float(default))
    if isinstance(value, (str, os.PathLike)):
        if not os.path.isfile(value):
            raise FileNotFoundError(f'{name} file not found: {value}')
        value = np.load(value)
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    stats = torch.as_tensor(np.asarray(value, dtype=np.float32)).reshape(-1)
    if stats.numel() != 6 or not torch.isfinite(stats).all():
        raise ValueError(f'{name} must hold 6 finite numbers, got {stats.tolist()}')
    if name == 'pose_stddev' and (stats <= 0).any():
        raise ValueError(f'pose_stddev must be positive, got {stats.tolist()}')
    return stats


@TASK_UTILS.register_module()
class PoseBBoxCoder(BaseBBoxCoder, nn.Module):
    """Encode global face poses as normalised poses local to their proposals; decode back.

    ``encode`` is img2pose's regression target: the matched GT global pose expressed
    in the proposal's frame, normalised by the training-set statistics. ``decode``
    inverts it and derives the face box by projecting the 68 reference points, so
    there is no box-delta regression at all. Every pose <-> pixel rule comes from the
    :class:`~img2pose_mm.structures.FaceModel`. An ``nn.Module``, so every checkpoint
    carries the face and the statistics (docs/conventions.md, "The face model").

    Args:
        face_model: a :class:`~img2pose_mm.structures.FaceModel` or its arguments
            (``dict(reference_points=..., rotation_method=..., ...)``); ``None`` or
            ``dict()`` = the packaged face with the default rules, silently replaced by a
            checkpoint's (a declared face that differs from the checkpoint's warns).
        pose_mean, pose_stddev: statistics of box-local GT poses: 6 numbers or an
            ``.npy`` path (e.g. ``WIDER_train_pose_mean_v1.npy``). Defaults 0 / 1.
    """

    encode_size = 6

    def __init__(self,
                 face_model: FaceModelLike = None,
                 pose_mean: ArrayLike = None,
                 pose_stddev: ArrayLike = None,
                 use_box_type: bool = False) -> None:
        nn.Module.__init__(self)
        BaseBBoxCoder.__init__(self, use_box_type=use_box_type)
        self.face_model = FaceModel.build(face_model)
        # a face named in the config (any field given) is worth a warning when a checkpoint
        # brings another one; the default face is silently replaced
        self.face_model.declared = isinstance(face_model, FaceModel) or bool(face_model)
        self.register_buffer('pose_mean', load_pose_stats(pose_mean, 0.0, 'pose_mean'))
        self.register_buffer('pose_stddev', load_pose_stats(pose_stddev, 1.0, 'pose_stddev'))

    # ------------------------------------------------------------------ coding
    @property
    def points5(self) -> Tensor:
        """The 5 reference points of the face model (``loss_points``, alignment)."""
        return self.face_model.points_5

    def _stats(self, like: Tensor) -> Tuple[Tensor, Tensor]:
        return self.pose_mean.to(like), self.pose_stddev.to(like)

    def normalize(self, poses: Tensor) -> Tensor:
        """``(p - mean) / std``."""
        mean, std = self._stats(poses)
        return (poses - mean) / std

    def denormalize(self, poses: Tensor) -> Tensor:
        """``p * std + mean``."""
        mean, std = self._stats(poses)
        return poses * std + mean

    @full_precision
    def encode(self, bboxes: Tensor, gt_poses: Tensor, img_shape: ShapeLike) -> Tensor:
        """Regression targets ``(N, 6)`` of global ``gt_poses`` for proposals ``bboxes``.

        Args:
            bboxes: proposals ``(N, 4)``.
            gt_poses: matched global GT poses ``(N, 6)``.
            img_shape: ``(h, w)`` of the network input (before padding), or ``(N, 2)``.
        """
        return self.normalize(self.face_model.encode(gt_poses, bboxes, img_shape))

    @full_precision
    def decode(self, bboxes: Tensor, pred_poses: Tensor,
               img_shape: ShapeLike) -> Tuple[Tensor, Tensor]:
        """Global poses and pose-projected boxes from predictions.

        Args:
            bboxes: the proposals the predictions are relative to, ``(N, 4)``.
            pred_poses: normalised local poses ``(N, 6)``.
            img_shape: ``(h, w)``, or ``(N, 2)``.

        Returns:
            ``(global poses (N, 6), boxes (N, 4))``, boxes truncated to integers and
            clipped to the image.
        """
        poses = self.face_model.decode(self.denormalize(pred_poses), bboxes, img_shape)
        return poses, self.face_model.pose_to_bbox(poses, img_shape)
