"""Level-wise NMS that stops once it has the boxes it keeps (the RPN's proposals)."""
from __future__ import annotations

import torch
from mmcv.ops import nms
from torch import Tensor


def leading_levelwise_nms(boxes: Tensor, scores: Tensor, level_ids: Tensor,
                          iou_threshold: float, max_num: int = -1) -> Tensor:
    """Indices of the ``max_num`` highest-scoring boxes kept by NMS run within each level
    (all of them if ``max_num <= 0``), highest score first.

    NMS runs on the best ``2 * max_num`` boxes, then on twice as many each time that keeps
    fewer than ``max_num`` (why that is exact: docs/extending.md).
    """
    order = scores.argsort(descending=True)
    total = order.numel()
    n = total if max_num <= 0 else min(total, 2 * max_num)
    while True:
        best = order[:n]
        best_levels = level_ids[best]
        kept = [members[nms(boxes[members], scores[members], iou_threshold)[1]]
                for members in (best[best_levels == level] for level in best_levels.unique())]
        kept = torch.cat(kept) if kept else best
        kept = kept[scores[kept].argsort(descending=True)]
        if max_num <= 0 or n == total:
            return kept if max_num <= 0 else kept[:max_num]
        if kept.numel() >= max_num:
            return kept[:max_num]
        n = min(total, 2 * n)


__all__ = ['leading_levelwise_nms']
