"""The official WIDER FACE evaluation protocol (``eval_tools`` of the benchmark), as
docs/conventions.md ("How the metrics score") describes it."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from img2pose_mm.structures.boxes import box_iou

WIDER_SETTINGS = ('easy', 'medium', 'hard')
WIDER_THRESH_NUM = 1000
ImageKey = Tuple[str, str]   # (event, name without extension)


@dataclass
class WIDERImageGT:
    """Ground truth of one image.

    Attributes:
        event: event folder, e.g. ``'0--Parade'``.
        name: image name without extension, e.g. ``'0_Parade_marchingband_1_465'``.
        boxes: ``(K, 4)`` float64 ``x, y, w, h``.
        keep: per setting, ``(K,)`` bool: True where the face counts, False where it is
            ignored.
    """
    event: str
    name: str
    boxes: np.ndarray
    keep: Dict[str, np.ndarray] = field(default_factory=dict)


# ----------------------------------------------------------------------------
# the protocol
# ----------------------------------------------------------------------------
def wider_box_overlaps(boxes: np.ndarray, others: np.ndarray,
                       offset: float = 1.0) -> np.ndarray:
    """IoU ``(N, K)`` of ``x1, y1, x2, y2`` arrays with the inclusive-pixel ``+offset``
    (:func:`~img2pose_mm.structures.box_iou` in float64)."""
    boxes = torch.from_numpy(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    others = torch.from_numpy(np.asarray(others, dtype=np.float64).reshape(-1, 4))
    return box_iou(boxes, others, offset).numpy()


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``x, y, w, h`` -> ``x1, y1, x2, y2`` (``x2 = x + w``, as the official tool)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``x1, y1, x2, y2`` -> ``x, y, w, h``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)


def sort_by_score(dets: np.ndarray) -> np.ndarray:
    """Rows of ``(N, 5)`` detections in descending score order (stable)."""
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5)
    return dets[np.argsort(-dets[:, 4], kind='stable')]


#: MATLAB's ``realmin('single')`` / ``realmax('single')``: where ``norm_score.m`` starts
#: its running max / min of the scores.
MATLAB_REALMIN_SINGLE = float(np.finfo(np.float32).tiny)
MATLAB_REALMAX_SINGLE = float(np.finfo(np.float32).max)


def normalize_scores(predictions: Mapping[ImageKey, np.ndarray],
                     images: Optional[Iterable[ImageKey]] = None) -> Dict[ImageKey, np.ndarray]:
    """Min-max normalise the scores (column 4) over the prediction set, as the official
    ``norm_score.m``.

    Only the images of the ground-truth list (``images``; default: every image) are read,
    normalised and returned: predictions for other images take no part. If all scores
    are equal (the official tool divides by zero) every score becomes 1.
    """
    if images is not None:
        wanted = set(images)
        predictions = {k: v for k, v in predictions.items() if k in wanted}
    max_score, min_score = MATLAB_REALMIN_SINGLE, MATLAB_REALMAX_SINGLE
    for dets in predictions.values():
        dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5)
        if len(dets):
            max_score = max(max_score, float(dets[:, 4].max()))
            min_score = min(min_score, float(dets[:, 4].min()))
    spread = max_score - min_score
    out = {}
    for key, dets in predictions.items():
        dets = np.array(dets, dtype=np.float64).reshape(-1, 5)
        if spread > 0:
            dets[:, 4] = (dets[:, 4] - min_score) / spread
        else:
            dets[:, 4] = 1.0
        out[key] = dets
    return out


def wider_image_eval(dets: np.ndarray, gt_boxes: np.ndarray, keep: np.ndarray,
                     iou_thr: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """Match one image's predictions to its faces, in the given (score) order.

    Args:
        dets: ``(N, 5)`` ``x, y, w, h, score`` in evaluation order.
        gt_boxes: ``(K, 4)`` ``x, y, w, h``.
        keep: ``(K,)`` bool, True for faces that count.

    Returns:
        ``pred_recall`` ``(N,)``: counted faces recalled by predictions ``0..h``; and
        ``proposal`` ``(N,)`` bool: False for predictions that matched an ignored face.
    """
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5)
    num = len(dets)
    iou = wider_box_overlaps(xywh_to_xyxy(dets[:, :4]), xywh_to_xyxy(gt_boxes))
    best = iou.argmax(1)
    matched = iou[np.arange(num), best] >= iou_thr
    counted = np.asarray(keep, dtype=bool)[best]
    proposal = ~(matched & ~counted)
    hits = np.flatnonzero(matched & counted)
    first = np.zeros(num, dtype=bool)
    _, first_pos = np.unique(best[hits], return_index=True)
    first[hits[first_pos]] = True
    return np.cumsum(first).astype(np.float64), proposal


def wider_image_pr_info(scores: np.ndarray, proposal: np.ndarray, pred_recall: np.ndarray,
                        thresh_num: int = WIDER_THRESH_NUM) -> np.ndarray:
    """``(thresh_num, 2)``: proposals and recalled faces at each threshold ``1 - t/T``.

    At a threshold the official tool looks at the *last* prediction whose score
    passes it; with scores sorted this is the number of passing predictions.
    """
    scores = np.asarray(scores, dtype=np.float64)
    thresholds = 1 - np.arange(1, thresh_num + 1) / thresh_num
    # the last index whose score passes = count of passing suffix maxima - 1
    suffix_max = np.maximum.accumulate(scores[::-1])[::-1]
    last = np.searchsorted(-suffix_max, -thresholds, side='right') - 1
    info = np.zeros((thresh_num, 2))
    valid = last >= 0
    info[valid, 0] = np.cumsum(proposal)[last[valid]]
    info[valid, 1] = pred_recall[last[valid]]
    return info


def wider_voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC AP of the official tool: area under the right-to-left precision envelope."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.fmax.accumulate(mpre[::-1])[::-1]   # NaN-ignoring like MATLAB's max
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mpre[idx]))


def wider_pr_curve(predictions: Mapping[ImageKey, np.ndarray],
                   ground_truth: Iterable[WIDERImageGT], setting: str,
                   iou_thr: float = 0.5,
                   thresh_num: int = WIDER_THRESH_NUM) -> Tuple[np.ndarray, np.ndarray, int]:
    """Precision and recall at the ``thresh_num`` thresholds for one setting.

    Args:
        predictions: ``(event, name) -> (N, 5)`` ``x, y, w, h, score`` with normalised
            scores (see :func:`normalize_scores`); missing images have no predictions.
        ground_truth: images with ``keep[setting]``.

    Returns:
        ``precision``, ``recall`` (``(thresh_num,)`` each, thresholds descending) and
        the number of counted faces.
    """
    curve = np.zeros((thresh_num, 2))
    count_face = 0
    for image in ground_truth:
        if setting not in image.keep:
            raise KeyError(f'ground truth of {image.event}/{image.name} has no '
                           f'{setting!r} setting')
        keep = image.keep[setting]
        count_face += int(keep.sum())
        dets = predictions.get((image.event, image.name))
        if dets is None or len(dets) == 0 or len(image.boxes) == 0:
            continue
        dets = sort_by_score(dets)
        pred_recall, proposal = wider_image_eval(dets, image.boxes, keep, iou_thr)
        curve += wider_image_pr_info(dets[:, 4], proposal, pred_recall, thresh_num)
    with np.errstate(divide='ignore', invalid='ignore'):
        precision = curve[:, 1] / curve[:, 0]
        recall = curve[:, 1] / count_face
    return precision, recall, count_face


def evaluate_wider(predictions: Mapping[ImageKey, np.ndarray],
                   ground_truth: Sequence[WIDERImageGT],
                   settings: Sequence[str] = WIDER_SETTINGS, iou_thr: float = 0.5,
                   thresh_num: int = WIDER_THRESH_NUM,
                   normalize: bool = True) -> Dict[str, float]:
    """Official WIDER FACE AP per setting.

    Args:
        predictions: ``(event, name) -> (N, 5)`` ``x, y, w, h, score`` (raw scores).
        ground_truth: from :func:`load_wider_ground_truth` or built by hand.
        settings: settings to evaluate (keys of ``WIDERImageGT.keep``).
        normalize: min-max normalise scores over the set first (official: True).

    Returns:
        ``{setting: AP}``; NaN for a setting without counted faces.
    """
    images = [(image.event, image.name) for image in ground_truth]
    preds = normalize_scores(predictions, images) if normalize else {
        k: np.asarray(v, dtype=np.float64).reshape(-1, 5) for k, v in predictions.items()}
    aps = {}
    for setting in settings:
        precision, recall, count_face = wider_pr_curve(preds, ground_truth, setting,
                                                       iou_thr, thresh_num)
        if count_face == 0:
            warnings.warn(f'WIDER FACE setting {setting!r} counts no face: AP is NaN',
                          stacklevel=2)
            aps[setting] = float('nan')
        else:
            aps[setting] = wider_voc_ap(recall, precision)
    return aps


__all__ = [
    'WIDER_SETTINGS', 'WIDER_THRESH_NUM', 'WIDERImageGT', 'wider_box_overlaps',
    'xywh_to_xyxy', 'xyxy_to_xywh', 'sort_by_score', 'normalize_scores',
    'MATLAB_REALMIN_SINGLE', 'MATLAB_REALMAX_SINGLE', 'wider_image_eval',
    'wider_image_pr_info', 'wider_voc_ap', 'wider_pr_curve', 'evaluate_wider',
]
