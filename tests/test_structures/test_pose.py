"""Pose geometry against independent oracles (scipy, cv2) and its own identities."""
import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from img2pose_mm.structures import (
    box_intrinsics,
    flip_pose,
    global_to_local,
    image_intrinsics,
    load_reference_points,
    local_to_global,
    markley_quaternion,
    matrix_to_rotvec,
    mirror_permutation,
    orthogonalize,
    points_to_bbox,
    polar_rotation,
    pose_from_landmarks,
    pose_to_bbox,
    pose_to_euler,
    project_points,
    project_pose_points,
    rotation_angle_between,
    rotvec_to_matrix,
    scale_translate_map,
    transform_points,
    warp_pose,
)

H, W = 480, 640


def random_poses(rng, n, max_angle=1.0, depth=(4.0, 12.0)):
    rot = rng.uniform(-max_angle, max_angle, (n, 3))
    xy = rng.uniform(-1.5, 1.5, (n, 2))
    z = rng.uniform(*depth, (n, 1))
    return torch.from_numpy(np.concatenate([rot, xy, z], 1))


def random_boxes(rng, n, shape=(H, W)):
    h, w = shape
    x1 = rng.uniform(0, w - 40, n)
    y1 = rng.uniform(0, h - 40, n)
    bw = rng.uniform(20, 300, n)
    bh = rng.uniform(20, 300, n)
    return torch.from_numpy(np.stack([x1, y1, np.minimum(x1 + bw, w), np.minimum(y1 + bh, h)], 1))


def sheared_matrices(rng, n):
    rot = Rotation.random(n, random_state=int(rng.integers(1 << 30))).as_matrix()
    shear = np.tile(np.eye(3), (n, 1, 1))
    shear[:, 0, 2] = rng.uniform(-0.4, 0.4, n)
    shear[:, 1, 2] = rng.uniform(-0.4, 0.4, n)
    return shear @ rot


def markley_reference(m):
    """Markley (2008), one matrix at a time, written from the paper."""
    tr = np.trace(m)
    pivots = [m[0, 0], m[1, 1], m[2, 2], tr]
    c = int(np.argmax(pivots))
    q = np.zeros(4)
    if c == 3:
        q[:] = [m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], 1 + tr]
    else:
        i, j, k = c, (c + 1) % 3, (c + 2) % 3
        q[i] = 1 - tr + 2 * m[i, i]
        q[j] = m[j, i] + m[i, j]
        q[k] = m[k, i] + m[i, k]
        q[3] = m[k, j] - m[j, k]
    return q / np.linalg.norm(q)


# ----------------------------------------------------------------------------- oracles
def test_rotvec_matrix_match_scipy(rng):
    rotvecs = Rotation.random(10000, random_state=1).as_rotvec()
    ours = rotvec_to_matrix(torch.from_numpy(rotvecs)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(rotvecs).as_matrix(), atol=1e-12)
    back = matrix_to_rotvec(torch.from_numpy(ours)).numpy()
    np.testing.assert_allclose(back, rotvecs, atol=1e-9)
    tiny = torch.tensor([[1e-9, -2e-9, 3e-10], [0.0, 0.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(rotvec_to_matrix(tiny).numpy(),
                               Rotation.from_rotvec(tiny.numpy()).as_matrix(), atol=1e-15)


def test_nearest_rotation_of_sheared_matrices_matches_scipy(rng):
    mats = sheared_matrices(rng, 10000)
    ours = matrix_to_rotvec(torch.from_numpy(mats), method='svd').numpy()
    scipy_rot = Rotation.from_matrix(mats)
    np.testing.assert_allclose(Rotation.from_rotvec(ours).as_matrix(), scipy_rot.as_matrix(),
                               atol=1e-6)
    # float32 input works too
    ours32 = matrix_to_rotvec(torch.from_numpy(mats).float(), method='svd').double().numpy()
    np.testing.assert_allclose(Rotation.from_rotvec(ours32).as_matrix(), scipy_rot.as_matrix(),
                               atol=1e-4)


def test_polar_rotation_equals_the_svd_nearest_rotation(rng):
    """The SVD-free polar iteration (what an exported graph runs) against SVD and scipy."""
    mats = sheared_matrices(rng, 2000)
    svd = orthogonalize(torch.from_numpy(mats))
    polar = polar_rotation(torch.from_numpy(mats))
    torch.testing.assert_close(polar, svd, atol=1e-12, rtol=0)
    np.testing.assert_allclose(polar.numpy(), Rotation.from_matrix(mats).as_matrix(), atol=1e-6)
    # far from orthogonal (condition numbers up to ~1e4): still the nearest rotation
    wild = np.eye(3) + rng.uniform(-0.6, 0.6, (2000, 3, 3))
    wild = torch.from_numpy(wild[np.linalg.det(wild) > 0.05])
    assert np.linalg.cond(wild.numpy()).max() > 50
    torch.testing.assert_close(polar_rotation(wild), orthogonalize(wild), atol=1e-10, rtol=0)
    # float32: float32 precision, a proper rotation
    polar32 = polar_rotation(torch.from_numpy(mats).float())
    torch.testing.assert_close(polar32.double(), svd, atol=1e-6, rtol=0)
    eye = torch.eye(3).expand_as(polar32)
    torch.testing.assert_close(polar32 @ polar32.transpose(-1, -2), eye, atol=1e-6, rtol=0)
    assert torch.allclose(torch.linalg.det(polar32), torch.ones(len(mats)), atol=1e-6)


def test_orthogonalize_exports_without_svd(rng):
    """Under ``torch.export`` the nearest rotation is the polar iteration (no SVD node)."""

    class Nearest(torch.nn.Module):
        def forward(self, mats):
            return matrix_to_rotvec(mats, method='svd')

    mats = torch.from_numpy(sheared_matrices(rng, 64)).float()
    program = torch.export.export(Nearest(), (mats,))
    ops = {str(node.target) for node in program.graph.nodes if node.op == 'call_function'}
    assert not any('svd' in op for op in ops)
    torch.testing.assert_close(program.module()(mats), Nearest()(mats), atol=1e-5, rtol=0)


def test_markley_matches_reference_and_scipy_on_rotations(rng):
    mats = sheared_matrices(rng, 2000)
    ours = markley_quaternion(torch.from_numpy(mats)).numpy()
    ref = np.stack([markley_reference(m) for m in mats])
    ours *= np.sign((ours * ref).sum(1, keepdims=True))
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    rots = Rotation.random(1000, random_state=3).as_matrix()
    np.testing.assert_allclose(matrix_to_rotvec(torch.from_numpy(rots), 'markley').numpy(),
                               Rotation.from_matrix(rots).as_rotvec(), atol=1e-9)
    with pytest.raises(ValueError, match='rotation method'):
        matrix_to_rotvec(torch.from_numpy(rots), method='qr')


def test_projection_matches_cv2(rng):
    points = load_reference_points()
    poses = random_poses(rng, 20)
    ours = project_pose_points(torch.from_numpy(points).double(), poses, (H, W)).numpy()
    K = image_intrinsics((H, W)).numpy()
    np.testing.assert_allclose(K, [[W + H, 0, W // 2], [0, W + H, H // 2], [0, 0, 1]])
    for pose, proj in zip(poses.numpy(), ours):
        ref, _ = cv2.projectPoints(points.astype(np.float64), pose[:3], pose[3:], K, None)
        np.testing.assert_allclose(proj, ref[:, 0], atol=1e-7)


def test_epnp_recovers_known_pose(rng):
    points = load_reference_points().astype(np.float64)
    poses = random_poses(rng, 10, max_angle=0.6)
    landmarks = project_pose_points(torch.from_numpy(points), poses, (H, W)).numpy()
    est, valid = pose_from_landmarks(landmarks, points, (H, W))
    assert valid.all()
    err = rotation_angle_between(est[:, :3], poses[:, :3])
    assert err.max() < 1e-3
    np.testing.assert_allclose(est[:, 3:].numpy(), poses[:, 3:].numpy(), rtol=1e-3)
    # the "no pose" marker and the wrong number of points
    landmarks[3, 0] = -1
    _, valid = pose_from_landmarks(landmarks, points, (H, W))
    assert not valid[3] and valid.sum() == 9
    with pytest.raises(ValueError, match='do not match'):
        pose_from_landmarks(landmarks[:, :5], points, (H, W))


def test_euler_matches_scipy():
    rotvecs = Rotation.random(10000, random_state=5).as_rotvec()
    ours = pose_to_euler(torch.from_numpy(rotvecs)).numpy()
    mats = Rotation.from_rotvec(rotvecs).as_matrix().transpose(0, 2, 1)
    ref = Rotation.from_matrix(mats).as_euler('xyz', degrees=True)
    np.testing.assert_allclose(ours, np.stack([ref[:, 0], -ref[:, 1], -ref[:, 2]], 1),
                               atol=1e-6)


# ---------------------------------------------------------------------------- identities
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-5), (torch.float32, 2e-3)])
def test_global_local_round_trip(rng, dtype, tol):
    poses = random_poses(rng, 1000).to(dtype)
    boxes = random_boxes(rng, 1000).to(dtype)
    local = global_to_local(poses, boxes, (H, W))
    back = local_to_global(local, boxes, (H, W))
    torch.testing.assert_close(back, poses, atol=tol, rtol=tol)


def test_global_to_local_follows_the_spec_formula(rng):
    """t_l = K_b^-1 K t_g, t_l.z /= f / s, R_l = nearest(K_b^-1 K R_g) — with numpy/scipy."""
    poses = random_poses(rng, 50)
    boxes = random_boxes(rng, 50)
    ours = global_to_local(poses, boxes, (H, W)).numpy()
    K = image_intrinsics((H, W)).numpy()
    for pose, box, local in zip(poses.numpy(), boxes.numpy(), ours):
        Kb = K.copy()
        Kb[0, 2] = box[0] + (box[2] - box[0]) // 2
        Kb[1, 2] = box[1] + (box[3] - box[1]) // 2
        A = np.linalg.inv(Kb) @ K
        t = A @ pose[3:]
        t[2] /= K[0, 0] / ((box[2] - box[0]) + (box[3] - box[1]))
        rot = Rotation.from_matrix(A @ Rotation.from_rotvec(pose[:3]).as_matrix())
        np.testing.assert_allclose(local[3:], t, rtol=1e-10)
        np.testing.assert_allclose(Rotation.from_rotvec(local[:3]).as_matrix(),
                                   rot.as_matrix(), atol=1e-9)
    np.testing.assert_allclose(box_intrinsics(boxes, (H, W))[:, 0, 0].numpy(), W + H)


def test_markley_round_trip_translation_exact(rng):
    poses = random_poses(rng, 200)
    boxes = random_boxes(rng, 200)
    back = local_to_global(global_to_local(poses, boxes, (H, W), 'markley'), boxes, (H, W),
                           'markley')
    torch.testing.assert_close(back[:, 3:], poses[:, 3:], atol=1e-9, rtol=1e-9)


def test_isotropic_resize_keeps_projections(rng):
    points = torch.from_numpy(load_reference_points()).double()
    poses = random_poses(rng, 50)
    for scale in (0.5, 0.75, 1.6, 2.0):
        new_shape = (int(H * scale), int(W * scale))
        sx, sy = new_shape[1] / W, new_shape[0] / H
        before = project_pose_points(points, poses, (H, W)) * poses.new_tensor([sx, sy])
        # the same global pose under the new camera, up to the // rounding of the centre
        after = project_pose_points(points, poses, new_shape)
        assert (after - before).abs().max() <= 1.0
        # warp_pose makes it exact
        warped = warp_pose(poses, (H, W), new_shape, scale_translate_map((sx, sy)))
        exact = project_pose_points(points, warped, new_shape)
        assert (exact - before).abs().max() < 1e-6


@pytest.mark.parametrize('width', [640, 641])
def test_flip(rng, width):
    shape = (H, width)
    points = torch.from_numpy(load_reference_points()).double()
    poses = random_poses(rng, 50, max_angle=0.5)
    twice = flip_pose(flip_pose(poses, shape), shape)
    torch.testing.assert_close(twice, poses, atol=1e-12, rtol=0)
    proj = project_pose_points(points, poses, shape)
    mirrored = proj[:, mirror_permutation(68)]
    mirrored[..., 0] = width - mirrored[..., 0]
    flipped = project_pose_points(points, flip_pose(poses, shape), shape)
    face_size = (proj.amax(1) - proj.amin(1)).amax(-1)
    err = (flipped - mirrored).norm(dim=-1).amax(-1)
    assert (err < 0.01 * face_size).all()


def test_transform_and_project_shapes(rng):
    poses = random_poses(rng, 7).float()
    pts = torch.from_numpy(load_reference_points())
    cam = transform_points(pts, poses)
    assert cam.shape == (7, 68, 3)
    assert project_points(cam, image_intrinsics((H, W), cam)).shape == (7, 68, 2)
    assert project_points(cam, image_intrinsics(torch.tensor([[H, W]] * 7), cam)).shape == (7, 68, 2)


# ---------------------------------------------------------------------------- boxes
def _square_points(x1, y1, x2, y2):
    return torch.tensor([[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]], dtype=torch.float64)


# extent x 90..150 (range 60), y 65..165 (range 100), centre (120, 115):
# width int(60 * 1.1) = 66 -> x 87..153; height int(100 * 1.1) = 110 -> y 60..170;
# the forehead growth is 0.3 * range: 30 px vertically, 18 px horizontally.
@pytest.mark.parametrize('roll,expected', [
    (0.0, [87, 30, 153, 170]),      # top
    (0.99, [87, 30, 153, 170]),     # still top
    (3.0, [87, 60, 153, 200]),      # bottom (|rz| > 2.5)
    (-3.0, [87, 60, 153, 200]),
    (1.5, [87, 60, 171, 170]),      # right (rz > 1)
    (-1.5, [69, 60, 153, 170]),     # left (rz < -1)
])
def test_forehead_rule_by_hand(roll, expected):
    pts = _square_points(90, 65, 150, 165)
    box = points_to_bbox(pts, torch.tensor([roll], dtype=torch.float64), (300, 400))
    assert box[0].tolist() == expected


def test_box_truncation_and_clipping():
    pts = _square_points(-20.5, 10.25, 50.75, 30.5)   # extent 71.25 x 20.25
    box = points_to_bbox(pts, torch.tensor([0.0], dtype=torch.float64), (100, 40))
    # width int(78.375) = 78 around 15.125 -> -23.875..54.125 -> trunc -23, 54 -> clip 0, 40
    # height int(22.275) = 22 around 20.375 -> 9.375..31.375, top -6.075 -> 3.3 -> 3, 31
    assert box[0].tolist() == [0, 3, 40, 31]


def test_pose_to_bbox_covers_landmarks(rng):
    points = torch.from_numpy(load_reference_points()).double()
    poses = random_poses(rng, 100, max_angle=0.4, depth=(6, 12))
    boxes = pose_to_bbox(poses, points, (H, W), clip=False)
    proj = project_pose_points(points, poses, (H, W))
    assert (boxes[:, 0] <= proj[..., 0].amin(1) + 1).all()
    assert (boxes[:, 2] >= proj[..., 0].amax(1) - 1).all()
    assert (boxes[:, 1] <= proj[..., 1].amin(1) + 1).all()
    assert (boxes[:, 3] >= proj[..., 1].amax(1) - 1).all()
    assert (boxes == boxes.trunc()).all()
