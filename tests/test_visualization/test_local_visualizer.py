"""PoseLocalVisualizer through mmdet's add_datasample: a PNG with GT and prediction overlays."""
import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

import img2pose_mm  # noqa: F401
from img2pose_mm.structures import (
    load_reference_points,
    pose_to_bbox,
    project_pose_points,
)
from img2pose_mm.visualization import PoseLocalVisualizer

from .utils import axis_pixel, make_pose

H, W = 240, 320


@pytest.fixture
def visualizer(request):
    # one instance name per test: mmengine warns when a name is built twice
    vis = VISUALIZERS.build(dict(type='PoseLocalVisualizer',
                                 name=f'test_pose_visualizer_{request.node.name}',
                                 axis_thickness=3))
    vis.dataset_meta = dict(classes=('face',), palette=[(0, 255, 0)])
    return vis


def test_registered_and_subclass(visualizer):
    from mmdet.visualization import DetLocalVisualizer
    assert isinstance(visualizer, PoseLocalVisualizer)
    assert isinstance(visualizer, DetLocalVisualizer)


def test_add_datasample_writes_gt_and_prediction_overlays(visualizer, tmp_path):
    image = np.full((H, W, 3), 128, np.uint8)
    gt_poses = torch.cat([make_pose((0., 40., 0.), (-1.8, 0.2, 9.)),
                          make_pose((10., -35., 10.), (1.9, -0.2, 10.))])
    points = torch.as_tensor(load_reference_points(), dtype=torch.float64)
    boxes = pose_to_bbox(gt_poses, points, (H, W))
    sample = DetDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W)))
    sample.gt_instances = InstanceData(bboxes=boxes.float(), labels=torch.zeros(2).long(),
                                       poses=gt_poses.float())
    # prediction 0 is confident, prediction 1 falls below pred_score_thr
    sample.pred_instances = InstanceData(bboxes=boxes.float(), labels=torch.zeros(2).long(),
                                         poses=gt_poses.float(), scores=torch.tensor([0.9, 0.1]))
    out_file = tmp_path / 'vis.png'
    visualizer.add_datasample('img', image, sample, out_file=str(out_file), pred_score_thr=0.3)
    assert out_file.is_file()
    drawn = cv2.imread(str(out_file))[..., ::-1].astype(int)   # RGB
    assert drawn.shape == (H, 2 * W, 3)
    gt_half, pred_half = drawn[:, :W], drawn[:, W:]

    def is_axis(px, channel):
        others = [c for c in range(3) if c != channel]
        return px[channel] > 180 and all(px[c] < 90 for c in others)

    for half, faces in ((gt_half, (0, 1)), (pred_half, (0,))):
        for i in faces:
            pose = gt_poses[i:i + 1]
            assert is_axis(half[axis_pixel(pose, [1., 0., 0.], (H, W))], 0)    # x red
            assert is_axis(half[axis_pixel(pose, [0., -1., 0.], (H, W))], 1)   # y green
            assert is_axis(half[axis_pixel(pose, [0., 0., -1.], (H, W))], 2)   # z blue
    # the filtered prediction draws nothing: its axes and mesh are absent
    y, x = axis_pixel(gt_poses[1:2], [0., -1., 0.], (H, W))
    assert (np.abs(pred_half[y, x] - 128) <= 2).all()

    # mesh overlay: the face region differs from the plain input, GT green-ish, pred blue-ish
    nose = project_pose_points(points[27:31], gt_poses[:1], (H, W))[0].numpy()
    cheek = np.round(nose.mean(0) + [6, 0]).astype(int)
    gt_px, pred_px = gt_half[cheek[1], cheek[0]], pred_half[cheek[1], cheek[0]]
    assert np.abs(gt_px - 128).max() > 20 and np.abs(pred_px - 128).max() > 20
    assert gt_px[1] > gt_px[2] and pred_px[2] > pred_px[1]
    # the background far from any face is untouched
    assert (np.abs(gt_half[5:15, W // 2 - 5:W // 2 + 5] - 128) <= 2).all()


def test_without_poses_falls_back_to_boxes(visualizer, tmp_path):
    image = np.full((H, W, 3), 128, np.uint8)
    sample = DetDataSample()
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[40., 40., 120., 140.]]),
                                       labels=torch.zeros(1).long())
    out_file = tmp_path / 'boxes.png'
    visualizer.add_datasample('img', image, sample, draw_pred=False, out_file=str(out_file))
    drawn = cv2.imread(str(out_file))
    assert drawn.shape == (H, W, 3) and (drawn != 128).any()


def test_draw_poses_options():
    vis = PoseLocalVisualizer(name='test_pose_options', draw_mesh=False, axis_thickness=3)
    image = np.full((H, W, 3), 128, np.uint8)
    pose = make_pose((0., 40., 0.), (0., 0., 9.))
    out = vis.draw_poses(image, pose)
    assert is_red(out[axis_pixel(pose, [1., 0., 0.], (H, W))])
    # without the mesh, pixels away from the axes stay unchanged
    points = torch.as_tensor(load_reference_points(), dtype=torch.float64)
    jaw = np.round(project_pose_points(points[8:9], pose, (H, W))[0, 0].numpy()).astype(int)
    assert (out[jaw[1], jaw[0]] == 128).all()
    with pytest.raises(ValueError, match='mesh_alpha'):
        PoseLocalVisualizer(name='test_pose_bad', mesh_alpha=2.0)


def is_red(px):
    return px[0] > 180 and px[1] < 90 and px[2] < 90


def test_draw_landmarks_option():
    vis = PoseLocalVisualizer(name='test_pose_visualizer_landmarks', draw_mesh=False,
                              draw_axes=False, draw_landmarks=True)
    pose = make_pose((0., 20., 0.), (0., 0., 8.))
    out = vis.draw_poses(np.zeros((H, W, 3), np.uint8), pose)
    points = project_pose_points(torch.as_tensor(load_reference_points(), dtype=torch.float64),
                                 pose, (H, W))[0].numpy()
    hits = out[np.round(points[:, 1]).astype(int), np.round(points[:, 0]).astype(int)]
    assert (hits == (255, 80, 200)).all(-1).mean() > 0.9
    plain = PoseLocalVisualizer(name='test_pose_visualizer_plain', draw_mesh=False,
                                draw_axes=False)
    assert not plain.draw_poses(np.zeros((H, W, 3), np.uint8), pose).any()
