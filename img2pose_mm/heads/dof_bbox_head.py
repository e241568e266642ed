"""img2pose's RoI box head: a class branch and a 6DoF pose branch, no box deltas."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.losses import accuracy
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.models.task_modules.samplers import SamplingResult
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, InstanceList
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor, nn

from .detection_postprocess import postprocess_detections
from .pose_losses import pose_losses
from .pose_targets import encode_pose_targets


class SingleSampleSafeBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d that normalises a lone training sample with its running statistics.

    The pose branch only sees positive RoIs during training; an image with a single
    positive would make plain BatchNorm fail ("Expected more than 1 value per channel").
    While a graph is exported, evaluation is the running statistics' affine map written
    out: BatchNorm's kernel asks whether the input is empty, which a graph with a
    data-dependent number of RoIs cannot answer.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] < 2:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                False, 0.0, self.eps)
        if not self.training and torch.compiler.is_exporting():
            scale = self.weight / torch.sqrt(self.running_var + self.eps)
            return x * scale + (self.bias - self.running_mean * scale)
        return super().forward(x)


@MODELS.register_module()
class DoFPredictor(nn.Sequential):
    """The last stage of img2pose's pose branch.

    ``Linear(in, hidden) -> BatchNorm1d -> ReLU -> Linear(hidden, out)``; the layer
    indices (0, 1, 3) are those of the original ``dof_pred``.
    """

    def __init__(self, in_features: int, out_features: int, hidden_channels: int = 256) -> None:
        super().__init__(nn.Linear(in_features, hidden_channels),
                         SingleSampleSafeBatchNorm1d(hidden_channels),
                         nn.ReLU(inplace=True),
                         nn.Linear(hidden_channels, out_features))


@MODELS.register_module()
class DoFBBoxHead(ConvFCBBoxHead):
    """Two parallel MLPs on the same RoI features: classification and 6DoF pose.

    .. code-block:: none

        RoI feature -> cls_fcs (fc6, fc7)  -> fc_cls                 -> class scores
                    \\-> pose_fcs (fc6, fc7) -> fc_pose (DoFPredictor) -> local poses

    ``bbox_coder`` is a :class:`~img2pose_mm.task_modules.PoseBBoxCoder`: the targets are
    normalised proposal-local poses and boxes are derived from the decoded poses. Poses
    are class-specific (6 per foreground class); their targets come from
    ``sampling_results[i].pos_gt_poses`` (:class:`PoseSamplingWrapper`).

    Args:
        num_classes: foreground classes (1 = face).
        fc_out_channels: width of fc6/fc7 in both branches.
        num_pose_fcs: fully connected layers of the pose branch before its predictor.
        pose_predictor_cfg: the pose predictor (img2pose's ``DoFPredictor``).
        loss_dof: squared-error loss on normalised poses.
        loss_points: L1 loss on projected reference points.
        init_cfg: default ``[]`` keeps PyTorch's default initialisation, as the original.
    """

    def __init__(self,
                 num_classes: int = 1,
                 in_channels: int = 256,
                 roi_feat_size: int = 7,
                 fc_out_channels: int = 1024,
                 num_cls_fcs: int = 2,
                 num_pose_fcs: int = 2,
                 bbox_coder: ConfigType = dict(type='PoseBBoxCoder'),
                 pose_predictor_cfg: ConfigType = dict(type='DoFPredictor',
                                                       hidden_channels=256),
                 loss_cls: ConfigType = dict(type='CrossEntropyLoss', use_sigmoid=False,
                                             loss_weight=1.0),
                 loss_dof: ConfigType = dict(type='DoFLoss', loss_weight=1.0),
                 loss_points: ConfigType = dict(type='PosePointsLoss', loss_weight=1.0),
                 init_cfg=(),
                 **kwargs) -> None:
        super().__init__(
            num_shared_convs=0, num_shared_fcs=0, num_cls_convs=0, num_reg_convs=0,
            num_cls_fcs=num_cls_fcs, num_reg_fcs=num_pose_fcs, fc_out_channels=fc_out_channels,
            with_avg_pool=False, with_cls=True, with_reg=True, reg_class_agnostic=False,
            num_classes=num_classes, in_channels=in_channels, roi_feat_size=roi_feat_size,
            bbox_coder=bbox_coder, reg_predictor_cfg=pose_predictor_cfg, loss_cls=loss_cls,
            loss_bbox=loss_dof, init_cfg=list(init_cfg), **kwargs)
        # mmdet's layer code built the pose branch as its box-regression branch; name the
        # layers after what they predict
        self.pose_fcs, self.fc_pose = self.reg_fcs, self.fc_reg
        del self.reg_fcs, self.fc_reg, self.reg_convs, self.loss_bbox
        self.loss_dof = MODELS.build(loss_dof)
        self.loss_points = MODELS.build(loss_points)

    # ------------------------------------------------------------------ forward
    def _mlp(self, x: Tensor, fcs: nn.ModuleList, predictor: nn.Module) -> Tensor:
        x = x.flatten(1)
        for fc in fcs:
            x = self.relu(fc(x))
        return predictor(x)

    def forward_cls(self, x: Tensor) -> Tensor:
        """Class scores ``(N, num_classes + 1)`` of RoI features ``(N, C, 7, 7)``."""
        return self._mlp(x, self.cls_fcs, self.fc_cls)

    def forward_pose(self, x: Tensor) -> Tensor:
        """Normalised local poses ``(N, 6 * num_classes)`` of RoI features."""
        return self._mlp(x, self.pose_fcs, self.fc_pose)

    def forward(self, x: Tensor, pose_inds: Optional[Tensor] = None,
                rcnn_test_cfg: Optional[ConfigDict] = None) -> Tuple[Tensor, Tensor]:
        """Class scores for all RoIs; poses for all RoIs or only for ``x[pose_inds]``.

        With ``rcnn_test_cfg`` (test time) the pose branch runs only on the RoIs whose
        class score can pass its ``score_thr`` (:meth:`rois_with_detections`); the other
        rows of the ``(N, 6 * num_classes)`` poses are zero (never read).
        """
        cls_score = self.forward_cls(x)
        if rcnn_test_cfg is None:
            return cls_score, self.forward_pose(x if pose_inds is None else x[pose_inds])
        pose_inds = self.rois_with_detections(cls_score, rcnn_test_cfg)
        pose_pred = self.forward_pose(x[pose_inds])
        if len(pose_inds) < len(x):
            pose_pred = pose_pred.new_zeros((len(x), pose_pred.shape[1])).index_copy_(
                0, pose_inds, pose_pred)
        return cls_score, pose_pred

    def rois_with_detections(self, cls_score: Tensor,
                             rcnn_test_cfg: Optional[ConfigDict] = None) -> Tensor:
        """Indices of the RoIs whose pose :meth:`predict_by_feat` can read: those with a
        foreground score above ``score_thr`` (less a 1e-6 margin, so that the set
        always covers the detections), or all with ``keep_all_rois``."""
        cfg = rcnn_test_cfg if rcnn_test_cfg is not None else ConfigDict()
        if cfg.get('keep_all_rois', False):
            return torch.arange(cls_score.shape[0], device=cls_score.device)
        scores = F.softmax(cls_score.float(), dim=-1)[:, :-1]
        keep = (scores > cfg.get('score_thr', 0.05) - 1e-6).any(-1)
        return keep.nonzero(as_tuple=True)[0]

    # ------------------------------------------------------------------ training
    def get_targets(self, sampling_results: List[SamplingResult],
                    rcnn_train_cfg: Optional[ConfigDict] = None) -> dict:
        """Class targets of all sampled RoIs and pose targets of the positive ones, all
        images concatenated.

        Every positive's GT pose (``pos_gt_poses``, a :class:`FacePoses` in the frame of
        the network input) is encoded in the RoI's own frame
        (:func:`~img2pose_mm.heads.pose_targets.encode_pose_targets`); GT faces without
        a pose get zero pose weight.
        """
        pos_weight = rcnn_train_cfg.get('pos_weight', -1) if rcnn_train_cfg else -1
        pos_weight = 1.0 if pos_weight <= 0 else float(pos_weight)
        labels, label_weights, pose_targets, pose_weights = [], [], [], []
        for res in sampling_results:
            num_pos, num_neg = res.pos_priors.shape[0], res.neg_priors.shape[0]
            labels.append(torch.cat([res.pos_gt_labels.long(), res.pos_gt_labels.new_full(
                (num_neg, ), self.num_classes, dtype=torch.long)]))
            label_weights.append(torch.cat([res.pos_priors.new_full((num_pos, ), pos_weight),
                                            res.pos_priors.new_ones(num_neg)]))
            targets, weights = encode_pose_targets(self.bbox_coder, res.pos_priors,
                                                   res.pos_gt_poses)
            pose_targets.append(targets)
            pose_weights.append(weights)
        return dict(labels=torch.cat(labels), label_weights=torch.cat(label_weights),
                    pose_targets=torch.cat(pose_targets), pose_weights=torch.cat(pose_weights),
                    pos_priors=torch.cat([res.pos_priors for res in sampling_results]),
                    pos_labels=torch.cat([res.pos_gt_labels.long() for res in sampling_results]))

    def loss_and_target(self, cls_score: Tensor, bbox_pred: Tensor, rois: Tensor,
                        sampling_results: List[SamplingResult],
                        rcnn_train_cfg: ConfigDict, concat: bool = True,
                        reduction_override: Optional[str] = None) -> dict:
        """Losses of a batch plus the targets they used (mmdet's interface).

        Args:
            cls_score: ``(num_sampled, num_classes + 1)`` for all sampled RoIs.
            bbox_pred: the poses ``(num_pos, 6 * num_classes)`` of the positive RoIs only,
                in the order of ``sampling_results`` (each image's positives first).
            concat: ignored, kept for mmdet's signature: the targets of all images are
                always concatenated (as ``bbox_pred`` is).
        """
        targets = self.get_targets(sampling_results, rcnn_train_cfg)
        return dict(loss_bbox=self.loss(cls_score, bbox_pred, **targets), bbox_targets=targets)

    def loss(self, cls_score: Tensor, pose_pred: Tensor, labels: Tensor, label_weights: Tensor,
             pose_targets: Tensor, pose_weights: Tensor, pos_priors: Tensor,
             pos_labels: Tensor) -> dict:
        """``loss_cls`` over all sampled RoIs; ``loss_dof``/``loss_points`` over positives."""
        losses = dict()
        avg_factor = max(float((label_weights > 0).sum()), 1.0)
        losses['loss_cls'] = self.loss_cls(cls_score, labels, label_weights,
                                           avg_factor=avg_factor)
        losses['acc'] = accuracy(cls_score, labels)
        # no positives: the (0, 6 * num_classes) predictions themselves give the zero losses
        pred = self._select_class(pose_pred, pos_labels) if len(pose_pred) else pose_pred
        losses.update(pose_losses(self.loss_dof, self.loss_points, self.bbox_coder, pred,
                                  pose_targets, pose_weights, pos_priors))
        return losses

    def _select_class(self, pose_pred: Tensor, labels: Tensor) -> Tensor:
        """The 6 pose numbers of class ``labels`` of each row."""
        pred = pose_pred.view(pose_pred.shape[0], self.num_classes, -1)
        return pred[torch.arange(pred.shape[0], device=pred.device), labels]

    # ------------------------------------------------------------------ cascades
    def regress_by_class(self, priors: Tensor, label: Tensor, bbox_pred: Tensor,
                         img_meta: dict) -> Tensor:
        """Boxes projected from the poses of class ``label`` (the next cascade stage's RoIs)."""
        return self.bbox_coder.decode(priors, self._select_class(bbox_pred, label),
                                      img_meta['img_shape'][:2])[1]

    def refine_bboxes(self, sampling_results: List[SamplingResult], bbox_results: dict,
                      batch_img_metas: List[dict]) -> InstanceList:
        """Training-time RoIs of the next cascade stage.

        Positive RoIs move to the boxes projected from their (detached) predicted
        poses; negatives, which have no pose, keep their boxes; GT boxes added as
        proposals are dropped, as in mmdet's cascade.
        """
        pose_pred = bbox_results['bbox_pred'].detach()
        pose_preds = pose_pred.split([len(res.pos_priors) for res in sampling_results])
        results_list = []
        for res, pred, meta in zip(sampling_results, pose_preds, batch_img_metas):
            pos_boxes = self.regress_by_class(res.pos_priors, res.pos_gt_labels.long(), pred, meta)
            keep = ~res.pos_is_gt.bool()
            bboxes = torch.cat([pos_boxes[keep].to(res.neg_priors), res.neg_priors])
            results_list.append(InstanceData(bboxes=bboxes))
        return results_list

    # ------------------------------------------------------------------ testing
    def predict_by_feat(self, rois: Sequence[Tensor], cls_scores: Sequence[Tensor],
                        bbox_preds: Sequence[Tensor], batch_img_metas: List[dict],
                        rcnn_test_cfg: Optional[ConfigDict] = None,
                        rescale: bool = False) -> InstanceList:
        """Per image: scores, pose decode, boxes from poses, NMS on those boxes."""
        return [self._predict_by_feat_single(roi, cls, pose, meta, rescale, rcnn_test_cfg)
                for roi, cls, pose, meta in zip(rois, cls_scores, bbox_preds, batch_img_metas)]

    def _predict_by_feat_single(self, roi: Tensor, cls_score: Tensor, bbox_pred: Tensor,
                                img_meta: dict, rescale: bool = False,
                                rcnn_test_cfg: Optional[ConfigDict] = None) -> InstanceData:
        """img2pose's post-processing for one image.

        Proposals are clipped to the image; class scores above ``score_thr`` and
        proposals larger than ``min_bbox_size`` survive; their poses are decoded and the
        projected boxes become the detections; then :func:`postprocess_detections`.

        ``rcnn_test_cfg.keep_all_rois=True`` gives one detection per RoI instead, in RoI
        order (its best class, no score or size filter, no NMS, no cap): the poses of
        given boxes (:meth:`DoFRoIHead.predict_for_boxes`).
        """
        cfg = rcnn_test_cfg if rcnn_test_cfg is not None else ConfigDict()
        score_thr = cfg.get('score_thr', 0.05)
        min_size = cfg.get('min_bbox_size', 1e-2)
        keep_all = bool(cfg.get('keep_all_rois', False))
        img_shape = img_meta['img_shape'][:2]
        # decode in float32 even when the network ran under autocast
        roi, cls_score, bbox_pred = roi.float(), cls_score.float(), bbox_pred.float()

        boxes = roi[:, 1:].clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, img_shape[1])
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, img_shape[0])
        scores = F.softmax(cls_score, dim=-1)[:, :-1]
        poses = bbox_pred.view(bbox_pred.shape[0], self.num_classes, -1)

        if keep_all:
            scores, labels = scores.max(-1)
            roi_inds = torch.arange(len(boxes), device=boxes.device)
        else:
            wh = boxes[:, 2:] - boxes[:, :2]
            keep = (scores > score_thr) & (wh >= min_size).all(-1, keepdim=True)
            roi_inds, labels = keep.nonzero(as_tuple=True)
            scores = scores[roi_inds, labels]
        global_poses, det_boxes = self.bbox_coder.decode(
            boxes[roi_inds], poses[roi_inds, labels], img_shape)

        results = InstanceData(bboxes=det_boxes, scores=scores, labels=labels,
                               poses=global_poses)
        return postprocess_detections(results, cfg, img_meta, self.bbox_coder.face_model,
                                      rescale=rescale, with_nms=not keep_all)
