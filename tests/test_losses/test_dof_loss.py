"""Loss values by hand (numpy/scipy) on a 2-RoI case."""
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from scipy.spatial.transform import Rotation

import img2pose_mm  # noqa: F401
from img2pose_mm.structures import load_reference_points


def numpy_project(points, pose, box):
    w, h = box[2] - box[0], box[3] - box[1]
    K = np.array([[w + h, 0, w // 2], [0, w + h, h // 2], [0, 0, 1.0]])
    cam = points @ Rotation.from_rotvec(pose[:3]).as_matrix().T + pose[3:]
    uvw = cam @ K.T
    return uvw[:, :2] / uvw[:, 2:]


def test_two_roi_losses_by_hand():
    mean = np.array([0.05, -0.02, 0.01, 0.0, 0.1, 4.0])
    std = np.array([0.2, 0.3, 0.1, 0.1, 0.2, 1.5])
    head = MODELS.build(dict(type='DoFBBoxHead', num_classes=1, bbox_coder=dict(
        type='PoseBBoxCoder', pose_mean=mean.tolist(), pose_stddev=std.tolist())))
    cls_score = torch.tensor([[1.5, -0.5], [0.2, 0.7]], dtype=torch.float64)
    labels = torch.tensor([0, 0])
    pred = torch.tensor([[0.3, -0.2, 0.1, 0.5, -0.4, 0.2],
                         [-0.1, 0.4, 0.0, -0.3, 0.2, -0.5]], dtype=torch.float64)
    target = torch.tensor([[0.1, 0.0, 0.2, 0.4, -0.1, 0.0],
                           [0.0, 0.2, -0.1, -0.2, 0.0, -0.2]], dtype=torch.float64)
    boxes = torch.tensor([[10., 20., 70., 95.], [30., 5., 121., 88.]], dtype=torch.float64)
    losses = head.loss(cls_score, pred, labels, torch.ones(2, dtype=torch.float64), target,
                       torch.ones(2, dtype=torch.float64), boxes, labels)

    logits = cls_score.numpy()
    ce = -(logits[:, 0] - np.log(np.exp(logits).sum(1))).mean()
    dof = ((pred.numpy() - target.numpy()) ** 2).sum() / 2
    points5 = load_reference_points(num_points=5).astype(np.float64)
    l1 = []
    for p, t, b in zip(pred.numpy(), target.numpy(), boxes.numpy()):
        l1.append(np.abs(numpy_project(points5, p * std + mean, b)
                         - numpy_project(points5, t * std + mean, b)))
    points = np.mean(l1)
    assert abs(float(losses['loss_cls']) - ce) < 1e-5
    assert abs(float(losses['loss_dof']) - dof) < 1e-5
    assert abs(float(losses['loss_points']) - points) < 1e-5


def test_faces_without_pose_do_not_count():
    head = MODELS.build(dict(type='DoFBBoxHead'))
    pred = torch.tensor([[0.3, -0.2, 0.1, 0.5, -0.4, 0.2], [9.0] * 6])
    target = torch.tensor([[0.1, 0.0, 0.2, 0.4, -0.1, 4.0], [0.0] * 6])
    boxes = torch.tensor([[10., 20., 70., 95.], [30., 5., 121., 88.]])
    losses = head.loss(torch.zeros(2, 2), pred, torch.tensor([0, 0]), torch.ones(2), target,
                       torch.tensor([1.0, 0.0]), boxes, torch.tensor([0, 0]))
    expected = float(((pred[0] - target[0]) ** 2).sum())
    assert abs(float(losses['loss_dof']) - expected) < 1e-5


def test_dof_loss_dim_weights_scale_each_pose_number():
    rng = np.random.default_rng(3)
    pred, target = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    weights = np.array([1.0, 2.0, 0.5, 0.7, 0.4, 0.12])
    loss = MODELS.build(dict(type='DoFLoss', dim_weights=weights.tolist()))
    value = loss(torch.from_numpy(pred), torch.from_numpy(target))
    assert float(value) == pytest.approx(((pred - target) ** 2 * weights).sum(1).mean(), rel=1e-6)
    plain = MODELS.build(dict(type='DoFLoss'))(torch.from_numpy(pred), torch.from_numpy(target))
    assert float(plain) == pytest.approx(((pred - target) ** 2).sum(1).mean(), rel=1e-12)
    with pytest.raises(ValueError, match='6 non-negative'):
        MODELS.build(dict(type='DoFLoss', dim_weights=[1, 1, 1]))
    with pytest.raises(ValueError, match='6 non-negative'):
        MODELS.build(dict(type='DoFLoss', dim_weights=[1, 1, 1, 1, 1, -1]))
