"""Pose voting written for a graph: :func:`pose_box_voting` without ``eigh`` or Python loops.

How and why (docs/deployment.md, "Pose voting is in the graph"): the same leaders,
clusters and weights as :func:`~img2pose_mm.test_time_augs.pose_box_voting`
(``score_mode='max'``, ``offset=0``), sums as ``scatter_add`` and Markley's mean rotation
by repeated squaring instead of ``torch.linalg.eigh``.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from img2pose_mm.structures import box_iou, quaternion_to_rotvec, rotvec_to_quaternion

#: Squarings of :func:`principal_eigenvectors` (the power ``2 ** 16``).
SQUARINGS = 16


def principal_eigenvectors(matrices: Tensor, steps: int = SQUARINGS) -> Tensor:
    """Unit eigenvectors ``(L, 4)`` of the largest eigenvalue of symmetric positive
    semi-definite ``(L, 4, 4)`` matrices with a positive trace (sign arbitrary)."""
    def normalised(m: Tensor) -> Tensor:
        trace = m.diagonal(dim1=-2, dim2=-1).sum(-1)
        return m / trace.clamp(min=1e-300)[:, None, None]

    power = normalised(matrices)
    for _ in range(steps):
        # (v v^T)^2 = v v^T: the trace stays >= 1/4 (4 eigenvalues summing to 1)
        power = normalised(power @ power)
    # the column of the largest diagonal entry is v_i v: the best-conditioned one
    column = power.diagonal(dim1=-2, dim2=-1).argmax(-1)
    vectors = power.gather(2, column[:, None, None].expand(-1, 4, 1))[..., 0]
    return vectors / torch.linalg.vector_norm(vectors, dim=-1, keepdim=True).clamp(min=1e-300)


def weighted_rotation_mean_graph(rotvecs: Tensor, weights: Tensor, groups: Tensor,
                                 num_groups: Tensor) -> Tensor:
    """:func:`~img2pose_mm.test_time_augs.box_voting.weighted_rotation_mean` with
    :func:`principal_eigenvectors`: ``(num_groups, 3)`` rotation vectors."""
    quats = rotvec_to_quaternion(rotvecs.double())
    outer = (weights.double()[:, None, None] * quats[:, :, None] * quats[:, None, :])
    outer = outer.reshape(-1, 16)
    accum = outer.new_zeros(num_groups, 16).scatter_add(
        0, groups[:, None].expand(-1, 16), outer).reshape(-1, 4, 4)
    # the rotation vector in float32 (onnxruntime's Atan is float32 only)
    return quaternion_to_rotvec(principal_eigenvectors(accum).float()).to(rotvecs.dtype)


def voting_groups(boxes: Tensor, labels: Tensor, leaders: Tensor,
                  iou_thr: float) -> Tuple[Tensor, Tensor]:
    """The leader each candidate joins and its IoU with it (1 for a leader).

    As :func:`pose_box_voting`: the first leader in score order of the same label that a
    candidate overlaps by more than ``iou_thr`` (float64 IoU), the best-overlapping one
    when float rounding leaves none (the candidate was suppressed in float32).
    """
    work = boxes.double()
    iou = box_iou(work[leaders], work)                                   # (L, N)
    iou = torch.where(labels[leaders][:, None] == labels[None], iou, torch.full_like(iou, -1.0))
    # a last row below every IoU keeps the reductions defined without leaders
    iou = torch.cat([iou, iou.new_full((1, iou.shape[1]), -2.0)])
    member = iou > iou_thr
    first = member.to(torch.int32).argmax(0)
    first = torch.where(member.any(0), first, iou.argmax(0))
    overlap = iou.gather(0, first[None])[0].clamp(min=0)
    # a leader joins itself with weight 1
    positions = torch.arange(leaders.shape[0], device=boxes.device)
    own = torch.zeros_like(first).index_put((leaders, ), positions)
    is_leader = torch.zeros_like(member[0]).index_put((leaders, ),
                                                      torch.ones_like(leaders, dtype=torch.bool))
    groups = torch.where(is_leader, own, first)
    overlap = torch.where(is_leader, torch.ones_like(overlap), overlap)
    return groups, overlap


def graph_pose_voting(boxes: Tensor, scores: Tensor, labels: Tensor, poses: Tensor,
                      keep: Tensor, iou_thr: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pose voting of candidates around the leaders ``keep`` (NMS indices, best first).

    Args:
        boxes, scores, labels, poses: the candidates ``(N, 4)``, ``(N,)``, ``(N,)``,
            ``(N, 6)`` (pose-projected boxes and global poses).
        keep: the leaders, by decreasing score (class-aware NMS at ``iou_thr``).
        iou_thr: the voting IoU threshold.

    Returns:
        ``(scores, labels, poses, num_votes)`` of the leaders, in ``keep``'s order: the
        leader's score and label, the voted pose, the number of candidates merged. The
        boxes are the caller's to project from the poses.
    """
    groups, overlap = voting_groups(boxes, labels, keep, iou_thr)
    num_leaders = keep.shape[0]
    lead_scores = scores.double()[keep]
    weights = scores.double() / lead_scores[groups].clamp(min=1e-12) * overlap
    weight_sum = weights.new_zeros(num_leaders).scatter_add(0, groups, weights)
    weight_sum = weight_sum.clamp(min=1e-12)
    trans = weights.new_zeros(num_leaders, 3).scatter_add(
        0, groups[:, None].expand(-1, 3), weights[:, None] * poses[:, 3:].double())
    trans = trans / weight_sum[:, None]
    rot = weighted_rotation_mean_graph(poses[:, :3], weights, groups, num_leaders)
    voted = torch.cat([rot.double(), trans], 1).to(poses.dtype)
    votes = torch.zeros_like(groups).scatter_add(0, groups, torch.ones_like(groups))
    return scores[keep], labels[keep], voted, votes


__all__ = ['SQUARINGS', 'principal_eigenvectors', 'weighted_rotation_mean_graph',
           'voting_groups', 'graph_pose_voting']
