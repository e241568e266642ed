"""DoFRoIHead / DoFCascadeRoIHead: mmdet's own loops with pose-carrying samplers."""
import torch
from mmdet.models.roi_heads import CascadeRoIHead, StandardRoIHead
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.structures import InstanceData

import img2pose_mm  # noqa: F401
from img2pose_mm.heads import DoFCascadeRoIHead, DoFRoIHead
from img2pose_mm.heads.pose_targets import PoseSamplingWrapper

from ..test_models.utils import MODEL_CFG, REPO


def roi_head(cfg_path=MODEL_CFG, **coder_cfg):
    cfg = Config.fromfile(str(cfg_path))
    head_cfg = cfg.model.roi_head
    head_cfg.update(train_cfg=cfg.model.train_cfg.rcnn, test_cfg=cfg.model.test_cfg.rcnn)
    heads = head_cfg.bbox_head if isinstance(head_cfg.bbox_head, list) else [head_cfg.bbox_head]
    for bbox_head in heads:          # no statistics files needed here
        bbox_head.bbox_coder.update({**dict(pose_mean=None, pose_stddev=None), **coder_cfg})
    return MODELS.build(head_cfg)


def test_mmdet_loops_run_unchanged():
    assert DoFRoIHead.loss is StandardRoIHead.loss
    assert DoFCascadeRoIHead.loss is CascadeRoIHead.loss
    assert isinstance(roi_head().bbox_sampler, PoseSamplingWrapper)
    cascade = roi_head(REPO / 'configs' / 'cascade_img2pose_r50.py')
    assert len(cascade.bbox_sampler) == 3
    assert all(isinstance(s, PoseSamplingWrapper) for s in cascade.bbox_sampler)


def test_no_proposal_gives_empty_poses():
    head = roi_head().eval()
    feats = tuple(torch.zeros(1, 256, 64 // s, 64 // s) for s in (4, 8, 16, 32, 64))
    meta = dict(img_shape=(64, 64), ori_shape=(64, 64), scale_factor=(1.0, 1.0))
    out, = head.predict_bbox(feats, [meta], [InstanceData(bboxes=torch.zeros(0, 4))],
                             ConfigDict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5)))
    assert out.poses.shape == (0, 6) and len(out.bboxes) == 0


def test_predict_for_boxes_gives_one_result_per_box_in_order():
    """Given boxes: no score filter, no NMS, duplicates kept, each box's result independent
    of the others; the same for the cascade."""
    torch.manual_seed(0)
    feats = tuple(torch.randn(1, 256, 128 // s, 128 // s) for s in (4, 8, 16, 32, 64))
    meta = dict(img_shape=(128, 128), ori_shape=(128, 128), scale_factor=(1.0, 1.0))
    sample = DetDataSample(metainfo=meta)
    boxes = torch.tensor([[10., 12., 60., 70.], [10., 12., 60., 70.], [70., 40., 120., 100.],
                          [0., 0., 3., 4.], [30., 30., 90., 95.]])
    for head in (roi_head().eval(), roi_head(REPO / 'configs' / 'cascade_img2pose_r50.py').eval()):
        with torch.no_grad():
            out, = head.predict_for_boxes(feats, [InstanceData(bboxes=boxes)], [sample])
            singles = [head.predict_for_boxes(feats, [InstanceData(bboxes=box[None])],
                                              [sample])[0] for box in boxes]
        assert len(out) == len(boxes) and out.poses.shape == (5, 6)
        torch.testing.assert_close(out.poses[0], out.poses[1])
        torch.testing.assert_close(out.poses, torch.cat([s.poses for s in singles]),
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out.scores, torch.cat([s.scores for s in singles]),
                                   atol=1e-5, rtol=1e-5)
        # the detection path suppresses the duplicate (and its config is left alone)
        with torch.no_grad():
            detected, = head.predict_bbox(feats, [meta], [InstanceData(bboxes=boxes)],
                                          head.test_cfg)
        assert len(detected) < len(boxes) and head.test_cfg.get('keep_all_rois') is None


def test_pose_refinement_reads_the_rois_of_the_projected_boxes():
    """``pose_refine_steps=n``: the same detections and scores as without, each pose read
    again from the RoI of the box the previous pose projects to (n times); in the original
    image's frame with ``rescale``."""
    torch.manual_seed(0)
    # box-local poses about 1.5 box sizes away: the projected boxes stay inside the image
    head = roi_head(pose_mean=[0., 0., 0., 0., 0., 1.5],
                    pose_stddev=[0.2, 0.2, 0.2, 0.2, 0.2, 0.2]).eval()
    feats = tuple(torch.randn(1, 256, 128 // s, 128 // s) for s in (4, 8, 16, 32, 64))
    meta = dict(img_shape=(128, 128), ori_shape=(256, 256), scale_factor=(0.5, 0.5))
    proposals = InstanceData(bboxes=torch.tensor(
        [[10., 12., 60., 70.], [70., 40., 120., 100.], [30., 30., 90., 95.]]))
    # random weights give overlapping boxes: an NMS that keeps them all
    cfg = ConfigDict(score_thr=0.05, nms=dict(type='nms', iou_threshold=1.0), max_per_img=-1)
    sample = DetDataSample(metainfo=meta)
    with torch.no_grad():
        plain, = head.predict_bbox(feats, [meta], [proposals], cfg, rescale=False)
        expected = plain
        for _ in range(2):
            expected, = head.predict_for_boxes(feats, [InstanceData(bboxes=expected.bboxes)],
                                               [sample], rescale=False)
        refined, = head.predict_bbox(feats, [meta], [proposals],
                                     ConfigDict(cfg, pose_refine_steps=2), rescale=False)
        rescaled, = head.predict_bbox(feats, [meta], [proposals],
                                      ConfigDict(cfg, pose_refine_steps=2), rescale=True)
    assert len(plain) == 3 and len(refined) == len(plain)
    torch.testing.assert_close(refined.scores, plain.scores)
    torch.testing.assert_close(refined.labels, plain.labels)
    assert not torch.allclose(refined.poses, plain.poses)
    torch.testing.assert_close(refined.poses, expected.poses)
    torch.testing.assert_close(refined.bboxes, expected.bboxes)
    # rescale: boxes scale by 2 (the inverse of scale_factor); the camera of the original
    # image (focal w + h) doubles with it, so rotations and depths stay and tx, ty follow
    # the principal point
    torch.testing.assert_close(rescaled.bboxes, refined.bboxes * 2)
    torch.testing.assert_close(rescaled.poses[:, :3], refined.poses[:, :3])
    torch.testing.assert_close(rescaled.poses[:, 5], refined.poses[:, 5])
