"""The pose losses of every img2pose head: ``loss_dof`` on the normalised prior-local
poses and ``loss_points`` on the reference points projected with the denormalised ones."""
from __future__ import annotations

from typing import Dict

from torch import Tensor, nn


def pose_losses(loss_dof: nn.Module, loss_points: nn.Module, bbox_coder, pose_pred: Tensor,
                pose_targets: Tensor, pose_weights: Tensor, priors: Tensor
                ) -> Dict[str, Tensor]:
    """``loss_dof`` and ``loss_points`` of ``P`` positive priors, averaged over those whose
    face has a pose (both zero, connected to ``pose_pred``, when none has one).

    Args:
        loss_dof: squared error of normalised poses (:class:`~img2pose_mm.losses.DoFLoss`).
        loss_points: L1 of projected points (:class:`~img2pose_mm.losses.PosePointsLoss`).
        bbox_coder: the head's :class:`~img2pose_mm.task_modules.PoseBBoxCoder` (its
            pose statistics and 5 reference points).
        pose_pred: ``(P, 6)`` predicted normalised local poses.
        pose_targets: ``(P, 6)`` their targets (:func:`encode_pose_targets`).
        pose_weights: ``(P,)`` 1 where the face has a pose, else 0.
        priors: ``(P, 4)`` the anchors or proposals the poses are local to.
    """
    num_valid = float(pose_weights.sum())
    if pose_pred.shape[0] == 0 or num_valid == 0:
        zero = pose_pred.sum() * 0
        return dict(loss_dof=zero, loss_points=zero)
    return dict(
        loss_dof=loss_dof(pose_pred, pose_targets, pose_weights, avg_factor=num_valid),
        loss_points=loss_points(bbox_coder.denormalize(pose_pred),
                                bbox_coder.denormalize(pose_targets), priors,
                                bbox_coder.points5, pose_weights, avg_factor=num_valid))


__all__ = ['pose_losses']
