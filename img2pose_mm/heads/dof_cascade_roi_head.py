"""Cascade R-CNN whose stages carry img2pose's 6DoF head."""
from __future__ import annotations

from typing import List, Optional, Tuple

from mmdet.models.roi_heads import CascadeRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import ConfigType, InstanceList
from torch import Tensor

from .dof_roi_head import (
    GivenBoxesMixin,
    add_empty_poses,
    float32_features,
    positive_roi_mask,
)
from .pose_targets import PoseSamplingWrapper


@MODELS.register_module()
class DoFCascadeRoIHead(GivenBoxesMixin, CascadeRoIHead):
    """:class:`CascadeRoIHead` with a :class:`DoFBBoxHead` in every stage.

    mmdet's cascade ``loss`` runs unchanged (each stage's sampler carries the GT poses,
    see :class:`~img2pose_mm.heads.pose_targets.PoseSamplingWrapper`). A stage's RoIs for
    the next stage are the boxes projected from its predicted poses (no box deltas
    anywhere). At test time the class scores are averaged over the stages and the last
    stage's poses are reported, relative to the RoIs that stage saw.
    :meth:`predict_for_boxes` runs the cascade on given boxes (one result per box).
    """

    def init_assigner_sampler(self) -> None:
        """mmdet's per-stage assigners and samplers; samplers carry ``pos_gt_poses``."""
        super().init_assigner_sampler()
        self.bbox_sampler = [PoseSamplingWrapper(s) for s in self.bbox_sampler]

    def _bbox_forward(self, stage: int, x: Tuple[Tensor], rois: Tensor,
                      pose_inds: Optional[Tensor] = None) -> dict:
        """Stage ``stage``: RoI features once, class scores for all, poses for ``pose_inds``."""
        bbox_roi_extractor = self.bbox_roi_extractor[stage]
        bbox_feats = bbox_roi_extractor(float32_features(x, bbox_roi_extractor), rois)
        cls_score, pose_pred = self.bbox_head[stage](bbox_feats, pose_inds)
        return dict(cls_score=cls_score, bbox_pred=pose_pred, bbox_feats=bbox_feats)

    def bbox_loss(self, stage: int, x: Tuple[Tensor],
                  sampling_results: List[SamplingResult]) -> dict:
        """mmdet's ``bbox_loss`` of one stage, with poses for the positive RoIs only."""
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = self._bbox_forward(
            stage, x, rois, pose_inds=positive_roi_mask(sampling_results, rois.device))
        bbox_results.update(rois=rois)
        bbox_results.update(self.bbox_head[stage].loss_and_target(
            cls_score=bbox_results['cls_score'], bbox_pred=bbox_results['bbox_pred'],
            rois=rois, sampling_results=sampling_results,
            rcnn_train_cfg=self.train_cfg[stage]))
        return bbox_results

    def predict_bbox(self, x: Tuple[Tensor], batch_img_metas: List[dict],
                     rpn_results_list: InstanceList, rcnn_test_cfg: ConfigType,
                     rescale: bool = False, **kwargs) -> InstanceList:
        """Detections with the last stage's ``poses``."""
        return add_empty_poses(super().predict_bbox(x, batch_img_metas, rpn_results_list,
                                                    rcnn_test_cfg, rescale, **kwargs),
                               self.bbox_head[-1].bbox_coder.encode_size)
