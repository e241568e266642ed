"""The img2pose RoI head: one RoIAlign pass feeding the class and 6DoF pose branches."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.models.utils import empty_instances, unpack_gt_instances
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList
from mmdet.structures.bbox import bbox2roi
from mmdet.utils import ConfigType, InstanceList
from torch import Tensor


def positive_roi_mask(sampling_results: List[SamplingResult], device) -> Tensor:
    """Bool mask over the sampled RoIs of a batch marking the positives."""
    return torch.cat([torch.cat([torch.ones(len(res.pos_priors), dtype=torch.bool, device=device),
                                 torch.zeros(len(res.neg_priors), dtype=torch.bool, device=device)])
                      for res in sampling_results])


def float32_features(x: Tuple[Tensor], roi_extractor) -> Tuple[Tensor]:
    """The features RoIAlign reads, cast to float32 if autocast made them bfloat16.

    mmcv's RoIAlign has no bfloat16 kernel (CPU mixed precision, ``--amp``); float16 on
    GPU is supported and left alone.
    """
    feats = x[:roi_extractor.num_inputs]
    if feats[0].dtype == torch.bfloat16:
        feats = tuple(f.float() for f in feats)
    return feats


@MODELS.register_module()
class DoFRoIHead(StandardRoIHead):
    """:class:`StandardRoIHead` for img2pose's :class:`DoFBBoxHead`.

    RoI features are extracted once; the class branch runs on every sampled RoI
    and, during training, the pose branch only on the positive ones (as in the
    original, whose BatchNorm statistics come from positives). The GT poses reach
    the head's targets through ``sampling_results[i].pos_assigned_gt_inds``.
    Predictions carry ``poses`` next to ``bboxes``, ``scores`` and ``labels``.
    """

    def _bbox_forward(self, x: Tuple[Tensor], rois: Tensor,
                      pose_inds: Optional[Tensor] = None) -> dict:
        """RoI features once, then ``cls_score`` (all RoIs) and ``pose_pred``.

        Args:
            pose_inds: RoIs (bool mask or indices) that get a pose; ``None`` = all.
        """
        bbox_feats = self.bbox_roi_extractor(float32_features(x, self.bbox_roi_extractor),
                                             rois)
        if self.with_shared_head:
            bbox_feats = self.shared_head(bbox_feats)
        cls_score, pose_pred = self.bbox_head(bbox_feats, pose_inds)
        # ``bbox_pred`` is the name mmdet's RoI heads and hooks look for
        return dict(cls_score=cls_score, bbox_pred=pose_pred, pose_pred=pose_pred,
                    bbox_feats=bbox_feats)

    def loss(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
             batch_data_samples: List[DetDataSample]) -> dict:
        """Assign and sample proposals, then the class and pose losses."""
        assert len(rpn_results_list) == len(batch_data_samples)
        batch_gt_instances, batch_gt_instances_ignore, batch_img_metas = \
            unpack_gt_instances(batch_data_samples)
        sampling_results = []
        for i in range(len(batch_data_samples)):
            rpn_results = rpn_results_list[i]
            rpn_results.priors = rpn_results.pop('bboxes')
            assign_result = self.bbox_assigner.assign(rpn_results, batch_gt_instances[i],
                                                      batch_gt_instances_ignore[i])
            sampling_results.append(self.bbox_sampler.sample(
                assign_result, rpn_results, batch_gt_instances[i],
                feats=[lvl_feat[i][None] for lvl_feat in x]))
        bbox_results = self.bbox_loss(x, sampling_results, batch_gt_instances, batch_img_metas)
        return bbox_results['loss_bbox']

    def bbox_loss(self, x: Tuple[Tensor], sampling_results: List[SamplingResult],
                  batch_gt_instances: InstanceList, batch_img_metas: List[dict]) -> dict:
        """Forward the sampled RoIs (poses for positives only) and compute the losses."""
        rois = bbox2roi([res.priors for res in sampling_results])
        pos_mask = positive_roi_mask(sampling_results, rois.device)
        bbox_results = self._bbox_forward(x, rois, pose_inds=pos_mask)
        loss_and_target = self.bbox_head.loss_and_target(
            cls_score=bbox_results['cls_score'], pose_pred=bbox_results['pose_pred'],
            sampling_results=sampling_results, batch_gt_instances=batch_gt_instances,
            batch_img_metas=batch_img_metas, rcnn_train_cfg=self.train_cfg)
        bbox_results.update(rois=rois, loss_bbox=loss_and_target['loss_bbox'],
                            bbox_targets=loss_and_target['bbox_targets'])
        return bbox_results

    def predict_bbox(self, x: Tuple[Tensor], batch_img_metas: List[dict],
                     rpn_results_list: InstanceList, rcnn_test_cfg: ConfigType,
                     rescale: bool = False) -> InstanceList:
        """Detections with ``poses`` (global 6DoF) for every image of the batch."""
        proposals = [res.bboxes for res in rpn_results_list]
        rois = bbox2roi(proposals)
        if rois.shape[0] == 0:
            results = empty_instances(batch_img_metas, rois.device, task_type='bbox',
                                      box_type=self.bbox_head.predict_box_type,
                                      num_classes=self.bbox_head.num_classes)
            for res in results:
                res.poses = rois.new_zeros((0, self.bbox_head.bbox_coder.encode_size))
            return results
        bbox_results = self._bbox_forward(x, rois)
        num_per_img = tuple(len(p) for p in proposals)
        return self.bbox_head.predict_by_feat(
            rois=rois.split(num_per_img, 0),
            cls_scores=bbox_results['cls_score'].split(num_per_img, 0),
            bbox_preds=bbox_results['pose_pred'].split(num_per_img, 0),
            batch_img_metas=batch_img_metas, rcnn_test_cfg=rcnn_test_cfg, rescale=rescale)

    def forward(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
                batch_data_samples: SampleList = None) -> tuple:
        """Raw ``(cls_score, pose_pred)`` of the proposals (``mode='tensor'``)."""
        rois = bbox2roi([res.bboxes for res in rpn_results_list])
        bbox_results = self._bbox_forward(x, rois)
        return bbox_results['cls_score'], bbox_results['pose_pred']
