"""The img2pose RoI head: one RoIAlign pass feeding the class and 6DoF pose branches."""
from __future__ import annotations

import copy
from typing import List, Optional, Tuple

import torch
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import ConfigType, InstanceList
from mmengine.config import ConfigDict
from torch import Tensor

from .detection_postprocess import rescale_detections
from .pose_targets import PoseSamplingWrapper


def positive_roi_mask(sampling_results: List[SamplingResult], device) -> Tensor:
    """Bool mask over the sampled RoIs of a batch marking the positives."""
    return torch.cat([torch.cat([torch.ones(len(res.pos_priors), dtype=torch.bool, device=device),
                                 torch.zeros(len(res.neg_priors), dtype=torch.bool, device=device)])
                      for res in sampling_results])


def float32_features(x: Tuple[Tensor], roi_extractor) -> Tuple[Tensor]:
    """The features RoIAlign reads, cast to float32 if autocast made them bfloat16.

    mmcv's RoIAlign has no bfloat16 kernel (CPU mixed precision, ``--amp``); float16 on
    GPU is supported and left alone. mmcv's CPU kernel also reads the memory as NCHW
    whatever the strides, so channels-last levels are made contiguous for extractors
    that do not handle them (:class:`~img2pose_mm.heads.GatherRoIExtractor` does).
    """
    feats = x[:roi_extractor.num_inputs]
    if feats[0].dtype == torch.bfloat16:
        feats = tuple(f.float() for f in feats)
    if not getattr(roi_extractor, 'handles_channels_last', False):
        feats = tuple(f.contiguous() for f in feats)
    return feats


def add_empty_poses(results: InstanceList, encode_size: int = 6) -> InstanceList:
    """Give ``poses`` to mmdet's empty results (no proposal at all)."""
    for res in results:
        if 'poses' not in res:
            res.poses = res.bboxes.new_zeros((len(res), encode_size))
    return results


class GivenBoxesMixin:
    """``predict_for_boxes``: the poses of given boxes, one per box, through the RoI head's
    own ``predict_bbox`` (mmdet's test path) with ``keep_all_rois`` set in its test
    config (see :meth:`DoFBBoxHead._predict_by_feat_single`)."""

    def predict_for_boxes(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
                          batch_data_samples: SampleList, rescale: bool = True) -> InstanceList:
        """One detection per box of each ``rpn_results_list[i].bboxes`` (network-input
        pixels), in their order: no score or size filter, no NMS between them
        (docs/conventions.md, "Poses for boxes found by another detector"). Results hold
        ``scores``, ``labels``, global ``poses`` and the pose-projected ``bboxes``, in the
        original image's frame with ``rescale``.
        """
        cfg = ConfigDict(copy.deepcopy(dict(self.test_cfg or {})))
        cfg.keep_all_rois = True
        batch_img_metas = [sample.metainfo for sample in batch_data_samples]
        return self.predict_bbox(x, batch_img_metas, rpn_results_list, cfg, rescale=rescale)


@MODELS.register_module()
class DoFRoIHead(GivenBoxesMixin, StandardRoIHead):
    """:class:`StandardRoIHead` for img2pose's :class:`DoFBBoxHead`.

    mmdet's ``loss`` runs unchanged (the sampler is wrapped by :class:`PoseSamplingWrapper`).
    RoI features are extracted once; the class branch runs on every sampled RoI and,
    during training, the pose branch only on the positive ones (as in the original, whose
    BatchNorm statistics come from positives). Predictions carry ``poses``;
    :meth:`predict_for_boxes` gives the poses of given boxes (one per box).
    """

    def init_assigner_sampler(self) -> None:
        """mmdet's assigner and sampler; the sampler's results carry ``pos_gt_poses``."""
        super().init_assigner_sampler()
        if self.bbox_sampler is not None:
            self.bbox_sampler = PoseSamplingWrapper(self.bbox_sampler)

    def _bbox_forward(self, x: Tuple[Tensor], rois: Tensor,
                      pose_inds: Optional[Tensor] = None,
                      rcnn_test_cfg: Optional[ConfigType] = None) -> dict:
        """RoI features once, then ``cls_score`` (all RoIs) and ``bbox_pred`` (the poses).

        Args:
            pose_inds: RoIs (bool mask or indices) that get a pose; ``None`` = all.
            rcnn_test_cfg: at test time: poses only for the RoIs whose class score can
                pass its ``score_thr`` (:meth:`DoFBBoxHead.forward`).
        """
        bbox_feats = self.bbox_roi_extractor(float32_features(x, self.bbox_roi_extractor),
                                             rois)
        if self.with_shared_head:
            bbox_feats = self.shared_head(bbox_feats)
        # flattened once for both branches (a copy for channels-last RoI features); the
        # head is called as a module (its hooks run, e.g. enable_bf16_inference's autocast)
        flat_feats = bbox_feats.flatten(1)
        cls_score, pose_pred = self.bbox_head(flat_feats, pose_inds, rcnn_test_cfg=rcnn_test_cfg)
        return dict(cls_score=cls_score, bbox_pred=pose_pred, bbox_feats=bbox_feats)

    def bbox_loss(self, x: Tuple[Tensor], sampling_results: List[SamplingResult]) -> dict:
        """mmdet's ``bbox_loss``, with poses predicted for the positive RoIs only."""
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = self._bbox_forward(
            x, rois, pose_inds=positive_roi_mask(sampling_results, rois.device))
        loss_and_target = self.bbox_head.loss_and_target(
            cls_score=bbox_results['cls_score'], bbox_pred=bbox_results['bbox_pred'],
            rois=rois, sampling_results=sampling_results, rcnn_train_cfg=self.train_cfg)
        bbox_results.update(rois=rois, loss_bbox=loss_and_target['loss_bbox'],
                            bbox_targets=loss_and_target['bbox_targets'])
        return bbox_results

    def predict_bbox(self, x: Tuple[Tensor], batch_img_metas: List[dict],
                     rpn_results_list: InstanceList, rcnn_test_cfg: ConfigType,
                     rescale: bool = False) -> InstanceList:
        """Detections with ``poses`` (global 6DoF) for every image of the batch: mmdet's
        ``predict_bbox`` with poses for the RoIs that can pass ``score_thr`` only. With
        ``rcnn_test_cfg.pose_refine_steps = n > 0`` the poses are then refined
        (:meth:`refine_poses`).
        """
        proposals = [res.bboxes for res in rpn_results_list]
        rois = bbox2roi(proposals)
        if rois.shape[0] == 0:
            return add_empty_poses(super().predict_bbox(x, batch_img_metas, rpn_results_list,
                                                        rcnn_test_cfg, rescale),
                                   self.bbox_head.bbox_coder.encode_size)
        bbox_results = self._bbox_forward(x, rois, rcnn_test_cfg=rcnn_test_cfg)
        num_per_img = tuple(len(p) for p in proposals)
        steps = int((rcnn_test_cfg or {}).get('pose_refine_steps', 0))
        results = self.bbox_head.predict_by_feat(
            rois=rois.split(num_per_img),
            cls_scores=bbox_results['cls_score'].split(num_per_img),
            bbox_preds=bbox_results['bbox_pred'].split(num_per_img),
            batch_img_metas=batch_img_metas,
            rcnn_test_cfg=rcnn_test_cfg, rescale=rescale and steps == 0)
        results = add_empty_poses(results, self.bbox_head.bbox_coder.encode_size)
        if steps > 0:
            results = self.refine_poses(x, batch_img_metas, results, rcnn_test_cfg, steps,
                                        rescale)
        return results

    def refine_poses(self, x: Tuple[Tensor], batch_img_metas: List[dict],
                     results: InstanceList, rcnn_test_cfg: ConfigType, steps: int,
                     rescale: bool = False) -> InstanceList:
        """Pose of each detection again from the RoI of its own pose-projected box,
        ``steps`` times (test time only; img2pose's inference is ``steps = 0``).

        A proposal frames its face more loosely than the box its pose projects to; the
        pose branch, trained on RoIs from IoU 0.5 up to the GT boxes, reads a tighter
        RoI better. Scores, labels and the detections kept stay those of the first pass;
        boxes and poses are replaced. ``results`` are in the network input's frame;
        with ``rescale`` they are returned in the original image's.
        """
        cfg = ConfigDict(copy.deepcopy(dict(rcnn_test_cfg)))
        cfg.keep_all_rois, cfg.pose_refine_steps = True, 0
        for _ in range(steps):
            refined = self.predict_bbox(x, batch_img_metas, results, cfg, rescale=False)
            for res, ref in zip(results, refined):
                res.bboxes, res.poses = ref.bboxes, ref.poses
        if rescale:
            face_model = self.bbox_head.bbox_coder.face_model
            for res, img_meta in zip(results, batch_img_metas):
                res.bboxes, res.poses = rescale_detections(res.bboxes, res.poses, img_meta,
                                                           face_model)
        return results
