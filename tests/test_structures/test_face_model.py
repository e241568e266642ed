"""FaceModel: one declaration of the reference face and the pose <-> box rules."""
import io

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from img2pose_mm.structures import (
    FaceModel,
    load_reference_points,
    local_to_global,
    pose_to_bbox,
)

SHAPE = (301, 452)   # odd sizes: w // 2 and h // 2 matter


def numpy_integer_decode(local, box, img_shape):
    """The original's inference decode of one box, written from its description: an
    integer numpy camera, the box centre written into a copy of it (so truncated), the
    depth scaled by f / (bw + bh), and scipy's from_matrix for the rotation."""
    h, w = img_shape
    K = np.array([[w + h, 0, w // 2], [0, w + h, h // 2], [0, 0, 1]])
    Kb = K.copy()
    Kb[0, 2] = box[0] + (box[2] - box[0]) // 2
    Kb[1, 2] = box[1] + (box[3] - box[1]) // 2
    t = local[3:].copy()
    t[2] *= K[0, 0] / ((box[2] - box[0]) + (box[3] - box[1]))
    t = np.linalg.inv(K) @ (Kb @ t)
    R = np.linalg.inv(K) @ (Kb @ Rotation.from_rotvec(local[:3]).as_matrix())
    return np.concatenate([Rotation.from_matrix(R).as_rotvec(), t])


def test_build_and_defaults():
    face = FaceModel.build(None)
    assert face.settings() == dict(bbox_x_factor=1.1, bbox_y_factor=1.1, expand_forehead=0.3,
                                   rotation_method='svd', integer_box_centre=False)
    np.testing.assert_array_equal(face.points_68.numpy(), load_reference_points(None, 68))
    assert FaceModel.build(face) is face
    built = FaceModel.build(dict(type='FaceModel', rotation_method='markley'))
    assert built.rotation_method == 'markley'
    with pytest.raises(ValueError, match='rotation_method'):
        FaceModel(rotation_method='quaternion')
    with pytest.raises(ValueError, match='68 x 3'):
        FaceModel(reference_points=np.zeros((5, 3)))
    with pytest.raises(FileNotFoundError, match='nowhere.npy'):
        FaceModel(reference_points='nowhere.npy')
    with pytest.raises(TypeError):
        FaceModel.build(3)


def test_state_dict_round_trip_loads_weights_only(tmp_path):
    points = np.random.default_rng(0).uniform(-1, 1, (68, 3)).astype(np.float32)
    path = tmp_path / 'ref68.npy'
    np.save(path, points)
    face = FaceModel(reference_points=str(path), rotation_method='markley',
                     integer_box_centre=True, expand_forehead=0.25)
    buf = io.BytesIO()
    torch.save(face.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert set(state) == {'points_68', 'points_5', '_extra_state'}
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    again = FaceModel()
    again.load_state_dict(state)
    assert again.same_as(face) and again.source_68 == 'checkpoint'
    assert not again.same_as(FaceModel()) and face.fingerprint() != FaceModel().fingerprint()
    assert 'ref68.npy' in repr(face) and 'integer' in repr(face) and 'markley' in repr(face)


def test_a_checkpoint_face_wins_and_a_declared_other_face_warns():
    trained = FaceModel(reference_points=np.random.default_rng(1).uniform(-1, 1, (68, 3)),
                        integer_box_centre=True)
    declared = FaceModel(expand_forehead=0.2)
    declared.declared = True
    with pytest.warns(UserWarning, match=r'checkpoint was trained with FaceModel\(points '
                                         r'checkpoint.*but the config declares.*forehead 0.2'):
        declared.load_state_dict(trained.state_dict())
    assert declared.same_as(trained)
    default = FaceModel()                              # undeclared: replaced silently
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        default.load_state_dict(trained.state_dict())
    assert default.same_as(trained) and default.integer_box_centre


def test_integer_centre_decode_matches_the_numpy_reference(rng):
    boxes = np.stack([rng.uniform(0, 200, 20), rng.uniform(0, 150, 20)], 1)
    boxes = np.concatenate([boxes, boxes + rng.uniform(20.3, 120.7, (20, 2))], 1)
    local = np.concatenate([rng.uniform(-0.6, 0.6, (20, 3)), rng.uniform(-0.2, 0.2, (20, 2)),
                            rng.uniform(0.8, 1.6, (20, 1))], 1)
    face = FaceModel(integer_box_centre=True)
    ours = face.decode(torch.from_numpy(local), torch.from_numpy(boxes), SHAPE).numpy()
    ref = np.stack([numpy_integer_decode(lp, b, SHAPE) for lp, b in zip(local, boxes)])
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)
    # the fractional centre is what training uses: it differs by up to one pixel
    frac = local_to_global(torch.from_numpy(local), torch.from_numpy(boxes), SHAPE).numpy()
    assert np.abs(frac[:, 3:5] - ref[:, 3:5]).max() > 1e-4


def test_encode_decode_round_trip_and_boxes(rng):
    face = FaceModel()
    poses = torch.from_numpy(np.concatenate([rng.uniform(-0.5, 0.5, (8, 3)),
                                             rng.uniform(-0.3, 0.3, (8, 2)),
                                             rng.uniform(5, 9, (8, 1))], 1))
    boxes = face.pose_to_bbox(poses, SHAPE)
    torch.testing.assert_close(face.decode(face.encode(poses, boxes, SHAPE), boxes, SHAPE),
                               poses, rtol=0, atol=1e-9)
    torch.testing.assert_close(boxes, pose_to_bbox(poses, face.points_68.double(), SHAPE))
    narrow = FaceModel(bbox_x_factor=0.8, expand_forehead=0.0)
    wide_boxes, narrow_boxes = boxes, narrow.pose_to_bbox(poses, SHAPE)
    assert ((narrow_boxes[:, 2] - narrow_boxes[:, 0]) <= (wide_boxes[:, 2] - wide_boxes[:, 0])).all()


def test_pose_from_landmarks_picks_the_5_or_68_points(rng):
    face = FaceModel()
    poses = torch.tensor([[0.1, -0.2, 0.05, 0.1, -0.1, 7.0]], dtype=torch.float64)
    for num in (5, 68):
        landmarks = face.project(poses, SHAPE, num).numpy()
        est, ok = face.pose_from_landmarks(landmarks, SHAPE)
        assert ok.all()
        torch.testing.assert_close(est, poses, rtol=0, atol=1e-3)
