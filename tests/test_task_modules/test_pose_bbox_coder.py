"""PoseBBoxCoder: targets, decoding, and the state it carries for checkpoints."""
import numpy as np
import pytest
import torch

import img2pose_mm  # noqa: F401
from img2pose_mm.structures import FaceModel
from img2pose_mm.task_modules import PoseBBoxCoder

from ..pose_reference import box_local_pose

SHAPE = (240, 320)


def poses_and_boxes(rng, n=10):
    poses = torch.from_numpy(np.concatenate([rng.uniform(-0.5, 0.5, (n, 3)),
                                             rng.uniform(-0.4, 0.4, (n, 2)),
                                             rng.uniform(6, 10, (n, 1))], 1))
    boxes = FaceModel().pose_to_bbox(poses, SHAPE)
    jitter = torch.from_numpy(rng.uniform(-4, 4, (n, 4)))
    return poses, boxes + jitter


def test_encode_is_normalised_box_local_pose(rng):
    mean = [0.1, -0.1, 0.0, 0.0, 0.05, 1.0]
    std = [0.3, 0.4, 0.2, 0.1, 0.2, 0.5]
    coder = PoseBBoxCoder(pose_mean=mean, pose_stddev=std)
    poses, boxes = poses_and_boxes(rng)
    targets = coder.encode(boxes, poses, SHAPE)
    # img2pose's box-local pose by hand (numpy + scipy), then normalised
    local = np.stack([box_local_pose(p, b, SHAPE) for p, b in zip(poses.numpy(), boxes.numpy())])
    expected = (local - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(targets.numpy(), expected, rtol=1e-5, atol=1e-5)
    # decode inverts encode, and the boxes are the face model's boxes of the poses
    decoded, det_boxes = coder.decode(boxes, targets, SHAPE)
    torch.testing.assert_close(decoded, poses, rtol=0, atol=1e-5)
    torch.testing.assert_close(det_boxes, coder.face_model.pose_to_bbox(decoded, SHAPE))
    # a hand-made case: a face straight ahead at the image centre, in a box centred there,
    # has the same rotation locally, x/y 0 and its depth scaled by (bw + bh) / (w + h)
    h, w = SHAPE
    ahead = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 5.0]], dtype=torch.float64)
    box = torch.tensor([[w // 2 - 20, h // 2 - 30, w // 2 + 20, h // 2 + 30]],
                       dtype=torch.float64)
    local = PoseBBoxCoder().encode(box, ahead, SHAPE)
    np.testing.assert_allclose(local.numpy(), [[0, 0, 0, 0, 0, 5.0 * 100 / (w + h)]], atol=1e-7)
    # per-row image shapes give the same as one shared shape
    rows = torch.tensor(SHAPE, dtype=torch.float64).expand(len(boxes), 2)
    torch.testing.assert_close(coder.encode(boxes, poses, rows), targets)


def test_integer_centre_changes_only_the_decode(rng):
    poses, boxes = poses_and_boxes(rng)
    boxes = boxes + 0.5             # fractional centres
    plain = PoseBBoxCoder()
    original = PoseBBoxCoder(face_model=dict(integer_box_centre=True))
    torch.testing.assert_close(original.encode(boxes, poses, SHAPE),
                               plain.encode(boxes, poses, SHAPE))
    targets = plain.encode(boxes, poses, SHAPE)
    moved = (original.decode(boxes, targets, SHAPE)[0] - plain.decode(boxes, targets, SHAPE)[0])
    assert moved[:, 3:5].abs().max() > 1e-4 and moved[:, 5].abs().max() < 1e-9


def test_state_travels_in_the_state_dict(tmp_path):
    np.save(tmp_path / 'mean.npy', np.arange(6, dtype=np.float64) / 10)
    trained = PoseBBoxCoder(face_model=dict(integer_box_centre=True, expand_forehead=0.2),
                            pose_mean=str(tmp_path / 'mean.npy'), pose_stddev=[2.0] * 6)
    state = trained.state_dict()
    assert set(state) == {'pose_mean', 'pose_stddev', 'face_model.points_68',
                          'face_model.points_5', 'face_model._extra_state'}
    fresh = PoseBBoxCoder()
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.pose_mean, torch.arange(6, dtype=torch.float32) / 10)
    assert fresh.face_model.same_as(trained.face_model)
    declared = PoseBBoxCoder(face_model=dict(rotation_method='markley'))
    with pytest.warns(UserWarning, match='the config declares'):
        declared.load_state_dict(state)
    assert declared.face_model.rotation_method == 'svd'      # the checkpoint's


def test_bad_statistics_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.npy'):
        PoseBBoxCoder(pose_mean=str(tmp_path / 'nowhere.npy'))
    with pytest.raises(ValueError, match='6 finite numbers'):
        PoseBBoxCoder(pose_mean=[0.0] * 5)
    with pytest.raises(ValueError, match='positive'):
        PoseBBoxCoder(pose_stddev=[1.0] * 5 + [0.0])
