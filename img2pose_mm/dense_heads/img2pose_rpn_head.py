"""mmdet's RPN head with its box work kept in float32 under mixed precision and an NMS
that stops once it has the proposals it keeps."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.models.dense_heads import RPNHead
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor, get_box_wh, scale_boxes
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..utils.device_gate import DEFAULT_FAST_DEVICES, takes_fast_path
from .leading_nms import leading_levelwise_nms
from .pointwise_convs import is_pointwise_conv, pointwise_convs
from .sparse_grad_branch import conv_relu_pointwise, supports_sparse_backward


@MODELS.register_module()
class Img2PoseRPNHead(RPNHead):
    """:class:`RPNHead` whose losses and proposals are computed in float32.

    Under autocast (``--amp``: float16 on GPU, bfloat16 on CPU) mmdet's RPN would make
    its anchors in the scores' dtype — bfloat16 keeps ~3 significant digits, i.e.
    several pixels at 1000 px — and mmcv's CPU NMS only takes float32. The head's
    outputs are cast to float32 before anchors, targets, decoding and NMS; the
    convolutions still run in reduced precision.

    Faster on the devices in ``fast_devices`` (the CPU), with RPNHead's numbers up to
    float rounding: :func:`leading_levelwise_nms`, an in-place ReLU, the score and box
    convs as one matrix product (:func:`pointwise_convs`) and, in training, a backward
    from the sampled anchors' positions only (``sparse_backward``,
    :func:`conv_relu_pointwise`; docs/extending.md). Elsewhere and under float16
    autocast the head runs RPNHead's forward, NMS and autograd's backward.

    Args:
        fast_devices: device types that take the faster branches (default
            ``('cpu',)``; ``()``: never); see :func:`~img2pose_mm.utils.takes_fast_path`.
        sparse_backward (bool): on those devices, the training backward from the
            positions with a gradient (falls back to the dense one by itself where most
            have one, and under autocast). Default True.
    """

    def __init__(self, *args, fast_devices: Sequence[str] = DEFAULT_FAST_DEVICES,
                 sparse_backward: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast_devices = tuple(fast_devices)
        self.sparse_backward = sparse_backward

    def loss_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor], *args,
                     **kwargs) -> dict:
        return super().loss_by_feat([s.float() for s in cls_scores],
                                    [b.float() for b in bbox_preds], *args, **kwargs)

    def predict_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor], *args,
                        **kwargs):
        return super().predict_by_feat([s.float() for s in cls_scores],
                                       [b.float() for b in bbox_preds], *args, **kwargs)

    def forward_single(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """RPNHead's conv + ReLU (in place) + 1x1 score and box convs; on NCHW maps the
        two 1x1 convs are one batched matrix product (:func:`pointwise_convs`); off
        ``fast_devices`` RPNHead's."""
        if not isinstance(self.rpn_conv, nn.Conv2d) \
                or not takes_fast_path(x, self.fast_devices, 'Img2PoseRPNHead'):
            return super().forward_single(x)
        if self._sparse_backward_applies(x):
            return conv_relu_pointwise(x, self.rpn_conv, (self.rpn_cls, self.rpn_reg))
        x = self.rpn_conv(x).relu_()
        if x.is_contiguous() and is_pointwise_conv(self.rpn_cls) and is_pointwise_conv(self.rpn_reg):
            return pointwise_convs(x, (self.rpn_cls, self.rpn_reg))
        return self.rpn_cls(x), self.rpn_reg(x)

    def _sparse_backward_applies(self, x: Tensor) -> bool:
        """Training outside autocast with plain convs: :func:`conv_relu_pointwise`."""
        return (self.sparse_backward and torch.is_grad_enabled()
                and not torch.is_autocast_enabled(x.device.type)
                and (x.requires_grad or self.rpn_conv.weight.requires_grad)
                and supports_sparse_backward(self.rpn_conv, (self.rpn_cls, self.rpn_reg)))

    def _bbox_post_process(self, results: InstanceData, cfg: ConfigDict,
                           rescale: bool = False, with_nms: bool = True,
                           img_meta: Optional[dict] = None) -> InstanceData:
        """RPNHead's post-processing (rescale, small-box filter, NMS within each level,
        the ``max_per_img`` best) with :func:`leading_levelwise_nms` on ``fast_devices``;
        other devices and NMS types (soft-NMS rescores) run RPNHead's."""
        nms_cfg = dict(cfg.get('nms') or {})
        if not with_nms or nms_cfg.pop('type', 'nms') != 'nms' or 'iou_threshold' not in nms_cfg \
                or set(nms_cfg) - {'iou_threshold', 'split_thr'} \
                or not takes_fast_path(get_box_tensor(results.bboxes), self.fast_devices,
                                       'Img2PoseRPNHead'):
            return super()._bbox_post_process(results, cfg, rescale, with_nms, img_meta)
        if rescale:
            results.bboxes = scale_boxes(results.bboxes,
                                         [1 / s for s in img_meta['scale_factor']])
        if cfg.get('min_bbox_size', -1) >= 0:
            w, h = get_box_wh(results.bboxes)
            results = results[(w > cfg.min_bbox_size) & (h > cfg.min_bbox_size)]
        keep = leading_levelwise_nms(get_box_tensor(results.bboxes), results.scores,
                                     results.level_ids, nms_cfg['iou_threshold'],
                                     cfg.get('max_per_img', -1))
        results = results[keep]
        results.labels = results.scores.new_zeros(len(results), dtype=torch.long)
        del results.level_ids
        return results


__all__ = ['Img2PoseRPNHead']
