"""mmdet's RPN head with its box work kept in float32 under mixed precision."""
from __future__ import annotations

from typing import List

from mmdet.models.dense_heads import RPNHead
from mmdet.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class Img2PoseRPNHead(RPNHead):
    """:class:`RPNHead` whose losses and proposals are computed in float32.

    Under autocast (``--amp``: float16 on GPU, bfloat16 on CPU) mmdet's RPN would make
    its anchors in the scores' dtype — bfloat16 keeps ~3 significant digits, i.e.
    several pixels at 1000 px — and mmcv's CPU NMS only takes float32. The head's
    outputs are cast to float32 before anchors, targets, decoding and NMS; the
    convolutions still run in reduced precision.
    """

    def loss_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor], *args,
                     **kwargs) -> dict:
        return super().loss_by_feat([s.float() for s in cls_scores],
                                    [b.float() for b in bbox_preds], *args, **kwargs)

    def predict_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor], *args,
                        **kwargs):
        return super().predict_by_feat([s.float() for s in cls_scores],
                                       [b.float() for b in bbox_preds], *args, **kwargs)
