"""Score-weighted box voting that carries 6DoF poses (img2pose's TTA merge; the rule:
docs/conventions.md, "Merging detections with poses")."""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from mmcv.ops import batched_nms
from torch import Tensor

from img2pose_mm.structures import box_iou, quaternion_to_rotvec, rotvec_to_quaternion

SCORE_MODES = ('vote', 'max')


class VotingResult(NamedTuple):
    """Merged detections, sorted by score (descending)."""
    bboxes: Tensor          # (K, 4)
    scores: Tensor          # (K,)
    labels: Tensor          # (K,)
    poses: Optional[Tensor]  # (K, 6) or None
    num_votes: Tensor       # (K,) boxes merged into each detection


def weighted_rotation_mean(rotvecs: Tensor, weights: Tensor, groups: Tensor,
                           num_groups: int) -> Tensor:
    """Weighted mean rotation of each group (principal eigenvector of ``sum w q q^T``).

    Args:
        rotvecs: ``(N, 3)``.
        weights: ``(N,)`` non-negative.
        groups: ``(N,)`` int64 group of each rotation in ``[0, num_groups)``.

    Returns:
        ``(num_groups, 3)`` rotation vectors.
    """
    quats = rotvec_to_quaternion(rotvecs.double())
    outer = weights.double()[:, None, None] * quats[:, :, None] * quats[:, None, :]
    accum = quats.new_zeros(num_groups, 4, 4).index_add_(0, groups, outer)
    _, vectors = torch.linalg.eigh(accum)   # ascending eigenvalues
    return quaternion_to_rotvec(vectors[..., -1]).to(rotvecs.dtype)


def pose_box_voting(bboxes: Tensor, scores: Tensor, poses: Optional[Tensor] = None,
                    labels: Optional[Tensor] = None, iou_thr: float = 0.6,
                    score_mode: str = 'vote', offset: int = 1,
                    chunk_size: int = 4096) -> VotingResult:
    """Merge overlapping detections (e.g. of all TTA views) by score-weighted voting.

    Args:
        bboxes: ``(N, 4)`` ``x1, y1, x2, y2``, all in one image frame.
        scores: ``(N,)``.
        poses: ``(N, 6)`` global poses in the same frame, optional.
        labels: ``(N,)`` class labels; boxes of different classes never merge.
        iou_thr: cluster IoU threshold (img2pose: 0.6).
        score_mode: ``'vote'`` (sum of weighted scores, the original) or ``'max'``.
        offset: 1 for the inclusive-pixel IoU of the original, 0 for continuous.
        chunk_size: boxes per block when matching boxes to leaders (bounds memory).
    """
    if score_mode not in SCORE_MODES:
        raise ValueError(f'score_mode must be one of {SCORE_MODES}, got {score_mode!r}')
    if offset not in (0, 1):
        raise ValueError(f'offset must be 0 or 1, got {offset}')
    bboxes = bboxes.reshape(-1, 4)
    scores = scores.reshape(-1)
    if labels is None:
        labels = torch.zeros(len(bboxes), dtype=torch.long, device=bboxes.device)
    if poses is not None:
        poses = poses.reshape(-1, 6)
        if len(poses) != len(bboxes):
            raise ValueError(f'{len(poses)} poses for {len(bboxes)} boxes')
    if len(bboxes) == 0:
        return VotingResult(bboxes.new_zeros(0, 4), scores.new_zeros(0), labels.new_zeros(0),
                            None if poses is None else bboxes.new_zeros(0, 6),
                            labels.new_zeros(0))

    # leaders = what greedy NMS keeps, in descending score order
    _, leaders = batched_nms(bboxes.float(), scores.float(), labels,
                             dict(type='nms', iou_threshold=iou_thr, offset=offset))
    num_leaders = len(leaders)
    work = bboxes.double()
    lead_boxes, lead_labels = work[leaders], labels[leaders]

    # each box joins the first leader (score order) it overlaps by more than iou_thr;
    # a leader joins itself, so only the other boxes are matched
    assign = torch.empty(len(bboxes), dtype=torch.long, device=bboxes.device)
    overlap = torch.empty(len(bboxes), dtype=work.dtype, device=bboxes.device)
    assign[leaders] = torch.arange(num_leaders, device=bboxes.device)
    overlap[leaders] = 1.0
    followers = torch.ones(len(bboxes), dtype=torch.bool, device=bboxes.device)
    followers[leaders] = False
    followers = followers.nonzero()[:, 0]
    for start in range(0, len(followers), chunk_size):
        block = followers[start:start + chunk_size]
        iou = box_iou(lead_boxes, work[block], offset)                # (L, B)
        iou = torch.where(lead_labels[:, None] == labels[block][None], iou,
                          torch.full_like(iou, -1.0))
        member = iou > iou_thr
        first = member.to(torch.uint8).argmax(0)
        # float rounding at the threshold: fall back to the best-overlapping leader
        first = torch.where(member.any(0), first, iou.argmax(0))
        assign[block] = first
        overlap[block] = iou.gather(0, first[None])[0].clamp(min=0)

    lead_scores = scores.double()[leaders]
    weights = scores.double() / lead_scores[assign].clamp(min=1e-12) * overlap
    weight_sum = work.new_zeros(num_leaders).index_add_(0, assign, weights)
    weight_sum = weight_sum.clamp(min=1e-12)
    merged_boxes = work.new_zeros(num_leaders, 4).index_add_(
        0, assign, weights[:, None] * work) / weight_sum[:, None]
    if score_mode == 'vote':
        merged_scores = work.new_zeros(num_leaders).index_add_(
            0, assign, weights * scores.double())
    else:
        merged_scores = lead_scores
    num_votes = torch.zeros(num_leaders, dtype=torch.long, device=bboxes.device)
    num_votes.index_add_(0, assign, torch.ones_like(assign))

    merged_poses = None
    if poses is not None:
        rot = weighted_rotation_mean(poses[:, :3], weights, assign, num_leaders)
        trans = work.new_zeros(num_leaders, 3).index_add_(
            0, assign, weights[:, None] * poses[:, 3:].double()) / weight_sum[:, None]
        merged_poses = torch.cat([rot.double(), trans], 1).to(poses.dtype)

    order = torch.argsort(merged_scores, descending=True, stable=True)
    return VotingResult(
        merged_boxes[order].to(bboxes.dtype), merged_scores[order].to(scores.dtype),
        lead_labels[order], None if merged_poses is None else merged_poses[order],
        num_votes[order])


__all__ = ['SCORE_MODES', 'VotingResult', 'weighted_rotation_mean', 'pose_box_voting']
