"""The one-stage img2pose detector (RetinaNet + ``DoFRetinaHead``) as one exportable forward.

Same graph interface as :class:`~img2pose_mm.deployment.ExportableImg2Pose`; what the graph
holds: docs/deployment.md, "One-stage models on a CPU".
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from img2pose_mm.heads.detection_postprocess import DEFAULT_NMS

from .exportable import _nms_threshold, _require, batched_nms_keep, preprocess_image
from .exportable_voting import graph_pose_voting


def check_retina_exportable(detector: nn.Module) -> None:
    """Raise ``TypeError`` naming what :class:`ExportableRetinaImg2Pose` cannot express."""
    from mmdet.models.task_modules.prior_generators import AnchorGenerator

    from img2pose_mm.dense_heads import DoFRetinaHead
    from img2pose_mm.task_modules import PoseBBoxCoder

    for part in ('data_preprocessor', 'bbox_head', 'extract_feat'):
        _require(getattr(detector, part, None) is not None,
                 f'a one-stage detector with {part} is needed, got {type(detector).__name__}')
    head = detector.bbox_head
    _require(isinstance(head, DoFRetinaHead),
             f'the one-stage head must be a DoFRetinaHead, got {type(head).__name__}')
    _require(isinstance(head.bbox_coder, PoseBBoxCoder), 'the head needs a PoseBBoxCoder')
    _require(isinstance(head.prior_generator, AnchorGenerator),
             'the head needs an AnchorGenerator')
    _require(head.test_cfg is not None, 'the head has no test_cfg')
    _nms_threshold(head.test_cfg, 'test_cfg', DEFAULT_NMS)


def grid_anchors(prior_generator, feature_maps: Sequence[Tensor]) -> List[Tensor]:
    """mmdet's ``AnchorGenerator.grid_priors`` (float32, row-major) for the ``(1, C, h, w)``
    maps of each level.

    The cell indices are cumulative sums of ones shaped like the map rather than
    ``arange(w)``: while exporting, ``arange`` of a symbolic size asks whether it has
    fewer than 2 elements, which would fix the smallest image the graph accepts.
    """
    levels = []
    for base, feats, (stride_w, stride_h) in zip(prior_generator.base_anchors, feature_maps,
                                                 prior_generator.strides):
        ones = torch.ones_like(feats[0, 0], dtype=torch.float32)              # (h, w)
        shift_x = (ones.cumsum(1) - 1) * stride_w
        shift_y = (ones.cumsum(0) - 1) * stride_h
        shifts = torch.stack([shift_x, shift_y, shift_x, shift_y], -1).reshape(-1, 1, 4)
        levels.append((base.to(ones)[None] + shifts).reshape(-1, 4))
    return levels


class ExportableRetinaImg2Pose(nn.Module):
    """A one-stage img2pose detector's inference on one image, written for export.

    Input and outputs as :class:`~img2pose_mm.deployment.ExportableImg2Pose`: the
    detector's ``predict(..., rescale=False)`` results, by decreasing score, in the
    pixels and camera of the ``(1, 3, H, W)`` uint8 input. ``test_cfg`` (``nms_pre``,
    ``score_thr``, ``min_bbox_size``, ``nms``, ``pose_voting``, ``max_per_img``) is read
    when the module is built and becomes constants of an exported graph.

    Args:
        detector: a built, loaded ``SingleStageDetector`` with a ``DoFRetinaHead``.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        check_retina_exportable(detector)
        self.detector = detector.eval()
        cfg = detector.bbox_head.test_cfg
        self.nms_pre = int(cfg.get('nms_pre', -1))
        self.score_thr = float(cfg.get('score_thr', 0))
        self.min_size = float(cfg.get('min_bbox_size', -1))
        self.iou = _nms_threshold(cfg, 'test_cfg', DEFAULT_NMS)
        voting = cfg.get('pose_voting')
        self.voting_iou: Optional[float] = None
        if voting:
            self.voting_iou = float(voting.get('iou_thr', self.iou))
        max_per_img = cfg.get('max_per_img', -1)
        self.max_per_img = -1 if max_per_img is None else int(max_per_img)

    @property
    def face_model(self):
        """The face model the poses are decoded with."""
        return self.detector.bbox_head.bbox_coder.face_model

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Detections of one ``(1, 3, H, W)`` uint8 image: boxes, scores, labels, poses."""
        height, width = image.shape[-2:]
        img_shape = torch.tensor([height, width], dtype=torch.float32, device=image.device)
        feats = self.detector.extract_feat(
            preprocess_image(self.detector.data_preprocessor, image))
        cls_scores, pose_preds = self.detector.bbox_head(feats)
        candidates = self.candidates(cls_scores, pose_preds, img_shape)
        return self.suppress(*candidates, img_shape)

    def candidates(self, cls_scores: Sequence[Tensor], pose_preds: Sequence[Tensor],
                   img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Boxes, scores, labels and global poses of the anchors kept for suppression."""
        head = self.detector.bbox_head
        dim = head.bbox_coder.encode_size
        mlvl_anchors = grid_anchors(head.prior_generator, cls_scores)
        level_scores, level_labels, level_poses, level_anchors = [], [], [], []
        for cls_score, pose_pred, anchors in zip(cls_scores, pose_preds, mlvl_anchors):
            logits = cls_score[0].float().permute(1, 2, 0).reshape(-1, head.cls_out_channels)
            scores = logits.sigmoid() if head.use_sigmoid_cls else logits.softmax(-1)[:, :-1]
            num_classes = scores.shape[1]
            scores = scores.reshape(-1)
            if self.nms_pre > 0:
                scores, order = scores.topk(torch.sym_min(self.nms_pre, scores.shape[0]))
            else:
                order = torch.ones_like(scores, dtype=torch.long).cumsum(0) - 1   # arange
            rows = torch.div(order, num_classes, rounding_mode='floor')
            level_scores.append(scores)
            level_labels.append(order - rows * num_classes)
            level_poses.append(pose_pred[0].float().permute(1, 2, 0).reshape(-1, dim)[rows])
            level_anchors.append(anchors[rows])
        scores = torch.cat(level_scores)
        keep = (scores > self.score_thr).nonzero()[:, 0]
        poses, boxes = head.bbox_coder.decode(torch.cat(level_anchors)[keep],
                                              torch.cat(level_poses)[keep], img_shape)
        scores, labels = scores[keep], torch.cat(level_labels)[keep]
        if self.min_size >= 0:
            sizes = boxes[:, 2:] - boxes[:, :2]
            valid = (sizes > self.min_size).all(-1).nonzero()[:, 0]
            boxes, scores, labels, poses = boxes[valid], scores[valid], labels[valid], poses[valid]
        return boxes, scores, labels, poses

    def suppress(self, boxes: Tensor, scores: Tensor, labels: Tensor, poses: Tensor,
                 img_shape: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """NMS, or pose voting around the faces NMS keeps; at most ``max_per_img``."""
        num_classes = self.detector.bbox_head.num_classes
        if self.voting_iou is None:
            keep = batched_nms_keep(boxes, scores, labels, self.iou, num_classes, self.max_per_img)
            return boxes[keep], scores[keep], labels[keep], poses[keep]
        keep = batched_nms_keep(boxes, scores, labels, self.voting_iou, num_classes)
        scores, labels, poses, _ = graph_pose_voting(boxes, scores, labels, poses, keep,
                                                     self.voting_iou)
        if self.max_per_img > 0:
            scores, labels = scores[:self.max_per_img], labels[:self.max_per_img]
            poses = poses[:self.max_per_img]
        boxes = self.detector.bbox_head.bbox_coder.face_model.pose_to_bbox(poses, img_shape)
        return boxes, scores, labels, poses

    # ------------------------------------------------------------------ export
    def check_trace_shape(self, input_shape: Sequence[int]) -> None:
        """``ValueError`` unless both sides of ``input_shape`` pass the coarsest anchor
        stride: then every pyramid level has 2 cells or more (a level of 1 cell while
        tracing fixes the graph's input size)."""
        strides = self.detector.bbox_head.prior_generator.strides
        size = int(max(max(stride) for stride in strides)) + 1
        if min(input_shape) < size:
            raise ValueError(f'a dynamic one-stage graph is traced at {size} px or more per '
                             f'side (the coarsest anchor stride + 1), got {tuple(input_shape)}: '
                             'pass a larger input shape (--shape); the graph then takes '
                             'any size')

    @staticmethod
    def tracing():
        """The exporter's setting while tracing: sizes are not specialised at 0 or 1, so
        that ``is_contiguous`` checks on the small coarse levels add no size guards."""
        import torch.fx.experimental._config as fx_config
        return fx_config.patch(backed_size_oblivious=True)

    def test_settings(self) -> dict:
        """The test settings baked into the graph (``img2pose_mm.test_cfg`` metadata)."""
        return dict(nms_pre=self.nms_pre, score_thr=self.score_thr,
                    min_bbox_size=self.min_size, iou_threshold=self.iou,
                    pose_voting_iou_thr=self.voting_iou, max_per_img=self.max_per_img)


__all__ = ['ExportableRetinaImg2Pose', 'check_retina_exportable']
