"""The img2pose box coder: proposal-local, normalised 6DoF poses <-> global poses + boxes."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmdet.models.task_modules.coders import BaseBBoxCoder
from mmdet.registry import TASK_UTILS
from torch import Tensor

from img2pose_mm.structures import (
    ROTATION_METHODS,
    global_to_local,
    load_reference_points,
    local_to_global,
    pose_to_bbox,
)
from img2pose_mm.utils.precision import full_precision

ArrayLike = Union[Sequence[float], np.ndarray, Tensor, str, os.PathLike, None]


def load_pose_stats(value: ArrayLike, default: float, name: str) -> Tensor:
    """Pose mean/stddev from a list, an array or an ``.npy`` path, as a float32 ``(6,)``."""
    if value is None:
        return torch.full((6,), float(default))
    if isinstance(value, (str, os.PathLike)):
        if not os.path.isfile(value):
            raise FileNotFoundError(f'{name} file not found: {value}')
        value = np.load(value)
    stats = torch.as_tensor(np.asarray(value, dtype=np.float32)).reshape(-1)
    if stats.numel() != 6 or not torch.isfinite(stats).all():
        raise ValueError(f'{name} must hold 6 finite numbers, got {stats.tolist()}')
    if name == 'pose_stddev' and (stats <= 0).any():
        raise ValueError(f'pose_stddev must be positive, got {stats.tolist()}')
    return stats


@TASK_UTILS.register_module()
class PoseBBoxCoder(BaseBBoxCoder):
    """Encode global face poses as normalised poses local to their proposals; decode back.

    ``encode`` is img2pose's regression target: the matched GT global pose expressed
    in the proposal's frame (:func:`~img2pose_mm.structures.global_to_local`),
    normalised by the training-set statistics. ``decode`` inverts it and derives the
    face box by projecting the 68 reference points (SPEC §3), so there is no box-delta
    regression at all.

    Args:
        pose_mean, pose_stddev: statistics of box-local GT poses: 6 numbers or an
            ``.npy`` path (e.g. ``WIDER_train_pose_mean_v1.npy``). Defaults 0 / 1.
        reference_points: ``.npy`` with the 68 reference points (the original
            ``reference_3d_68_points_trans.npy`` works); ``None`` = ours.
        reference_points_5: ``.npy`` with the 5 alignment points for ``loss_points``.
        bbox_x_factor, bbox_y_factor, expand_forehead: the box-from-pose rule.
        rotation_method: ``'svd'`` (exact nearest rotation) or ``'markley'`` (the
            original img2pose numbers, for converted weights).
    """

    encode_size = 6

    def __init__(self,
                 pose_mean: ArrayLike = None,
                 pose_stddev: ArrayLike = None,
                 reference_points: Optional[str] = None,
                 reference_points_5: Optional[str] = None,
                 bbox_x_factor: float = 1.1,
                 bbox_y_factor: float = 1.1,
                 expand_forehead: float = 0.3,
                 rotation_method: str = 'svd',
                 use_box_type: bool = False) -> None:
        super().__init__(use_box_type=use_box_type)
        if rotation_method not in ROTATION_METHODS:
            raise ValueError(f'rotation_method must be one of {ROTATION_METHODS}, '
                             f'got {rotation_method!r}')
        self.pose_mean = load_pose_stats(pose_mean, 0.0, 'pose_mean')
        self.pose_stddev = load_pose_stats(pose_stddev, 1.0, 'pose_stddev')
        self.points68 = torch.from_numpy(load_reference_points(reference_points, 68))
        self.points5 = torch.from_numpy(load_reference_points(reference_points_5, 5))
        self.bbox_x_factor = bbox_x_factor
        self.bbox_y_factor = bbox_y_factor
        self.expand_forehead = expand_forehead
        self.rotation_method = rotation_method

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
    def encode(self, bboxes: Tensor, gt_poses: Tensor,
               img_shape: Union[Sequence[int], Tensor]) -> Tensor:
        """Regression targets ``(N, 6)`` of global ``gt_poses`` for proposals ``bboxes``.

        Args:
            bboxes: proposals ``(N, 4)``.
            gt_poses: matched global GT poses ``(N, 6)``.
            img_shape: ``(h, w)`` of the network input (before padding), or ``(N, 2)``.
        """
        bboxes = bboxes.to(gt_poses)
        local = global_to_local(gt_poses, bboxes, img_shape, self.rotation_method)
        return self.normalize(local)

    @full_precision
    def decode(self, bboxes: Tensor, pred_poses: Tensor,
               img_shape: Union[Sequence[int], Tensor]) -> Tuple[Tensor, Tensor]:
        """Global poses and pose-projected boxes from predictions.

        Args:
            bboxes: the proposals the predictions are relative to, ``(N, 4)``.
            pred_poses: normalised local poses ``(N, 6)``.
            img_shape: ``(h, w)``, or ``(N, 2)``.

        Returns:
            ``(global poses (N, 6), boxes (N, 4))``, boxes truncated to integers and
            clipped to the image.
        """
        local = self.denormalize(pred_poses)
        poses = local_to_global(local, bboxes.to(local), img_shape, self.rotation_method)
        return poses, self.poses_to_bboxes(poses, img_shape)

    @full_precision
    def poses_to_bboxes(self, poses: Tensor, img_shape: Union[Sequence[int], Tensor]) -> Tensor:
        """Face boxes of global poses (SPEC §3 rule with this coder's factors)."""
        return pose_to_bbox(poses, self.points68.to(poses), img_shape, self.bbox_x_factor,
                            self.bbox_y_factor, self.expand_forehead)
