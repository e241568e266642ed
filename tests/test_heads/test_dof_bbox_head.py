"""DoFBBoxHead on its own: branches, targets from sampling results, decoding."""
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS, TASK_UTILS
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import img2pose_mm  # noqa: F401
from img2pose_mm.heads.pose_targets import PoseSamplingWrapper
from img2pose_mm.structures import FaceModel, FacePoses

from ..pose_reference import box_local_pose, project

SHAPE = (200, 260)
GT_POSES = torch.tensor([[0.1, -0.2, 0.05, -0.4, 0.1, 6.0],
                         [-0.2, 0.3, 0.0, 0.5, -0.2, 7.0],
                         [0.0, 0.1, 0.1, 0.1, 0.4, 8.0]], dtype=torch.float64)


def small_head(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='DoFBBoxHead', in_channels=4, roi_feat_size=2, fc_out_channels=8,
               pose_predictor_cfg=dict(type='DoFPredictor', hidden_channels=5), **kwargs)
    return MODELS.build(cfg)


def sampling_results(valid=(True, False, True)):
    face = FaceModel()
    gt = InstanceData(bboxes=face.pose_to_bbox(GT_POSES, SHAPE).float(),
                      labels=torch.zeros(3, dtype=torch.long),
                      poses=FacePoses(GT_POSES.float(), torch.tensor(valid), SHAPE))
    rng = np.random.default_rng(0)
    jitter = torch.from_numpy(rng.uniform(-3, 3, (3, 6, 4))).float()
    priors = (gt.bboxes[:, None] + jitter).reshape(-1, 4)
    priors = torch.cat([priors, torch.tensor([[0., 0., 20., 20.], [230., 170., 259., 199.]])])
    assigner = TASK_UTILS.build(dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5))
    sampler = PoseSamplingWrapper(TASK_UTILS.build(dict(
        type='RandomSampler', num=32, pos_fraction=0.5, add_gt_as_proposals=False)))
    proposals = InstanceData(priors=priors)
    result = sampler.sample(assigner.assign(proposals, gt), proposals, gt)
    return [result], gt


def test_forward_runs_the_pose_branch_on_the_selected_rois():
    head = small_head()
    feats = torch.randn(7, 4, 2, 2)
    cls, poses = head(feats)
    assert cls.shape == (7, 2) and poses.shape == (7, 6)
    mask = torch.tensor([True, False, True, False, False, False, True])
    cls2, poses2 = head.eval()(feats, mask)
    torch.testing.assert_close(cls2, head(feats)[0])
    torch.testing.assert_close(poses2, head(feats)[1][mask])
    # the pose layers are named for what they predict
    names = {n.split('.')[0] for n, _ in head.named_parameters()}
    assert {'cls_fcs', 'fc_cls', 'pose_fcs', 'fc_pose'} <= names
    assert not {'reg_fcs', 'fc_reg'} & names


def test_targets_come_from_the_sampling_results():
    head = small_head(bbox_coder=dict(type='PoseBBoxCoder', pose_mean=[0, 0, 0, 0, 0, 6.0],
                                      pose_stddev=[0.5] * 6))
    results, gt = sampling_results()
    res = results[0]
    targets = head.get_targets(results, ConfigDict(pos_weight=-1))
    num_pos = len(res.pos_priors)
    assert num_pos > 0 and targets['labels'].tolist() == [0] * num_pos + [1] * len(res.neg_priors)
    gt_idx = res.pos_assigned_gt_inds
    # the face without a pose (index 1) gets no pose weight
    assert targets['pose_weights'].tolist() == (gt_idx != 1).float().tolist()
    keep = gt_idx != 1
    # each positive's GT pose local to its RoI (by hand: numpy + scipy), normalised by
    # the coder's statistics (mean 0, 0, 0, 0, 0, 6; stddev 0.5)
    local = np.stack([box_local_pose(GT_POSES[i].numpy(), prior.double().numpy(), SHAPE)
                      for i, prior in zip(gt_idx[keep].tolist(), res.pos_priors[keep])])
    expected = (local - np.array([0, 0, 0, 0, 0, 6.0])) / 0.5
    np.testing.assert_allclose(targets['pose_targets'][keep].numpy(), expected, rtol=1e-4,
                               atol=1e-4)
    # perfect predictions: no pose loss
    cls = torch.zeros(len(targets['labels']), 2)
    losses = head.loss(cls, targets['pose_targets'].clone(), **targets)
    assert float(losses['loss_dof']) == pytest.approx(0.0, abs=1e-6)
    assert float(losses['loss_points']) == pytest.approx(0.0, abs=1e-5)


def test_sampler_needs_face_poses():
    results, gt = sampling_results()
    gt.poses = gt.poses.tensor
    sampler = PoseSamplingWrapper(TASK_UTILS.build(dict(type='RandomSampler', num=8,
                                                        pos_fraction=0.5)))
    assigner = TASK_UTILS.build(dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5))
    proposals = InstanceData(priors=gt.bboxes.clone())
    with pytest.raises(TypeError, match='FacePoses'):
        sampler.sample(assigner.assign(proposals, gt), proposals, gt)


def test_predict_decodes_projects_and_suppresses():
    head = small_head().eval()
    face = head.bbox_coder.face_model
    gt_box = face.pose_to_bbox(GT_POSES[:1], SHAPE)
    rois = torch.cat([torch.zeros(4, 1), gt_box.float() + torch.tensor(
        [[0., 0, 0, 0], [2, 1, -1, 3], [-3, 2, 1, 0], [1, -2, 2, 1]])], 1)
    preds = head.bbox_coder.encode(rois[:, 1:].double(), GT_POSES[:1].expand(4, 6), SHAPE)
    cls = torch.tensor([[3.0, 0.0], [2.0, 0.0], [-3.0, 3.0], [1.0, 0.0]])
    meta = dict(img_shape=SHAPE, ori_shape=(100, 130), scale_factor=(2.0, 2.0))
    out, = head.predict_by_feat([rois], [cls], [preds.float()], [meta],
                                ConfigDict(score_thr=0.05, nms=dict(type='nms',
                                                                    iou_threshold=0.5)))
    # four proposals, one below the score threshold, all decoding to the same face: one
    # detection, the best-scoring one, whose box is its pose's projected box
    assert len(out) == 1 and out.scores[0] == pytest.approx(float(torch.softmax(cls[0], 0)[0]))
    torch.testing.assert_close(out.poses.double(), GT_POSES[:1], rtol=0, atol=1e-4)
    torch.testing.assert_close(out.bboxes, face.pose_to_bbox(out.poses, SHAPE))
    rescaled, = head.predict_by_feat([rois], [cls], [preds.float()], [meta], None, rescale=True)
    # the network input is the original (100 x 130) resized by 2: the original's camera
    # (focal 230, centre (65, 50)) is the input's (460, (130, 100)) halved, so the face
    # keeps its 3D pose and every projected point its pixel halved
    torch.testing.assert_close(rescaled.poses, out.poses, rtol=0, atol=1e-6)
    points = face.points_68.double().numpy()
    np.testing.assert_allclose(project(points, rescaled.poses[0].double().numpy(), (100, 130)),
                               project(points, out.poses[0].double().numpy(), SHAPE) / 2,
                               atol=1e-4)
    torch.testing.assert_close(rescaled.bboxes, out.bboxes / 2)


def _iou(a, b):
    """IoU of two boxes by hand (continuous coordinates)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


@pytest.mark.parametrize('head_kind', ['two_stage', 'shared_postprocess'])
def test_soft_nms_rescoring_reaches_the_heads_scores(head_kind):
    """Linear soft-NMS keeps an overlapping face with its score times ``1 - IoU``
    (IoU above the threshold): the two-stage head used to keep the raw score."""
    from img2pose_mm.heads import postprocess_detections
    face = FaceModel()
    poses = torch.tensor([[0.0, 0.1, 0.0, 0.0, 0.0, 6.0],
                          [0.0, 0.1, 0.0, 0.08, 0.0, 6.0]], dtype=torch.float64)
    boxes = face.pose_to_bbox(poses, SHAPE).float()
    scores = torch.tensor([0.9, 0.8])
    iou = _iou(boxes[0].tolist(), boxes[1].tolist())
    assert 0.3 < iou < 0.95                         # overlapping, not identical
    cfg = ConfigDict(score_thr=0.05, nms=dict(type='soft_nms', iou_threshold=0.3,
                                              method='linear', min_score=0.01))
    meta = dict(img_shape=SHAPE, ori_shape=SHAPE, scale_factor=(1.0, 1.0))
    if head_kind == 'two_stage':
        head = small_head().eval()
        rois = torch.cat([torch.zeros(2, 1), boxes], 1)
        preds = head.bbox_coder.encode(boxes.double(), poses, SHAPE).float()
        logits = torch.log(torch.stack([scores, 1 - scores], 1))
        out, = head.predict_by_feat([rois], [logits], [preds], [meta], cfg)
    else:
        out = postprocess_detections(
            InstanceData(bboxes=boxes, scores=scores, labels=torch.zeros(2, dtype=torch.long),
                         poses=poses.float()), cfg, meta, face)
    assert len(out) == 2
    expected = sorted([0.9, 0.8 * (1 - iou)], reverse=True)
    np.testing.assert_allclose(out.scores.numpy(), expected, rtol=1e-4)
