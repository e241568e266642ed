"""Box overlaps: the one IoU of the package (evaluation, box voting)."""
from __future__ import annotations

import torch
from torch import Tensor


def box_iou(boxes: Tensor, others: Tensor, offset: float = 0.0) -> Tensor:
    """IoU ``(N, K)`` of ``x1, y1, x2, y2`` boxes ``(N, 4)`` and ``(K, 4)``.

    Args:
        offset: ``1`` for the inclusive-pixel convention of the original img2pose
            evaluation and the WIDER FACE tool (a box ``[0, 0, 9, 9]`` is 10 pixels wide),
            ``0`` for continuous coordinates.

    Overlaps whose width or height is not positive are 0 (as the official
    ``boxoverlap``), and so are pairs with an empty union.
    """
    iw = (torch.minimum(boxes[:, None, 2], others[None, :, 2])
          - torch.maximum(boxes[:, None, 0], others[None, :, 0]) + offset)
    ih = (torch.minimum(boxes[:, None, 3], others[None, :, 3])
          - torch.maximum(boxes[:, None, 1], others[None, :, 1]) + offset)
    inter = iw * ih
    area_a = (boxes[:, 2] - boxes[:, 0] + offset) * (boxes[:, 3] - boxes[:, 1] + offset)
    area_b = (others[:, 2] - others[:, 0] + offset) * (others[:, 3] - others[:, 1] + offset)
    union = area_a[:, None] + area_b[None, :] - inter
    iou = inter / torch.where(union > 0, union, torch.ones_like(union))
    return torch.where((iw > 0) & (ih > 0) & (union > 0), iou, torch.zeros_like(iou))


__all__ = ['box_iou']
