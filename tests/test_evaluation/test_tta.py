"""Test-time augmentation: un-flipping, pose-carrying box voting, the TTA config."""
import math
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS, TRANSFORMS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from torch import nn

from img2pose_mm.structures import flip_pose, rotation_angle_between
from img2pose_mm.test_time_augs import PoseDetTTAModel, pose_box_voting, unflip_predictions

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TTA_CONFIG = osp.join(REPO, 'configs', 'img2pose_r18_wider_tta.py')

H, W = 300, 401          # odd width: flip_pose's tx shift matters


class _NoModel(nn.Module):
    """Stands in for a detector: the merge never calls it."""

    def test_step(self, data):
        raise AssertionError('not called in these tests')


def known_predictions(rng, n=4):
    x1 = rng.uniform(0, W - 80, n)
    y1 = rng.uniform(0, H - 80, n)
    boxes = np.stack([x1, y1, x1 + rng.uniform(20, 70, n), y1 + rng.uniform(20, 70, n)], 1)
    rot = rng.uniform(-0.6, 0.6, (n, 3))
    trans = np.concatenate([rng.uniform(-1, 1, (n, 2)), rng.uniform(4, 10, (n, 1))], 1)
    poses = np.concatenate([rot, trans], 1)
    scores = rng.uniform(0.3, 1.0, n)
    return (torch.tensor(boxes, dtype=torch.float64), torch.tensor(scores, dtype=torch.float64),
            torch.tensor(poses, dtype=torch.float64))


def view(boxes, scores, poses, flip):
    ds = DetDataSample(metainfo=dict(img_path='x.jpg', ori_shape=(H, W), img_shape=(H, W),
                                     flip=flip, flip_direction='horizontal' if flip else None))
    ds.pred_instances = InstanceData(bboxes=boxes, scores=scores, poses=poses,
                                     labels=torch.zeros(len(scores), dtype=torch.long))
    return ds


# ----------------------------------------------------------------------------- un-flip
def test_flipped_predictions_unflip_to_the_direct_ones(rng):
    boxes, scores, poses = known_predictions(rng)
    x1, y1, x2, y2 = boxes.unbind(-1)
    flipped_boxes = torch.stack([W - x2, y1, W - x1, y2], -1)
    flipped_poses = flip_pose(poses, (H, W))
    b, p = unflip_predictions(flipped_boxes, flipped_poses,
                              dict(flip=True, flip_direction='horizontal', ori_shape=(H, W)))
    torch.testing.assert_close(b, boxes)
    torch.testing.assert_close(p, poses)
    # the TTA model merges a direct and a flipped view back into the direct predictions
    tta = PoseDetTTAModel(module=_NoModel(), tta_cfg=dict(score_mode='max'))
    merged, = tta.merge_preds([[view(flipped_boxes, scores, flipped_poses, True),
                                view(boxes, scores, poses, False)]])
    order = torch.argsort(scores, descending=True)
    pred = merged.pred_instances
    torch.testing.assert_close(pred.bboxes, boxes[order])
    torch.testing.assert_close(pred.scores, scores[order])
    torch.testing.assert_close(pred.poses[:, 3:], poses[order, 3:])
    assert rotation_angle_between(pred.poses[:, :3], poses[order, :3]).max() < 1e-6
    assert merged.metainfo['flip'] is False          # reported on the direct view
    with pytest.raises(ValueError, match='horizontal flips only'):
        unflip_predictions(boxes, poses, dict(flip=True, flip_direction='vertical',
                                              ori_shape=(H, W)))


# ----------------------------------------------------------------------------- voting
def test_voting_identical_boxes_returns_them(rng):
    boxes, scores, poses = known_predictions(rng, 3)
    rep = pose_box_voting(boxes.repeat(3, 1), scores.repeat(3), poses.repeat(3, 1))
    order = torch.argsort(scores, descending=True)
    torch.testing.assert_close(rep.bboxes, boxes[order])
    torch.testing.assert_close(rep.poses[:, 3:], poses[order, 3:])
    assert rotation_angle_between(rep.poses[:, :3], poses[order, :3]).max() < 1e-6
    torch.testing.assert_close(rep.scores, 3 * scores[order])     # 'vote': sum of scores
    assert rep.num_votes.tolist() == [3, 3, 3]
    single = pose_box_voting(boxes, scores, poses, score_mode='max')
    torch.testing.assert_close(single.scores, scores[order])


def test_voting_score_weighted_case_by_hand():
    boxes = torch.tensor([[0., 0, 10, 10], [1, 0, 11, 10], [100, 100, 120, 120]])
    scores = torch.tensor([0.8, 0.4, 0.3])
    poses = torch.tensor([[0., 0.2, 0, 0.1, 0.0, 5.0],
                          [0., 0.4, 0, 0.4, 0.3, 6.0],
                          [0.1, 0., 0, 0.0, 0.0, 9.0]], dtype=torch.float64)
    res = pose_box_voting(boxes, scores, poses, iou_thr=0.6)
    # IoU (inclusive pixels): inter 10 x 11 = 110, union 121 + 121 - 110 = 132
    iou = 110 / 132
    w = torch.tensor([1.0, 0.4 / 0.8 * iou])
    assert res.bboxes.shape == (2, 4) and res.num_votes.tolist() == [2, 1]
    expected_box = (w[:, None] * boxes[:2].double()).sum(0) / w.sum()
    torch.testing.assert_close(res.bboxes[0].double(), expected_box, atol=1e-5, rtol=0)
    assert res.scores[0].item() == pytest.approx(0.8 * 1.0 + 0.4 * w[1].item(), abs=1e-6)
    torch.testing.assert_close(res.poses[0, 3:], (w[:, None] * poses[:2, 3:]).sum(0) / w.sum())
    # rotations about one axis: the quaternion mean's angle is atan2 of the weighted
    # sine and cosine sums of the angles
    angle = math.atan2(w[0] * math.sin(0.2) + w[1] * math.sin(0.4),
                       w[0] * math.cos(0.2) + w[1] * math.cos(0.4))
    torch.testing.assert_close(res.poses[0, :3], torch.tensor([0.0, angle, 0.0],
                                                              dtype=torch.float64))
    # the isolated box stays as it is
    torch.testing.assert_close(res.bboxes[1], boxes[2])
    torch.testing.assert_close(res.poses[1], poses[2])


def test_voting_keeps_classes_apart_and_handles_empty():
    boxes = torch.tensor([[0., 0, 10, 10], [0, 0, 10, 10]])
    res = pose_box_voting(boxes, torch.tensor([0.9, 0.8]), labels=torch.tensor([0, 1]))
    assert len(res.bboxes) == 2 and sorted(res.labels.tolist()) == [0, 1]
    assert res.poses is None
    empty = pose_box_voting(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, 6))
    assert empty.bboxes.shape == (0, 4) and empty.poses.shape == (0, 6)


def test_voting_matches_greedy_clustering(rng):
    """The vectorised leaders/assignment equal the sequential greedy clustering."""
    centres = rng.uniform(0, 300, (15, 2))
    idx = rng.integers(0, 15, 200)
    xy = centres[idx] + rng.normal(0, 4, (200, 2))
    size = rng.uniform(20, 40, (15, 2))[idx] + rng.normal(0, 2, (200, 2))
    boxes = torch.tensor(np.concatenate([xy, xy + size], 1)).round()
    scores = torch.tensor(rng.uniform(0.05, 1, 200))
    res = pose_box_voting(boxes, scores, iou_thr=0.6)
    # greedy reference: repeatedly take the best remaining box and its overlaps
    left = list(torch.argsort(scores, descending=True).tolist())
    ref = []
    while left:
        lead = left[0]
        b = boxes[left]
        lt = torch.maximum(b[:, :2], boxes[lead, :2])
        rb = torch.minimum(b[:, 2:], boxes[lead, 2:])
        inter = (rb - lt + 1).clamp(min=0).prod(1)
        area = (b[:, 2:] - b[:, :2] + 1).prod(1)
        iou = inter / (area + (boxes[lead, 2:] - boxes[lead, :2] + 1).prod() - inter)
        members = [left[i] for i in torch.nonzero(iou > 0.6)[:, 0].tolist()]
        wts = scores[members] / scores[lead] * iou[iou > 0.6]
        ref.append(((wts[:, None] * boxes[members]).sum(0) / wts.sum(),
                    (wts * scores[members]).sum()))
        left = [i for i in left if i not in members]
    ref_scores = torch.stack([s for _, s in ref])
    order = torch.argsort(ref_scores, descending=True)
    ref_boxes = torch.stack([b for b, _ in ref])[order]
    torch.testing.assert_close(res.scores, ref_scores[order])
    torch.testing.assert_close(res.bboxes, ref_boxes)


# ----------------------------------------------------------------------------- config
STUB_BASE = """
custom_imports = dict(imports=['img2pose_mm'], allow_failed_imports=False)
default_scope = 'mmdet'
model = dict(type='StubDetector')
test_dataloader = dict(batch_size=2, num_workers=0,
                       dataset=dict(type='FacePoseLMDBDataset', ann_file='val.lmdb',
                                    serialize_data=False, pipeline=[]))
test_evaluator = dict(type='HeadPoseMetric', selection='iou')
"""


def load_tta_config(tmp_path, real_base):
    if real_base:
        return Config.fromfile(TTA_CONFIG)
    shutil.copy(TTA_CONFIG, tmp_path / 'img2pose_r18_wider_tta.py')
    (tmp_path / 'img2pose_r18.py').write_text(STUB_BASE)
    return Config.fromfile(str(tmp_path / 'img2pose_r18_wider_tta.py'))


@pytest.mark.parametrize('real_base', [False, True])
def test_tta_config_builds_wider_pipeline(tmp_path, real_base):
    cfg = load_tta_config(tmp_path, real_base)
    init_default_scope(cfg.default_scope)
    assert cfg.tta_model.type == 'PoseDetTTAModel' and cfg.tta_model.tta_cfg.iou_thr == 0.6
    dataset = cfg.test_dataloader.dataset
    assert dataset.type == 'WIDERFaceOfficialDataset' and 'serialize_data' not in dataset
    assert cfg.test_evaluator.type == 'WIDERFaceMetric' and 'selection' not in \
        cfg.test_evaluator
    tta = TRANSFORMS.build(cfg.tta_pipeline[1])
    img_path = str(tmp_path / 'WIDER_val/images/0--Parade/0_Parade_x_1.jpg')
    import os
    os.makedirs(osp.dirname(img_path))
    cv2.imwrite(img_path, np.random.default_rng(0).integers(0, 255, (96, 128, 3),
                                                            dtype=np.uint8))
    results = TRANSFORMS.build(cfg.tta_pipeline[0])(
        dict(img_path=img_path, event='0--Parade', name='0_Parade_x_1'))
    out = tta(results)
    samples = out['data_samples']
    assert len(samples) == 2 * len(cfg.tta_min_sizes)
    shorts = sorted({min(s.img_shape) for s in samples})
    assert shorts == sorted(cfg.tta_min_sizes)        # short side = each min size, no cap
    assert sum(s.flip for s in samples) == len(cfg.tta_min_sizes)
    assert all(s.ori_shape == (96, 128) and s.event == '0--Parade' for s in samples)
    # the stand-alone (no --tta) pipeline, dataset and metric build as well
    pipeline = [TRANSFORMS.build(t) for t in cfg.test_dataloader.dataset.pipeline]
    assert len(pipeline) == 3
    from mmdet.registry import METRICS
    assert type(METRICS.build(cfg.test_evaluator)).__name__ == 'WIDERFaceMetric'


# ----------------------------------------------------------------------------- end to end
@pytest.mark.parametrize('model_config', [None, 'retina_img2pose_r18_fpn.py'])
def test_tta_on_flipped_image_flips_the_poses(tmp_path, model_config):
    """TTA of a mirrored image = the mirror of the TTA of the image (real model: the
    two-stage model of the TTA config, or the one-stage model in its place)."""
    from mmengine.dataset import pseudo_collate

    from img2pose_mm.apis.model_config import pose_coder_cfgs
    cfg = Config.fromfile(TTA_CONFIG)
    if model_config is not None:
        cfg.model = Config.fromfile(osp.join(REPO, 'configs', model_config)).model
        # random weights score every anchor about 0.01: keep the best ones of each level
        cfg.model.test_cfg.update(score_thr=0.0, nms_pre=60)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    for _, coder in pose_coder_cfgs(cfg.model):
        # plausible local-pose statistics: a random head then yields hundreds of faces
        coder.pose_mean = [0.0, 0.0, 0.0, 0.0, 0.0, 3.0]
        coder.pose_stddev = [0.3, 0.3, 0.3, 0.2, 0.2, 1.0]
    model = MODELS.build(cfg.model)
    model.eval()
    tta_model = MODELS.build(dict(cfg.tta_model, module=model))
    tta_model.eval()
    # 320 x 240 at min sizes 240 and 120: exact scales (1 and 1/2), so the flipped
    # image's views are pixel-exact mirrors of the image's views
    pipeline_cfg = cfg.tta_pipeline.copy()
    pipeline_cfg[1].transforms[0] = [dict(type='PoseResize', scale=(100000, s),
                                          keep_ratio=True) for s in (240, 120)]
    load, tta = [TRANSFORMS.build(t) for t in pipeline_cfg]
    img = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 3)
    paths = [str(tmp_path / 'direct.png'), str(tmp_path / 'mirror.png')]
    cv2.imwrite(paths[0], img)
    cv2.imwrite(paths[1], img[:, ::-1])
    merged = []
    with torch.no_grad():
        for path in paths:
            data = tta(load(dict(img_path=path)))
            batch = pseudo_collate([data])
            merged.append(tta_model.test_step(batch)[0].pred_instances)
    direct, mirror = merged
    assert len(direct.scores) > 10 and len(direct.scores) == len(mirror.scores)
    x1, y1, x2, y2 = direct.bboxes.unbind(-1)
    mirrored = torch.stack([320 - x2, y1, 320 - x1, y2], -1)
    # detections with equal scores come in either order: compare in one canonical order
    # (score, then the box in the mirror's frame)
    def canonical(scores, boxes):
        keys = [b.numpy() for b in boxes.round(decimals=1).unbind(-1)[::-1]]
        return torch.from_numpy(np.lexsort(keys + [-scores.numpy().round(5)]))
    direct = direct[canonical(direct.scores, mirrored)]
    mirror = mirror[canonical(mirror.scores, mirror.bboxes)]
    torch.testing.assert_close(mirror.scores, direct.scores, atol=1e-4, rtol=1e-4)
    x1, y1, x2, y2 = direct.bboxes.unbind(-1)
    torch.testing.assert_close(mirror.bboxes, torch.stack([320 - x2, y1, 320 - x1, y2], -1),
                               atol=1e-2, rtol=1e-4)
    expected = flip_pose(direct.poses.double(), (240, 320))
    assert rotation_angle_between(mirror.poses[:, :3].double(), expected[:, :3]).max() < 1e-3
    torch.testing.assert_close(mirror.poses[:, 3:].double(), expected[:, 3:], atol=1e-3,
                               rtol=1e-3)
