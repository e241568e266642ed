"""Cascade R-CNN whose stages carry img2pose's 6DoF head."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from mmdet.models.roi_heads import CascadeRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.models.utils import empty_instances, unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import ConfigType, InstanceList
from torch import Tensor

from .dof_roi_head import float32_features, positive_roi_mask


@MODELS.register_module()
class DoFCascadeRoIHead(CascadeRoIHead):
    """:class:`CascadeRoIHead` with a :class:`DoFBBoxHead` in every stage.

    A stage's RoIs for the next stage are the boxes projected from its predicted
    poses (no box deltas anywhere). Training samples each stage with its own IoU
    thresholds and weights its losses (``s{i}.loss_*``); at test time the class
    scores are averaged over the stages and the last stage's poses are reported,
    relative to the RoIs that stage saw.
    """

    def _bbox_forward(self, stage: int, x: Tuple[Tensor], rois: Tensor,
                      pose_inds: Optional[Tensor] = None) -> dict:
        """Stage ``stage``: RoI features once, class scores for all, poses for ``pose_inds``."""
        bbox_roi_extractor = self.bbox_roi_extractor[stage]
        bbox_feats = bbox_roi_extractor(float32_features(x, bbox_roi_extractor), rois)
        cls_score, pose_pred = self.bbox_head[stage](bbox_feats, pose_inds)
        return dict(cls_score=cls_score, bbox_pred=pose_pred, pose_pred=pose_pred,
                    bbox_feats=bbox_feats)

    def bbox_loss(self, stage: int, x: Tuple[Tensor], sampling_results: List[SamplingResult],
                  batch_gt_instances: InstanceList, batch_img_metas: List[dict]) -> dict:
        """Losses of one stage (poses of positive RoIs only)."""
        rois = bbox2roi([res.priors for res in sampling_results])
        bbox_results = self._bbox_forward(stage, x, rois,
                                          pose_inds=positive_roi_mask(sampling_results, rois.device))
        bbox_results.update(rois=rois)
        bbox_results.update(self.bbox_head[stage].loss_and_target(
            cls_score=bbox_results['cls_score'], pose_pred=bbox_results['pose_pred'],
            sampling_results=sampling_results, batch_gt_instances=batch_gt_instances,
            batch_img_metas=batch_img_metas, rcnn_train_cfg=self.train_cfg[stage]))
        return bbox_results

    def loss(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
             batch_data_samples: SampleList) -> dict:
        """Assign, sample, compute and refine stage by stage."""
        assert len(rpn_results_list) == len(batch_data_samples)
        batch_gt_instances, batch_gt_instances_ignore, batch_img_metas = \
            unpack_gt_instances(batch_data_samples)
        losses = dict()
        results_list = rpn_results_list
        for stage in range(self.num_stages):
            self.current_stage = stage
            sampling_results = []
            for i in range(len(batch_data_samples)):
                results = results_list[i]
                results.priors = results.pop('bboxes')
                assign_result = self.bbox_assigner[stage].assign(
                    results, batch_gt_instances[i], batch_gt_instances_ignore[i])
                sampling_results.append(self.bbox_sampler[stage].sample(
                    assign_result, results, batch_gt_instances[i],
                    feats=[lvl_feat[i][None] for lvl_feat in x]))
            bbox_results = self.bbox_loss(stage, x, sampling_results, batch_gt_instances,
                                          batch_img_metas)
            weight = self.stage_loss_weights[stage]
            for name, value in bbox_results['loss_bbox'].items():
                losses[f's{stage}.{name}'] = value * weight if 'loss' in name else value
            if stage < self.num_stages - 1:
                with torch.no_grad():
                    results_list = self.bbox_head[stage].refine_bboxes(
                        sampling_results, bbox_results, batch_img_metas)
        return losses

    def predict_bbox(self, x: Tuple[Tensor], batch_img_metas: List[dict],
                     rpn_results_list: InstanceList, rcnn_test_cfg: ConfigType,
                     rescale: bool = False, **kwargs) -> InstanceList:
        """Detections with the last stage's ``poses``."""
        proposals = [res.bboxes for res in rpn_results_list]
        rois = bbox2roi(proposals)
        if rois.shape[0] == 0:
            results = empty_instances(batch_img_metas, rois.device, task_type='bbox',
                                      box_type=self.bbox_head[-1].predict_box_type,
                                      num_classes=self.bbox_head[-1].num_classes)
            for res in results:
                res.poses = rois.new_zeros((0, self.bbox_head[-1].bbox_coder.encode_size))
            return results
        return super().predict_bbox(x, batch_img_metas, rpn_results_list, rcnn_test_cfg,
                                    rescale, **kwargs)
