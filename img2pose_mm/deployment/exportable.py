"""The two-stage img2pose detector as one exportable forward pass (``torch.export``, ONNX).

What the graph holds and how its data-dependent steps are written: docs/deployment.md.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# imported with the module: the ONNX exporter maps torchvision's ops (NonMaxSuppression,
# RoiAlign) only when torchvision is loaded before an export starts
from torchvision.ops import nms, roi_align

#: Names of the graph's input and outputs.
INPUT_NAMES = ('image', )
OUTPUT_NAMES = ('boxes', 'scores', 'labels', 'poses')


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise TypeError(f'cannot export this detector: {message}')


def _nms_threshold(cfg, where: str, default: Optional[dict] = None) -> float:
    """The IoU threshold of an ``nms=dict(type='nms', iou_threshold=...)`` setting
    (``default`` when it is absent)."""
    nms_cfg = dict(cfg.get('nms') or default or {})
    _require(nms_cfg.get('type', 'nms') == 'nms' and 'iou_threshold' in nms_cfg,
             f"{where}.nms must be dict(type='nms', iou_threshold=...), got {nms_cfg}")
    return float(nms_cfg['iou_threshold'])


def is_one_stage(detector: nn.Module) -> bool:
    """A detector with a dense ``bbox_head`` and no RoI head (RetinaNet style)."""
    return getattr(detector, 'roi_head', None) is None \
        and getattr(detector, 'bbox_head', None) is not None


def check_exportable(detector: nn.Module) -> None:
    """Raise ``TypeError`` naming what the export cannot express: a one-stage detector is
    checked for :class:`~img2pose_mm.deployment.ExportableRetinaImg2Pose`, anything else
    for :class:`ExportableImg2Pose`."""
    if is_one_stage(detector):
        from .exportable_retina import check_retina_exportable
        check_retina_exportable(detector)
    else:
        check_two_stage_exportable(detector)


def check_two_stage_exportable(detector: nn.Module) -> None:
    """Raise ``TypeError`` naming what :class:`ExportableImg2Pose` cannot express."""
    from mmcv.ops import RoIAlign
    from mmdet.models.dense_heads import RPNHead
    from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    from mmdet.models.task_modules.prior_generators import AnchorGenerator

    from img2pose_mm.heads import DoFBBoxHead, DoFRoIHead
    from img2pose_mm.task_modules import PoseBBoxCoder

    for part in ('data_preprocessor', 'rpn_head', 'roi_head', 'test_cfg'):
        _require(getattr(detector, part, None) is not None,
                 f'a two-stage detector with {part} (or a one-stage one with a '
                 f'DoFRetinaHead) is needed, got {type(detector).__name__}')
    roi_head = detector.roi_head
    _require(type(roi_head) is DoFRoIHead,
             f'the RoI head must be DoFRoIHead (one stage), got {type(roi_head).__name__}')
    _require(isinstance(roi_head.bbox_head, DoFBBoxHead)
             and isinstance(roi_head.bbox_head.bbox_coder, PoseBBoxCoder),
             'the box head must be a DoFBBoxHead with a PoseBBoxCoder')
    extractor = roi_head.bbox_roi_extractor
    _require(isinstance(extractor, SingleRoIExtractor)
             and all(isinstance(layer, RoIAlign) and layer.pool_mode == 'avg'
                     for layer in extractor.roi_layers),
             'the RoI extractor must be a SingleRoIExtractor of average RoIAlign layers')
    rpn = detector.rpn_head
    _require(isinstance(rpn.prior_generator, AnchorGenerator)
             and isinstance(rpn.bbox_coder, DeltaXYWHBBoxCoder)
             and not rpn.bbox_coder.add_ctr_clamp,
             'the RPN needs an AnchorGenerator and a DeltaXYWHBBoxCoder')
    _require(isinstance(rpn, RPNHead), f'the RPN must be an RPNHead, got {type(rpn).__name__}')
    _nms_threshold(detector.test_cfg.rpn, 'test_cfg.rpn')
    _nms_threshold(detector.test_cfg.rcnn, 'test_cfg.rcnn')
    _require(not detector.test_cfg.rcnn.get('pose_refine_steps', 0),
             'the graph has no pose refinement: export with '
             '--cfg-options model.test_cfg.rcnn.pose_refine_steps=0')


def preprocess_image(data_preprocessor: nn.Module, image: Tensor) -> Tensor:
    """mmdet's ``DetDataPreprocessor`` on a ``(1, 3, H, W)`` uint8 image: channel order,
    float, mean/std, padding to ``pad_size_divisor``."""
    pre = data_preprocessor
    x = image[:, [2, 1, 0]] if pre._channel_conversion else image
    x = x.float()
    if pre._enable_normalize:
        x = (x - pre.mean) / pre.std
    divisor = int(pre.pad_size_divisor)
    height, width = x.shape[-2:]
    # the padded size as a multiple of the divisor keeps the symbolic sizes of every
    # feature map simple while exporting (much faster than the remainder form)
    pad_h = (height + divisor - 1) // divisor * divisor - height
    pad_w = (width + divisor - 1) // divisor * divisor - width
    return F.pad(x, (0, pad_w, 0, pad_h), value=float(pre.pad_value))


def clip_boxes(boxes: Tensor, img_shape: Tensor) -> Tensor:
    """Boxes ``(N, 4)`` clipped to ``[0, w] x [0, h]`` (``img_shape`` = ``[h, w]`` tensor)."""
    upper = img_shape[[1, 0, 1, 0]]
    return torch.minimum(boxes.clamp(min=0), upper)


def batched_nms_keep(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float,
                     num_classes: int, max_per_img: int = -1) -> Tensor:
    """Indices kept by class-aware NMS, by decreasing score (the first ``max_per_img``
    when it is positive).

    mmcv's ``batched_nms`` with its coordinate offset (``labels * (max + 1)``); with one
    class the offset is zero and this is plain NMS.
    """
    if num_classes > 1:
        # max(boxes, 0) = boxes.max() for clipped boxes, and defined without boxes
        top = torch.cat([boxes.flatten(), boxes.new_zeros(1)]).max()
        boxes = boxes + (labels.to(boxes) * (top + 1))[:, None]
    keep = nms(boxes, scores, iou_threshold)
    return keep[:max_per_img] if max_per_img > 0 else keep


class ExportableImg2Pose(nn.Module):
    """An img2pose detector's inference on one image, written for export.

    Input ``image`` ``(1, 3, H, W)`` uint8 in the channel order of the detector's pipeline
    (BGR for mmdet's); outputs ``boxes``, ``scores``, ``labels``, ``poses``: the detector's
    ``predict(..., rescale=False)`` results by decreasing score (docs/deployment.md,
    "Interface"). ``detector.test_cfg`` is read when the module is built and becomes
    constants of an exported graph.

    Args:
        detector: a built, loaded two-stage img2pose detector (see
            :func:`check_two_stage_exportable`).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        check_two_stage_exportable(detector)
        self.detector = detector.eval()
        rpn_cfg, rcnn_cfg = detector.test_cfg.rpn, detector.test_cfg.rcnn
        self.nms_pre = int(rpn_cfg.get('nms_pre', -1))
        self.rpn_min_size = float(rpn_cfg.get('min_bbox_size', -1))
        self.rpn_iou = _nms_threshold(rpn_cfg, 'test_cfg.rpn')
        self.num_proposals = int(rpn_cfg.get('max_per_img', 1000))
        self.score_thr = float(rcnn_cfg.get('score_thr', 0.05))
        self.min_size = float(rcnn_cfg.get('min_bbox_size', 1e-2))
        self.iou = _nms_threshold(rcnn_cfg, 'test_cfg.rcnn')
        self.max_per_img = int(rcnn_cfg.get('max_per_img', -1))

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Detections of one ``(1, 3, H, W)`` uint8 image: boxes, scores, labels, poses."""
        height, width = image.shape[-2:]
        img_shape = torch.tensor([height, width], dtype=torch.float32, device=image.device)
        feats = self.detector.extract_feat(
            preprocess_image(self.detector.data_preprocessor, image))
        proposals = self.propose(feats, img_shape)
        return self.detect(feats, proposals, img_shape)

    # ------------------------------------------------------------------ stages
    def propose(self, feats: Sequence[Tensor], img_shape: Tensor) -> Tensor:
        """The RPN's proposals ``(K, 4)`` by decreasing objectness: mmdet's
        ``RPNHead.predict_by_feat`` for one image, the levels decoded together."""
        from mmdet.models.task_modules.coders.delta_xywh_bbox_coder import delta2bbox

        head = self.detector.rpn_head
        coder = head.bbox_coder
        cls_scores, bbox_preds = head(feats)
        anchors = head.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores],
                                                   dtype=torch.float32,
                                                   device=cls_scores[0].device)
        level_scores, level_deltas, level_priors = [], [], []
        for cls_score, bbox_pred, priors in zip(cls_scores, bbox_preds, anchors):
            logits = cls_score[0].permute(1, 2, 0).reshape(-1, head.cls_out_channels)
            scores = (logits.sigmoid() if head.use_sigmoid_cls
                      else logits.softmax(-1)[:, :-1])[:, 0]
            deltas = bbox_pred[0].permute(1, 2, 0).reshape(-1, 4)
            if self.nms_pre > 0:
                scores, order = scores.topk(torch.sym_min(self.nms_pre, scores.shape[0]))
                deltas, priors = deltas[order], priors[order]
            level_scores.append(scores)
            level_deltas.append(deltas)
            level_priors.append(priors)
        scores = torch.cat(level_scores)
        boxes = delta2bbox(torch.cat(level_priors), torch.cat(level_deltas), coder.means,
                           coder.stds, max_shape=None, clip_border=False)
        if coder.clip_border:
            boxes = clip_boxes(boxes, img_shape)
        valid = (boxes[:, 2:] - boxes[:, :2] > self.rpn_min_size).all(-1)
        if self.rpn_min_size < 0:
            valid = torch.ones_like(valid)
        # a dropped box is the empty box until after NMS: it overlaps no box, so it
        # suppresses nothing and nothing suppresses it, which is NMS without it
        boxes = torch.where(valid[:, None], boxes, torch.zeros_like(boxes))
        keep, start = [], 0
        for level in level_scores:
            end = start + level.shape[0]
            keep.append(nms(boxes[start:end], scores[start:end], self.rpn_iou) + start)
            start = end
        keep = torch.cat(keep)
        keep = keep[valid[keep]]
        count = keep.shape[0]
        if self.num_proposals > 0:
            count = torch.sym_min(self.num_proposals, count)
        _, order = scores[keep].topk(count)
        return boxes[keep[order]]

    def roi_features(self, feats: Sequence[Tensor], proposals: Tensor) -> Tuple[Tensor, Tensor]:
        """RoIAlign features of the proposals, each read from its pyramid level.

        Returns the features grouped by level and, for each, the index of its proposal.
        """
        extractor = self.detector.roi_head.bbox_roi_extractor
        num_levels = len(extractor.featmap_strides)
        rois = torch.cat([proposals.new_zeros(proposals.shape[0], 1), proposals], 1)
        levels = extractor.map_roi_levels(rois, num_levels)
        level_inds, level_feats = [], []
        for i, layer in enumerate(extractor.roi_layers):
            inds = (levels == i).nonzero()[:, 0]
            level_inds.append(inds)
            level_feats.append(roi_align(feats[i], rois[inds], layer.output_size,
                                         layer.spatial_scale, layer.sampling_ratio,
                                         layer.aligned))
        return torch.cat(level_feats), torch.cat(level_inds)

    def detect(self, feats: Sequence[Tensor], proposals: Tensor,
               img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """``DoFBBoxHead``'s test path: scores, pose decode, projected boxes, NMS."""
        roi_head = self.detector.roi_head
        head = roi_head.bbox_head
        roi_feats, order = self.roi_features(feats, proposals)
        if roi_head.with_shared_head:
            roi_feats = roi_head.shared_head(roi_feats)
        cls_score, pose_pred = head(roi_feats)
        # back to the proposals' order (the order NMS breaks exact score ties in)
        cls_score = torch.zeros_like(cls_score).index_copy(0, order, cls_score)
        pose_pred = torch.zeros_like(pose_pred).index_copy(0, order, pose_pred)

        boxes = clip_boxes(proposals, img_shape)
        scores = F.softmax(cls_score, dim=-1)[:, :-1]
        poses = pose_pred.reshape(pose_pred.shape[0], head.num_classes, -1)
        sizes = boxes[:, 2:] - boxes[:, :2]
        keep = (scores > self.score_thr) & (sizes >= self.min_size).all(-1, keepdim=True)
        roi_inds, labels = keep.nonzero().unbind(1)
        scores = scores[roi_inds, labels]
        poses, det_boxes = head.bbox_coder.decode(boxes[roi_inds], poses[roi_inds, labels],
                                                  img_shape)
        keep = batched_nms_keep(det_boxes, scores, labels, self.iou, head.num_classes,
                                self.max_per_img)
        return det_boxes[keep], scores[keep], labels[keep], poses[keep]

    # ------------------------------------------------------------------ metadata
    @property
    def face_model(self):
        """The face model the poses are decoded with."""
        return self.detector.roi_head.bbox_head.bbox_coder.face_model

    def test_settings(self) -> dict:
        """The test settings baked into the graph (``img2pose_mm.test_cfg`` metadata)."""
        return dict(nms_pre=self.nms_pre, rpn_min_bbox_size=self.rpn_min_size,
                    rpn_iou_threshold=self.rpn_iou, num_proposals=self.num_proposals,
                    score_thr=self.score_thr, min_bbox_size=self.min_size,
                    iou_threshold=self.iou, max_per_img=self.max_per_img)


__all__ = ['ExportableImg2Pose', 'check_exportable', 'check_two_stage_exportable',
           'is_one_stage', 'preprocess_image', 'clip_boxes', 'batched_nms_keep',
           'INPUT_NAMES', 'OUTPUT_NAMES']
