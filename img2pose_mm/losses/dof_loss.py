"""img2pose's 6DoF losses: squared error on normalised poses, L1 on projected points."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from mmdet.models.losses.utils import weighted_loss
from mmdet.registry import MODELS
from torch import Tensor, nn

from img2pose_mm.structures import local_intrinsics, project_points, transform_points
from img2pose_mm.utils.precision import full_precision


@full_precision
@weighted_loss
def dof_loss(pred: Tensor, target: Tensor, dim_weights: Optional[Tensor] = None) -> Tensor:
    """Squared error summed over the 6 pose numbers (each times its ``dim_weights``), one
    value per sample ``(N,)``."""
    error = (pred - target).pow(2)
    if dim_weights is not None:
        error = error * dim_weights.to(error)
    return error.sum(-1)


@full_precision
@weighted_loss
def pose_points_loss(pred: Tensor, target: Tensor, bboxes: Tensor, points: Tensor) -> Tensor:
    """Mean L1 distance ``(N,)`` of ``points`` projected in each box under two local poses.

    The camera is the box seen as its own image:
    ``[[w+h, 0, w//2], [0, w+h, h//2], [0, 0, 1]]``.
    """
    K = local_intrinsics(bboxes.to(pred))
    points = points.to(pred)
    pred_2d = project_points(transform_points(points, pred), K)
    target_2d = project_points(transform_points(points, target), K)
    return (pred_2d - target_2d).abs().flatten(1).mean(-1)


class WeightedLoss(nn.Module):
    """A loss with a ``reduction`` and a ``loss_weight`` (mmdet's convention).

    Args:
        reduction: ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight: multiplier of the loss.
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self.loss_weight = loss_weight


@MODELS.register_module()
class DoFLoss(WeightedLoss):
    """``sum(w * (pred - target)^2) / num_positives`` on normalised box-local poses.

    Args:
        dim_weights: the weight ``w`` of each of the 6 pose numbers ``rx, ry, rz, tx, ty,
            tz`` (default: all 1, img2pose's loss). The pose statistics are those of the
            GT boxes, but the targets are local to proposals, whose offsets and sizes
            spread the translation targets far more (on the synthetic demo set the
            normalised ``ty`` / ``tz`` targets have mean squares of about 2.5 / 8 against
            about 1 for the rotation): smaller translation weights keep the rotation's
            share of the gradient.
        reduction, loss_weight: as :class:`WeightedLoss`.
    """

    def __init__(self, dim_weights: Optional[Sequence[float]] = None,
                 reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__(reduction=reduction, loss_weight=loss_weight)
        if dim_weights is not None:
            dim_weights = torch.as_tensor(dim_weights, dtype=torch.float32)
            if dim_weights.shape != (6, ) or not bool((dim_weights >= 0).all()):
                raise ValueError(f'dim_weights must be 6 non-negative numbers, got '
                                 f'{dim_weights.tolist()}')
        self.dim_weights = dim_weights

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args: pred, target ``(N, 6)``; weight ``(N,)`` (0 drops a sample)."""
        reduction = reduction_override or self.reduction
        return self.loss_weight * dof_loss(pred, target, weight, reduction=reduction,
                                           avg_factor=avg_factor, dim_weights=self.dim_weights)


@MODELS.register_module()
class PosePointsLoss(WeightedLoss):
    """L1 between reference points projected in the proposal under predicted and GT poses.

    Both poses are box-local and *un-normalised* (``pred * std + mean``); the mean is
    over positives x points x 2 coordinates.
    """

    def forward(self, pred: Tensor, target: Tensor, bboxes: Tensor, points: Tensor,
                weight: Optional[Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Args: pred, target ``(N, 6)`` local poses; bboxes ``(N, 4)``; points ``(M, 3)``."""
        reduction = reduction_override or self.reduction
        return self.loss_weight * pose_points_loss(
            pred, target, weight, reduction=reduction, avg_factor=avg_factor,
            bboxes=bboxes, points=points)


__all__ = ['DoFLoss', 'PosePointsLoss', 'dof_loss', 'pose_points_loss']
