"""DoFRetinaHead: anchor targets through the pose coder, losses, decoding and NMS."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import img2pose_mm  # noqa: F401
from img2pose_mm.heads.pose_targets import PoseSamplingWrapper
from img2pose_mm.structures import FaceModel, FacePoses, global_to_local

SHAPE = (200, 260)
# three faces 60-80 px wide that hardly overlap
GT_POSES = torch.tensor([[0.1, -0.2, 0.05, -1.6, -0.5, 12.0],
                         [-0.2, 0.3, 0.0, 1.5, -0.6, 14.0],
                         [0.0, 0.1, 0.1, 0.1, 1.0, 16.0]], dtype=torch.float64)
MEAN = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 14.0], dtype=torch.float64)
STD = torch.tensor([0.3, 0.4, 0.2, 0.5, 0.5, 1.5], dtype=torch.float64)
TRAIN_CFG = dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
                               min_pos_iou=0, ignore_iof_thr=0.5),
                 sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1)
TEST_CFG = dict(nms_pre=50, score_thr=0.05, min_bbox_size=0,
                nms=dict(type='nms', iou_threshold=0.5), max_per_img=-1)


def small_head(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type='DoFRetinaHead', num_classes=1, in_channels=8, feat_channels=8,
               stacked_convs=1,
               anchor_generator=dict(type='AnchorGenerator', octave_base_scale=2,
                                     scales_per_octave=2, ratios=[1.4], strides=[8, 16, 32]),
               bbox_coder=dict(type='PoseBBoxCoder', pose_mean=MEAN.tolist(),
                               pose_stddev=STD.tolist()),
               train_cfg=TRAIN_CFG, test_cfg=TEST_CFG)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def gt_faces(valid=(True, False, True), dtype=torch.float64):
    face = FaceModel()
    return InstanceData(bboxes=face.pose_to_bbox(GT_POSES, SHAPE).to(dtype),
                        labels=torch.zeros(3, dtype=torch.long),
                        poses=FacePoses(GT_POSES.to(dtype), torch.tensor(valid), SHAPE))


def normalised_local(poses, boxes):
    """The target by its definition (docs/reference.md §3): GT pose local to the box,
    normalised with the statistics; computed without the head or the coder."""
    return (global_to_local(poses, boxes, SHAPE) - MEAN) / STD


def test_pose_branch_replaces_the_box_branch():
    head = small_head()
    names = {n.split('.')[0] for n, _ in head.named_parameters()}
    assert {'cls_convs', 'retina_cls', 'pose_convs', 'retina_pose'} <= names
    assert not {'reg_convs', 'retina_reg'} & names
    assert isinstance(head.sampler, PoseSamplingWrapper)
    # the coder is a submodule: its face and statistics are saved with the weights
    assert {'bbox_coder.pose_mean', 'bbox_coder.face_model.points_68'} <= set(head.state_dict())
    scores, poses = head(tuple(torch.randn(2, 8, 64 // s, 64 // s) for s in (8, 16, 32)))
    assert [p.shape for p in poses] == [(2, 2 * 6, 64 // s, 64 // s) for s in (8, 16, 32)]
    assert [s.shape[1] for s in scores] == [2, 2, 2]


def test_targets_of_hand_made_anchors_are_the_encoded_gt_poses():
    head = small_head()
    gt = gt_faces()
    # three jittered copies of every GT box (positives of that face), two anchors far
    # from any face (negatives) and one overlapping a face a little (IoU < 0.4: negative)
    jitter = torch.tensor([[0., 0., 0., 0.], [2., -1., 1., 2.], [-2., 1., -1., -2.]],
                          dtype=torch.float64)
    near = (gt.bboxes[:, None] + jitter).reshape(-1, 4)
    far = torch.tensor([[0., 0., 6., 6.], [250., 190., 259., 199.]], dtype=torch.float64)
    box = gt.bboxes[0]
    shifted = (box - torch.stack([box[2] - box[0], box.new_zeros(())]).repeat(2) * 0.7)[None]
    anchors = torch.cat([near, far, shifted])
    owner = torch.arange(3).repeat_interleave(3)

    labels, label_weights, targets, weights, pos_inds, neg_inds, _ = head._get_targets_single(
        anchors, torch.ones(len(anchors), dtype=torch.bool), gt, dict(img_shape=SHAPE))

    assert pos_inds.tolist() == list(range(9)) and sorted(neg_inds.tolist()) == [9, 10, 11]
    assert labels.tolist() == [0] * 9 + [1] * 3 and label_weights.tolist() == [1.0] * 12
    # faces without a pose (face 1) and negatives get no pose weight
    assert weights.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    has_pose = weights > 0
    expected = normalised_local(GT_POSES[owner], near)
    # (the coder keeps its statistics in float32)
    torch.testing.assert_close(targets[:9][has_pose[:9]], expected[has_pose[:9]],
                               rtol=0, atol=1e-6)
    assert torch.isfinite(targets).all() and (targets[9:] == 0).all()

    # decoding the targets gives the GT poses back, and boxes projected from them
    poses, boxes = head.bbox_coder.decode(near[has_pose[:9]], targets[:9][has_pose[:9]], SHAPE)
    torch.testing.assert_close(poses, GT_POSES[owner][has_pose[:9]], rtol=0, atol=1e-5)
    torch.testing.assert_close(boxes, gt.bboxes[owner][has_pose[:9]])


def test_ignored_faces_and_empty_images():
    head = small_head()
    gt = gt_faces()
    anchors = torch.cat([gt.bboxes, torch.tensor([[0., 0., 6., 6.]], dtype=torch.float64)])
    flags = torch.ones(4, dtype=torch.bool)
    ignored = InstanceData(bboxes=gt.bboxes[2:])
    labels, label_weights, *_ = head._get_targets_single(
        anchors, flags, gt[:2], dict(img_shape=SHAPE), ignored)
    # the anchor on the ignored face is neither positive nor negative
    assert labels.tolist() == [0, 0, 1, 1] and label_weights.tolist() == [1, 1, 0, 1]
    labels, label_weights, targets, weights, *_ = head._get_targets_single(
        anchors, flags, gt[:0], dict(img_shape=SHAPE))
    assert labels.tolist() == [1] * 4 and weights.sum() == 0


def pose_maps(head, targets_per_level, feat_sizes, num_imgs):
    """Per-level ``(N, A * 6, H, W)`` maps holding ``targets`` ``(N, H * W * A, 6)``: the
    inverse of the head's layout (position-major, anchors of a position together)."""
    num_anchors = head.num_base_priors
    return [t.reshape(num_imgs, h, w, num_anchors * 6).permute(0, 3, 1, 2)
            for t, (h, w) in zip(targets_per_level, feat_sizes)]


def test_perfect_poses_give_zero_pose_losses():
    head = small_head()
    feat_sizes = [(25, 33), (13, 17), (7, 9)]
    meta = dict(img_shape=SHAPE, pad_shape=(200, 264), batch_input_shape=(200, 264))
    gts = [gt_faces(dtype=torch.float32), gt_faces((True, True, True), torch.float32)[1:]]
    anchors, flags = head.get_anchors(feat_sizes, [meta, meta], device='cpu')
    _, _, targets, weights, _ = head.get_targets(anchors, flags, gts, [meta, meta])
    cls_scores = [torch.zeros(2, head.num_base_priors, h, w) for h, w in feat_sizes]
    perfect = pose_maps(head, targets, feat_sizes, 2)
    losses = head.loss_by_feat(cls_scores, perfect, gts, [meta, meta])
    assert float(losses['loss_dof']) == pytest.approx(0.0, abs=1e-6)
    assert float(losses['loss_points']) == pytest.approx(0.0, abs=1e-4)
    assert float(losses['loss_cls']) > 0

    # moving one coordinate of every positive by 0.5 costs exactly 0.25 in loss_dof
    shifted = [t.clone() for t in targets]
    for t, w in zip(shifted, weights):
        t[..., 5] += 0.5 * (w > 0)
    losses = head.loss_by_feat(cls_scores, pose_maps(head, shifted, feat_sizes, 2), gts,
                               [meta, meta])
    assert float(losses['loss_dof']) == pytest.approx(0.25, rel=1e-5)
    assert float(losses['loss_points']) > 0


def test_no_pose_at_all_gives_zero_but_connected_pose_losses():
    head = small_head()
    feat_sizes = [(25, 33), (13, 17), (7, 9)]
    meta = dict(img_shape=SHAPE, pad_shape=(200, 264), batch_input_shape=(200, 264))
    feats = tuple(torch.randn(1, 8, h, w) for h, w in feat_sizes)
    scores, poses = head(feats)
    losses = head.loss_by_feat(scores, poses, [gt_faces((False, False, False), torch.float32)],
                               [meta])
    assert float(losses['loss_dof'].detach()) == 0 and float(losses['loss_points'].detach()) == 0
    sum(losses.values()).backward()
    assert head.retina_pose.weight.grad is not None


def test_predict_decodes_projects_and_suppresses():
    head = small_head().eval()
    face = head.bbox_coder.face_model
    feat_sizes = [(25, 33), (13, 17), (7, 9)]
    anchors = head.prior_generator.grid_priors(feat_sizes, device='cpu')
    gt_box = face.pose_to_bbox(GT_POSES[:1], SHAPE).float()
    # the three anchors of level 0 closest to the face all predict its pose
    level0 = anchors[0]
    dist = (level0 - gt_box).abs().sum(-1)
    chosen = dist.argsort()[:3]
    scores = torch.full((1, 25 * 33 * 2), -10.0)
    scores[0, chosen] = torch.tensor([3.0, 2.0, 1.0])
    poses = torch.zeros(1, 25 * 33 * 2, 6)
    poses[0, chosen] = head.bbox_coder.encode(level0[chosen].double(),
                                              GT_POSES[:1].expand(3, 6), SHAPE).float()
    cls_maps = [scores.reshape(1, 25, 33, 2).permute(0, 3, 1, 2)] + [
        torch.full((1, 2, h, w), -10.0) for h, w in feat_sizes[1:]]
    pose_maps_ = [poses.reshape(1, 25, 33, 12).permute(0, 3, 1, 2)] + [
        torch.zeros(1, 12, h, w) for h, w in feat_sizes[1:]]
    meta = dict(img_shape=SHAPE, ori_shape=(100, 130), scale_factor=(2.0, 2.0))

    out, = head.predict_by_feat(cls_maps, pose_maps_, batch_img_metas=[meta])
    # one face: the best-scoring anchor, its pose, and the box projected from that pose
    assert len(out) == 1 and out.scores[0] == pytest.approx(float(torch.sigmoid(torch.tensor(3.))))
    torch.testing.assert_close(out.poses.double(), GT_POSES[:1], rtol=0, atol=1e-4)
    torch.testing.assert_close(out.bboxes, face.pose_to_bbox(out.poses, SHAPE))
    assert set(out.keys()) == {'bboxes', 'scores', 'labels', 'poses'}

    rescaled, = head.predict_by_feat(cls_maps, pose_maps_, batch_img_metas=[meta], rescale=True)
    expected = FacePoses(out.poses, img_shape=SHAPE).rescale_((0.5, 0.5), (100, 130))
    torch.testing.assert_close(rescaled.poses, expected.tensor)
    torch.testing.assert_close(rescaled.bboxes, out.bboxes / 2)

    # without NMS the three anchors stay; a score threshold above all leaves nothing
    raw, = head.predict_by_feat(cls_maps, pose_maps_, batch_img_metas=[meta], with_nms=False)
    assert len(raw) == 3
    none, = head.predict_by_feat(cls_maps, pose_maps_, batch_img_metas=[meta],
                                 cfg=ConfigDict(TEST_CFG, score_thr=0.99))
    assert len(none) == 0 and none.poses.shape == (0, 6)


def test_pose_voting_averages_the_suppressed_anchors_poses():
    """test_cfg.pose_voting: the kept face takes the score x IoU weighted mean pose of
    its cluster (scipy's rotation mean and torchvision's IoU as oracles)."""
    from scipy.spatial.transform import Rotation
    from torchvision.ops import box_iou

    head = small_head().eval()
    face = head.bbox_coder.face_model
    feat_sizes = [(25, 33), (13, 17), (7, 9)]
    anchors = head.prior_generator.grid_priors(feat_sizes, device='cpu')[0]
    gt_box = face.pose_to_bbox(GT_POSES[:1], SHAPE).float()
    chosen = (anchors - gt_box).abs().sum(-1).argsort()[:3]
    # three anchors see the face with slightly different poses
    noisy = GT_POSES[:1].repeat(3, 1)
    noisy[:, :3] += torch.tensor([[0.0, 0.0, 0.0], [0.08, -0.05, 0.02], [-0.04, 0.06, -0.03]])
    noisy[:, 3:] += torch.tensor([[0.0, 0.0, 0.0], [0.2, -0.1, 0.5], [-0.1, 0.15, -0.4]])
    scores = torch.full((1, 25 * 33 * 2), -10.0)
    scores[0, chosen] = torch.tensor([3.0, 2.0, 1.0])
    poses = torch.zeros(1, 25 * 33 * 2, 6)
    poses[0, chosen] = head.bbox_coder.encode(anchors[chosen].double(), noisy, SHAPE).float()
    cls_maps = [scores.reshape(1, 25, 33, 2).permute(0, 3, 1, 2)] + [
        torch.full((1, 2, h, w), -10.0) for h, w in feat_sizes[1:]]
    pose_maps_ = [poses.reshape(1, 25, 33, 12).permute(0, 3, 1, 2)] + [
        torch.zeros(1, 12, h, w) for h, w in feat_sizes[1:]]
    meta = dict(img_shape=SHAPE)

    raw, = head.predict_by_feat(cls_maps, pose_maps_, batch_img_metas=[meta], with_nms=False)
    order = raw.scores.argsort(descending=True)
    raw = raw[order]
    iou = box_iou(raw.bboxes[:1].double(), raw.bboxes.double())[0]
    assert (iou > 0.5).all()                   # one cluster
    weights = (raw.scores.double() / raw.scores[0].double()) * iou
    expected_t = (weights[:, None] * raw.poses[:, 3:].double()).sum(0) / weights.sum()
    expected_r = Rotation.from_rotvec(raw.poses[:, :3].double().numpy()).mean(
        weights.numpy()).as_rotvec()

    cfg = ConfigDict(TEST_CFG, pose_voting=dict(iou_thr=0.5))
    out, = head.predict_by_feat(cls_maps, pose_maps_, batch_img_metas=[meta], cfg=cfg)
    assert len(out) == 1 and out.scores[0] == raw.scores[0]
    torch.testing.assert_close(out.poses[0, 3:].double(), expected_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.poses[0, :3].double(), torch.from_numpy(expected_r),
                               rtol=0, atol=1e-5)
    torch.testing.assert_close(out.bboxes, face.pose_to_bbox(out.poses, SHAPE))
    # the vote moved the pose away from the kept anchor's own
    assert (out.poses[0] - raw.poses[0]).abs().max() > 1e-2
