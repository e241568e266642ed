"""img2pose's 6DoF pose head on a one-stage, anchor-based detector (RetinaNet style)."""
from __future__ import annotations

import copy
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.models.dense_heads import RetinaHead
from mmdet.models.task_modules.prior_generators import anchor_inside_flags
from mmdet.models.utils import filter_scores_and_topk, unmap
from mmdet.registry import MODELS
from mmdet.structures.bbox import cat_boxes, get_box_tensor, get_box_wh
from mmdet.utils import ConfigType, InstanceList, OptInstanceList
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from img2pose_mm.heads.detection_postprocess import postprocess_detections
from img2pose_mm.heads.pose_losses import pose_losses
from img2pose_mm.heads.pose_targets import PoseSamplingWrapper, encode_pose_targets


def levels_to_rows(maps: Sequence[Tensor], dim: int) -> Tensor:
    """Per-level maps ``(N, A * dim, H, W)`` -> ``(N * sum(H * W * A), dim)``.

    Rows are ordered image, level, position, anchor: the order of mmdet's
    ``grid_priors`` concatenated over levels, image after image.
    """
    return torch.cat([m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, dim) for m in maps],
                     1).reshape(-1, dim)


@MODELS.register_module()
class DoFRetinaHead(RetinaHead):
    """RetinaNet's head with img2pose's pose branch: per anchor, class scores and a 6DoF pose.

    .. code-block:: none

        FPN level -> cls_convs  -> retina_cls  -> A x num_classes scores
                  \\-> pose_convs -> retina_pose -> A x 6 normalised anchor-local poses

    An anchor plays the part of img2pose's proposal: ``bbox_coder`` is a
    :class:`~img2pose_mm.task_modules.PoseBBoxCoder`, and boxes are projected from the
    decoded poses (no box-delta regression). Targets, losses and the test path step by
    step: docs/extending.md, "Put the 6DoF head on a one-stage detector".

    Args:
        num_classes: foreground classes (1 = face).
        in_channels: channels of the FPN levels.
        stacked_convs: 3x3 convs of each branch before its predictor.
        bbox_coder: the pose coder.
        loss_cls: classification loss (sigmoid focal loss as RetinaNet).
        loss_dof: squared error of the normalised poses.
        loss_points: L1 of the 5 reference points projected in the anchor.
        kwargs: :class:`RetinaHead` / :class:`AnchorHead` arguments (``feat_channels``,
            ``norm_cfg``, ``anchor_generator``, ``train_cfg``, ``test_cfg``, ...).
    """

    def __init__(self,
                 num_classes: int = 1,
                 in_channels: int = 256,
                 stacked_convs: int = 4,
                 bbox_coder: ConfigType = dict(type='PoseBBoxCoder'),
                 loss_cls: ConfigType = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                                             alpha=0.25, loss_weight=1.0),
                 loss_dof: ConfigType = dict(type='DoFLoss', loss_weight=1.0),
                 loss_points: ConfigType = dict(type='PosePointsLoss', loss_weight=1.0),
                 **kwargs) -> None:
        super().__init__(num_classes, in_channels, stacked_convs=stacked_convs,
                         bbox_coder=bbox_coder, loss_cls=loss_cls, loss_bbox=loss_dof, **kwargs)
        del self.loss_bbox
        self.loss_dof = MODELS.build(loss_dof)
        self.loss_points = MODELS.build(loss_points)
        if self.train_cfg:
            self.sampler = PoseSamplingWrapper(self.sampler)

    def _init_layers(self) -> None:
        """RetinaHead's layers; its box branch predicts poses and is named so."""
        super()._init_layers()
        self.pose_convs, self.retina_pose = self.reg_convs, self.retina_reg
        del self.reg_convs, self.retina_reg

    def forward_single(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Scores ``(N, A * num_classes, H, W)`` and poses ``(N, A * 6, H, W)`` of one level."""
        cls_feat = pose_feat = x
        for conv in self.cls_convs:
            cls_feat = conv(cls_feat)
        for conv in self.pose_convs:
            pose_feat = conv(pose_feat)
        return self.retina_cls(cls_feat), self.retina_pose(pose_feat)

    # ------------------------------------------------------------------ training
    def _get_targets_single(self, flat_anchors: Tensor, valid_flags: Tensor,
                            gt_instances: InstanceData, img_meta: dict,
                            gt_instances_ignore: Optional[InstanceData] = None,
                            unmap_outputs: bool = True) -> tuple:
        """Class and pose targets of the anchors of one image.

        Returns:
            ``(labels (A,), label_weights (A,), pose_targets (A, 6), pose_weights (A,),
            pos_inds, neg_inds, sampling_result)``; a positive anchor's pose target is its
            GT face's pose in the anchor's frame (normalised).
        """
        inside_flags = anchor_inside_flags(flat_anchors, valid_flags, img_meta['img_shape'][:2],
                                           self.train_cfg['allowed_border'])
        if not inside_flags.any():
            raise ValueError('no anchor inside the image: check the image and anchor sizes, '
                             'or set allowed_border=-1')
        anchors = flat_anchors[inside_flags]
        pred_instances = InstanceData(priors=anchors)
        assign_result = self.assigner.assign(pred_instances, gt_instances, gt_instances_ignore)
        sampling_result = self.sampler.sample(assign_result, pred_instances, gt_instances)

        num_anchors = anchors.shape[0]
        labels = anchors.new_full((num_anchors, ), self.num_classes, dtype=torch.long)
        label_weights = anchors.new_zeros(num_anchors)
        pose_targets = anchors.new_zeros(num_anchors, self.bbox_coder.encode_size)
        pose_weights = anchors.new_zeros(num_anchors)
        pos_inds, neg_inds = sampling_result.pos_inds, sampling_result.neg_inds
        if len(pos_inds) > 0:
            pose_targets[pos_inds], pose_weights[pos_inds] = encode_pose_targets(
                self.bbox_coder, get_box_tensor(sampling_result.pos_priors),
                sampling_result.pos_gt_poses)
            labels[pos_inds] = sampling_result.pos_gt_labels
            pos_weight = self.train_cfg.get('pos_weight', -1)
            label_weights[pos_inds] = 1.0 if pos_weight <= 0 else pos_weight
        if len(neg_inds) > 0:
            label_weights[neg_inds] = 1.0

        if unmap_outputs:
            total = flat_anchors.size(0)
            labels = unmap(labels, total, inside_flags, fill=self.num_classes)
            label_weights = unmap(label_weights, total, inside_flags)
            pose_targets = unmap(pose_targets, total, inside_flags)
            pose_weights = unmap(pose_weights, total, inside_flags)
        return (labels, label_weights, pose_targets, pose_weights, pos_inds, neg_inds,
                sampling_result)

    def loss_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor],
                     batch_gt_instances: InstanceList, batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> dict:
        """``loss_cls`` over all anchors, ``loss_dof`` / ``loss_points`` over positives.

        Args:
            cls_scores: per level ``(N, A * num_classes, H, W)``.
            bbox_preds: per level ``(N, A * 6, H, W)``: normalised anchor-local poses.
            batch_gt_instances: ``bboxes``, ``labels`` and ``poses`` (``FacePoses`` in the
                frame of the network input) of every image.
        """
        # anchors, targets and losses in float32 even when the convs ran under autocast
        cls_scores = [s.float() for s in cls_scores]
        pose_preds = [p.float() for p in bbox_preds]
        featmap_sizes = [s.shape[-2:] for s in cls_scores]
        anchor_list, valid_flag_list = self.get_anchors(featmap_sizes, batch_img_metas,
                                                        device=cls_scores[0].device)
        labels, label_weights, pose_targets, pose_weights, avg_factor = self.get_targets(
            anchor_list, valid_flag_list, batch_gt_instances, batch_img_metas,
            batch_gt_instances_ignore=batch_gt_instances_ignore)

        # one row per anchor of the batch, in the order of levels_to_rows
        labels = torch.cat(labels, 1).reshape(-1)
        label_weights = torch.cat(label_weights, 1).reshape(-1)
        pose_targets = torch.cat(pose_targets, 1).reshape(-1, self.bbox_coder.encode_size)
        pose_weights = torch.cat(pose_weights, 1).reshape(-1)
        anchors = torch.cat([get_box_tensor(cat_boxes(a)) for a in anchor_list])
        cls_score = levels_to_rows(cls_scores, self.cls_out_channels)
        pose_pred = levels_to_rows(pose_preds, self.bbox_coder.encode_size)

        losses = dict(loss_cls=self.loss_cls(cls_score, labels, label_weights,
                                             avg_factor=avg_factor))
        pos = ((labels >= 0) & (labels < self.num_classes)).nonzero().squeeze(1)
        losses.update(pose_losses(self.loss_dof, self.loss_points, self.bbox_coder,
                                  pose_pred[pos], pose_targets[pos], pose_weights[pos],
                                  anchors[pos]))
        return losses

    # ------------------------------------------------------------------ testing
    def predict_by_feat(self, cls_scores: List[Tensor], bbox_preds: List[Tensor],
                        score_factors: Optional[List[Tensor]] = None,
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: Optional[ConfigDict] = None, rescale: bool = False,
                        with_nms: bool = True) -> InstanceList:
        """mmdet's per-image loop, with anchors and decoding in float32."""
        return super().predict_by_feat([s.float() for s in cls_scores],
                                       [p.float() for p in bbox_preds], score_factors,
                                       batch_img_metas, cfg, rescale, with_nms)

    def _predict_by_feat_single(self, cls_score_list: List[Tensor],
                                bbox_pred_list: List[Tensor],
                                score_factor_list: List[Optional[Tensor]],
                                mlvl_priors: List[Tensor], img_meta: dict,
                                cfg: Optional[ConfigDict], rescale: bool = False,
                                with_nms: bool = True) -> InstanceData:
        """Top-k anchors per level, their poses decoded and boxes projected from them."""
        cfg = copy.deepcopy(self.test_cfg if cfg is None else cfg)
        nms_pre = cfg.get('nms_pre', -1)
        score_thr = cfg.get('score_thr', 0)
        dim = self.bbox_coder.encode_size
        mlvl_scores, mlvl_labels, mlvl_poses, mlvl_anchors = [], [], [], []
        for cls_score, pose_pred, anchors in zip(cls_score_list, bbox_pred_list, mlvl_priors):
            pose_pred = pose_pred.permute(1, 2, 0).reshape(-1, dim)
            cls_score = cls_score.permute(1, 2, 0).reshape(-1, self.cls_out_channels)
            scores = cls_score.sigmoid() if self.use_sigmoid_cls \
                else cls_score.softmax(-1)[:, :-1]
            topk = nms_pre if nms_pre > 0 else scores.numel()
            scores, labels, _, kept = filter_scores_and_topk(
                scores, score_thr, topk, dict(pose_pred=pose_pred, anchors=anchors))
            mlvl_scores.append(scores)
            mlvl_labels.append(labels)
            mlvl_poses.append(kept['pose_pred'])
            mlvl_anchors.append(kept['anchors'])

        img_shape = img_meta['img_shape'][:2]
        poses, bboxes = self.bbox_coder.decode(get_box_tensor(cat_boxes(mlvl_anchors)),
                                               torch.cat(mlvl_poses), img_shape)
        results = InstanceData(bboxes=bboxes, scores=torch.cat(mlvl_scores),
                               labels=torch.cat(mlvl_labels), poses=poses)
        return self._bbox_post_process(results, cfg, rescale, with_nms, img_meta)

    def _bbox_post_process(self, results: InstanceData, cfg: ConfigDict,
                           rescale: bool = False, with_nms: bool = True,
                           img_meta: Optional[dict] = None) -> InstanceData:
        """Small boxes out, NMS on the projected boxes, then (``rescale``) boxes and poses
        into the original image, as :meth:`DoFBBoxHead._predict_by_feat_single`."""
        min_size = cfg.get('min_bbox_size', -1)
        if min_size >= 0:
            w, h = get_box_wh(results.bboxes)
            valid = (w > min_size) & (h > min_size)
            if not valid.all():
                results = results[valid]
        return postprocess_detections(results, cfg, img_meta, self.bbox_coder.face_model,
                                      rescale=rescale, with_nms=with_nms)
