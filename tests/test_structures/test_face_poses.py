"""FacePoses: the torch-backed pose type with a validity mask and the image it describes."""
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from img2pose_mm.structures import (
    POSE_SENTINEL,
    FaceModel,
    FacePoses,
    flip_pose,
    project_pose_points,
    scale_translate_map,
    warp_pose,
)

SHAPE = (120, 160)


def make_poses(rng, n=4):
    rot = rng.uniform(-0.5, 0.5, (n, 3))
    xy = rng.uniform(-0.5, 0.5, (n, 2))
    z = rng.uniform(6.0, 10.0, (n, 1))
    return np.concatenate([rot, xy, z], 1)


def test_sentinel_and_nan_rows_are_invalid(rng):
    arr = make_poses(rng)
    arr[1] = POSE_SENTINEL
    arr[2, 4] = np.nan
    poses = FacePoses.from_numpy(arr, SHAPE)
    assert poses.valid.tolist() == [True, False, False, True]
    assert torch.isnan(poses.tensor[[1, 2]]).all()
    np.testing.assert_allclose(poses.tensor[poses.valid].double().numpy(), arr[[0, 3]],
                               rtol=1e-6)
    # written back with the file sentinel
    out = poses.numpy()
    assert (out[[1, 2]] == POSE_SENTINEL).all()
    np.testing.assert_allclose(out[[0, 3]], arr[[0, 3]], rtol=1e-6)
    # an explicit mask removes more rows, never fewer
    masked = FacePoses.from_numpy(arr, SHAPE, valid=np.array([False, True, True, True]))
    assert masked.valid.tolist() == [False, False, False, True]


def test_container_behaviour(rng):
    poses = FacePoses(make_poses(rng, 5), img_shape=SHAPE)
    assert len(poses) == 5 and poses.num_valid == 5 and poses.img_shape == SHAPE
    assert len(poses[1:3]) == 2 and len(poses[np.array([True, False, True, False, True])]) == 3
    assert len(poses[torch.tensor([4, 0])]) == 2 and len(poses[2]) == 1
    torch.testing.assert_close(poses[[4, 0]].tensor, poses.tensor[[4, 0]])
    joined = FacePoses.cat([poses[:2], poses[2:]])
    torch.testing.assert_close(joined.tensor, poses.tensor)
    with pytest.raises(ValueError, match='different images'):
        FacePoses.cat([poses, FacePoses(make_poses(rng, 1), img_shape=(10, 10))])
    assert poses.to(torch.float64).dtype == torch.float64
    # mmengine's InstanceData indexes it like a box type
    inst = InstanceData(poses=poses, labels=torch.arange(5))
    sub = inst[torch.tensor([True, False, True, False, False])]
    assert isinstance(sub.poses, FacePoses) and len(sub.poses) == 2
    torch.testing.assert_close(sub.poses.tensor, poses.tensor[[0, 2]])
    assert len(InstanceData.cat([inst, inst]).poses) == 10


def test_flip_twice_is_identity_and_matches_flip_pose(rng):
    arr = make_poses(rng)
    poses = FacePoses(arr, img_shape=(121, 161), dtype=torch.float64)
    poses.flip_()
    torch.testing.assert_close(poses.tensor, flip_pose(torch.from_numpy(arr), (121, 161)))
    poses.flip_()
    torch.testing.assert_close(poses.tensor, torch.from_numpy(arr), rtol=0, atol=1e-12)


def test_warp_moves_img_shape_and_matches_projection(rng):
    """An isotropic resize is exact: projections move with the pixels."""
    arr = torch.from_numpy(make_poses(rng))
    poses = FacePoses(arr, img_shape=SHAPE, dtype=torch.float64)
    face = FaceModel()
    before = face.project(arr, SHAPE)
    poses.rescale_((2.0, 2.0), (240, 320))
    assert poses.img_shape == (240, 320)
    after = poses.project(face)
    torch.testing.assert_close(after, before * 2, rtol=0, atol=1e-6)
    # same as the functional form
    expected = warp_pose(arr, SHAPE, (240, 320), scale_translate_map((2.0, 2.0)))
    torch.testing.assert_close(poses.tensor, expected)


def test_crop_refinement_is_never_worse_than_the_closed_form(rng):
    """A crop changes the camera's focal: EPnP refinement keeps the better pose per face."""
    shape = (480, 640)
    arr = torch.from_numpy(make_poses(rng, 12))
    face = FaceModel()
    target = face.project(arr, shape) - torch.tensor([200.0, 150.0], dtype=torch.float64)
    size = (target.amax(1) - target.amin(1)).amax(-1)

    def error(p):
        return (p.project(face) - target).norm(dim=-1).mean(-1) / size

    closed = FacePoses(arr, img_shape=shape, dtype=torch.float64)
    closed.translate_((-200, -150), (200, 260))
    refined = FacePoses(arr, img_shape=shape, dtype=torch.float64)
    refined.translate_((-200, -150), (200, 260), face, refine=True)
    assert refined.img_shape == (200, 260)
    assert (error(refined) <= error(closed) + 1e-12).all()
    assert (error(refined) < error(closed) - 1e-4).any()
    assert error(refined).max() < 0.05


def test_invalid_rows_are_never_computed_and_stay_invalid(rng):
    arr = make_poses(rng, 3)
    arr[1] = POSE_SENTINEL
    poses = FacePoses.from_numpy(arr, SHAPE)
    poses.flip_().rescale_((0.5, 0.5), (60, 80)).translate_((-5, -5), (50, 70))
    assert poses.valid.tolist() == [True, False, True]
    assert torch.isnan(poses.tensor[1]).all() and torch.isfinite(poses.tensor[[0, 2]]).all()
    boxes = poses.to_bboxes()
    assert torch.isnan(boxes[1]).all() and torch.isfinite(boxes[[0, 2]]).all()
    assert torch.isnan(poses.project(num_points=5)[1]).all()


def test_to_bboxes_and_project_use_the_face_model(rng):
    arr = torch.from_numpy(make_poses(rng))
    poses = FacePoses(arr, img_shape=SHAPE, dtype=torch.float64)
    wide = FaceModel(bbox_x_factor=1.5)
    torch.testing.assert_close(poses.to_bboxes(wide),
                               wide.pose_to_bbox(arr, SHAPE))
    points = torch.from_numpy(np.random.default_rng(3).uniform(-1, 1, (68, 3)).astype(np.float32))
    other = FaceModel(reference_points=points)
    torch.testing.assert_close(poses.project(other),
                               project_pose_points(points.double(), arr, SHAPE))


def test_poses_from_landmarks_mark_unusable_sets(rng):
    face = FaceModel()
    arr = torch.from_numpy(make_poses(rng, 3))
    landmarks = face.project(arr, SHAPE).numpy()
    landmarks[1, 4] = -1                      # the JSON list's "no pose"
    poses = FacePoses(*face.pose_from_landmarks(landmarks, SHAPE), SHAPE, dtype=torch.float64)
    assert poses.valid.tolist() == [True, False, True]
    torch.testing.assert_close(poses.project(face)[[0, 2]], torch.from_numpy(landmarks[[0, 2]]),
                               rtol=0, atol=1e-3)
