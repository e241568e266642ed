"""Head-pose benchmark helpers: which detection answers for a face (img2pose's protocols,
docs/conventions.md "How the metrics score"), and angle errors."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .wider_face import wider_box_overlaps


def select_by_iou(pred_bboxes: np.ndarray, scores: np.ndarray, gt_bboxes: np.ndarray,
                  score_thr: float = 0.0, min_iou: float = 0.0, offset: float = 1.0,
                  fallback: Optional[str] = None) -> np.ndarray:
    """For each ground-truth box the detection of highest IoU, or -1.

    Args:
        pred_bboxes: ``(N, 4)`` ``x1, y1, x2, y2``.
        scores: ``(N,)``.
        gt_bboxes: ``(M, 4)``.
        score_thr: only detections with ``score > score_thr`` take part.
        min_iou: the best IoU must be ``> min_iou``.
        offset: ``1`` for the inclusive-pixel IoU of the original, ``0`` for continuous.
        fallback: ``'last'``: a face no detection overlaps takes the last detection with
            ``score > score_thr`` (the original AFLW2000-3D notebook's loop leaves that
            one's pose behind); ``None``: it is a miss.

    Returns:
        ``(M,)`` int64 indices into the detections, -1 for a miss.
    """
    if fallback not in (None, 'last'):
        raise ValueError(f"fallback of the IoU selection must be None or 'last', got {fallback!r}")
    gt_bboxes = np.asarray(gt_bboxes, dtype=np.float64).reshape(-1, 4)
    pred_bboxes = np.asarray(pred_bboxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    choice = np.full(len(gt_bboxes), -1, dtype=np.int64)
    if len(pred_bboxes) == 0 or len(gt_bboxes) == 0:
        return choice
    iou = wider_box_overlaps(gt_bboxes, pred_bboxes, offset)
    passing = scores > score_thr
    iou[:, ~passing] = -np.inf
    best = iou.argmax(1)
    ok = iou[np.arange(len(gt_bboxes)), best] > min_iou
    choice[ok] = best[ok]
    if fallback == 'last' and passing.any():
        choice[~ok] = np.flatnonzero(passing)[-1]
    return choice


def select_by_center(pred_bboxes: np.ndarray, scores: np.ndarray, img_shape: Sequence[int],
                     score_thr: float = 0.9, fallback: Optional[str] = None) -> int:
    """The detection (``score > score_thr``) whose centre is closest to the image centre.

    Args:
        fallback: ``'first'``: when no detection passes the threshold take the first
            (most confident) one, as the original BIWI notebook; ``None``: a miss.

    Returns:
        Its index, or -1 when no detection is selected.
    """
    if fallback not in (None, 'first'):
        raise ValueError(f"fallback of the centre selection must be None or 'first', got "
                         f'{fallback!r}')
    pred_bboxes = np.asarray(pred_bboxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    h, w = int(img_shape[0]), int(img_shape[1])
    cx = pred_bboxes[:, 0] + np.floor_divide(pred_bboxes[:, 2] - pred_bboxes[:, 0], 2)
    cy = pred_bboxes[:, 1] + np.floor_divide(pred_bboxes[:, 3] - pred_bboxes[:, 1], 2)
    dist = np.hypot(cx - w // 2, cy - h // 2)
    dist[~(scores > score_thr)] = np.inf
    if len(dist) == 0:
        return -1
    if not np.isfinite(dist.min()):
        return 0 if fallback == 'first' else -1
    return int(dist.argmin())


def angle_errors(pred: np.ndarray, gt: np.ndarray, wrap: bool = True) -> np.ndarray:
    """Absolute angle differences in degrees, optionally wrapped into ``[0, 180]``.

    Wrapping only changes differences beyond 180 degrees (e.g. pitch 179 vs -179 is
    2 degrees, not 358).
    """
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(gt, dtype=np.float64)
    if wrap:
        diff = (diff + 180.0) % 360.0 - 180.0
    return np.abs(diff)


__all__ = ['select_by_iou', 'select_by_center', 'angle_errors']
