"""Poses of faces found by another detector: img2pose's RoI head run on given boxes
(docs/conventions.md, "Poses for boxes found by another detector").
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from mmengine.structures import InstanceData


def check_boxes(boxes: Any, img_shape: Sequence[int]) -> np.ndarray:
    """Given face boxes as a float64 ``(N, 4)`` array ``x1, y1, x2, y2`` (pixels).

    Accepts ``(N, 4)``, ``(N, 5)`` (a detector's score column, ignored), one box
    ``(4,)`` and empty inputs.

    Raises:
        ValueError: another shape, non-finite numbers, a degenerate box
            (``x2 <= x1`` or ``y2 <= y1``) or a box that does not overlap the image;
            the message names the offending box indices.
    """
    if isinstance(boxes, (list, tuple)) and all(
            isinstance(box, (list, tuple, np.ndarray)) and len(box) in (4, 5) for box in boxes):
        boxes = [list(box)[:4] for box in boxes]    # rows with and without a score
    try:
        array = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes,
                           dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f'boxes must be numbers [[x1, y1, x2, y2], ...], got {boxes!r}') from err
    if array.size == 0:
        return np.zeros((0, 4))
    if array.ndim == 1 and array.shape[0] == 4:
        array = array[None]
    if array.ndim != 2 or array.shape[1] not in (4, 5):
        raise ValueError(f'boxes must be (N, 4) [x1, y1, x2, y2] (or (N, 5) with a score), '
                         f'got shape {array.shape}')
    array = np.ascontiguousarray(array[:, :4])
    bad = np.flatnonzero(~np.isfinite(array).all(1))
    if len(bad):
        raise ValueError(f'boxes {bad.tolist()} are not finite: {array[bad].tolist()}')
    bad = np.flatnonzero((array[:, 2] <= array[:, 0]) | (array[:, 3] <= array[:, 1]))
    if len(bad):
        raise ValueError(f'boxes {bad.tolist()} are degenerate (need x1 < x2 and y1 < y2): '
                         f'{array[bad].tolist()}')
    h, w = float(img_shape[0]), float(img_shape[1])
    clipped = np.stack([array[:, 0].clip(0, w), array[:, 1].clip(0, h),
                        array[:, 2].clip(0, w), array[:, 3].clip(0, h)], 1)
    bad = np.flatnonzero((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1]))
    if len(bad):
        raise ValueError(f'boxes {bad.tolist()} lie outside the {int(w)}x{int(h)} image: '
                         f'{array[bad].tolist()}')
    return array


@torch.no_grad()
def predict_for_boxes(model: torch.nn.Module, pipeline, image_bgr: np.ndarray,
                      boxes: np.ndarray) -> InstanceData:
    """One prediction per box (checked by :func:`check_boxes`) of a BGR image: ``scores``,
    ``poses`` (global, camera of the image) and ``bboxes`` (pose-projected), on the CPU,
    in the original image's frame.

    Raises:
        RuntimeError: the model's RoI head cannot predict for given boxes.
    """
    from mmengine.dataset import pseudo_collate

    roi_head = getattr(model, 'roi_head', None)
    if not hasattr(roi_head, 'predict_for_boxes'):
        raise RuntimeError(f'{type(model).__name__} has no img2pose RoI head (DoFRoIHead or '
                           'DoFCascadeRoIHead): poses for given boxes need one')
    data = model.data_preprocessor(pseudo_collate([pipeline(dict(img=image_bgr, img_id=0))]),
                                   False)
    sample = data['data_samples'][0]
    w_scale, h_scale = sample.metainfo['scale_factor']
    feats = model.extract_feat(data['inputs'])
    proposals = torch.as_tensor(boxes, dtype=torch.float32, device=feats[0].device)
    proposals = proposals * proposals.new_tensor([w_scale, h_scale, w_scale, h_scale])
    height, width = sample.metainfo['img_shape'][:2]
    proposals[:, 0::2] = proposals[:, 0::2].clamp(0, width)
    proposals[:, 1::2] = proposals[:, 1::2].clamp(0, height)
    result = roi_head.predict_for_boxes(feats, [InstanceData(bboxes=proposals)], [sample],
                                        rescale=True)[0]
    if len(result) != len(boxes):
        raise RuntimeError(f'the RoI head gave {len(result)} results for {len(boxes)} boxes')
    return result.cpu()


__all__ = ['check_boxes', 'predict_for_boxes']
