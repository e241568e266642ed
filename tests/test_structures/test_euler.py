"""Euler conventions against scipy (the oracle) and their round trips."""
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from img2pose_mm.structures import (
    EULER_CONVENTIONS,
    TAIT_BRYAN_ORDERS,
    euler_names,
    euler_to_rotvec,
    load_reference_points,
    pose_to_euler,
    rotvec_to_euler,
    transform_points,
)


def aflw_reference(rotvecs):
    """The author's recipe: Euler 'xyz' of the transposed matrix, yaw and roll negated."""
    mats = Rotation.from_rotvec(rotvecs).as_matrix().transpose(0, 2, 1)
    e = Rotation.from_matrix(mats).as_euler('xyz', degrees=True)
    return np.stack([e[:, 0], -e[:, 1], -e[:, 2]], 1)


def aflw_rotvecs(pitch, yaw, roll):
    """Rotation vectors of (pitch, yaw, roll) built with scipy from the recipe."""
    angles = np.stack([pitch, -np.asarray(yaw), -np.asarray(roll)], -1)
    return Rotation.from_euler('xyz', angles, degrees=True).inv().as_rotvec()


@pytest.mark.parametrize('order', TAIT_BRYAN_ORDERS)
def test_tait_bryan_orders_match_scipy(order):
    rotvecs = Rotation.random(3000, random_state=1).as_rotvec()
    ours = rotvec_to_euler(torch.from_numpy(rotvecs), order).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(rotvecs).as_euler(order, degrees=True),
                               atol=1e-9)
    radians = rotvec_to_euler(torch.from_numpy(rotvecs), order, degrees=False).numpy()
    np.testing.assert_allclose(radians, np.deg2rad(ours), atol=1e-12)
    # the inverse against scipy's from_euler
    back = euler_to_rotvec(torch.from_numpy(ours), order).numpy()
    ref = Rotation.from_euler(order, ours, degrees=True)
    assert (Rotation.from_rotvec(back).inv() * ref).magnitude().max() < 1e-12


def test_aflw_matches_the_papers_recipe():
    rotvecs = Rotation.random(5000, random_state=2).as_rotvec()
    ours = rotvec_to_euler(torch.from_numpy(rotvecs)).numpy()
    np.testing.assert_allclose(ours, aflw_reference(rotvecs), atol=1e-9)
    # and it is the intrinsic XYZ angles with the pitch negated (docs/conventions.md)
    xyz = Rotation.from_rotvec(rotvecs).as_euler('XYZ', degrees=True)
    np.testing.assert_allclose(ours, xyz * [-1, 1, 1], atol=1e-9)
    # the old names are the 'aflw' convention
    np.testing.assert_array_equal(pose_to_euler(torch.from_numpy(rotvecs)).numpy(), ours)
    poses = torch.cat([torch.from_numpy(rotvecs), torch.ones(len(rotvecs), 3)], 1)
    np.testing.assert_array_equal(pose_to_euler(poses).numpy(), ours)


@pytest.mark.parametrize('convention', EULER_CONVENTIONS)
def test_round_trip_is_exact(convention):
    """Angles inside the convention's ranges -> rotation vector -> the same angles."""
    rng = np.random.default_rng(3)
    n = 4000
    outer = rng.uniform(-179.99, 179.99, (n, 2))
    middle = np.concatenate([np.linspace(-89.999, 89.999, 200), rng.uniform(-90, 90, n - 200)])
    middle = np.clip(middle, -89.999, 89.999)
    angles = torch.from_numpy(np.stack([outer[:, 0], middle, outer[:, 1]], 1))
    back = rotvec_to_euler(euler_to_rotvec(angles, convention), convention)
    torch.testing.assert_close(back, angles, atol=1e-9, rtol=0)


@pytest.mark.parametrize('convention', ['aflw', 'xyz', 'ZYX', 'yzx'])
def test_gimbal_lock(convention):
    """At +-90 degrees of the middle angle the third is 0 (scipy's choice) and the angles
    still give the same rotation."""
    angles = torch.tensor([[35.0, 90.0, 0.0], [-120.0, -90.0, 0.0], [10.0, 90.0, 25.0]],
                          dtype=torch.float64)
    rotvecs = euler_to_rotvec(angles, convention)
    read = rotvec_to_euler(rotvecs, convention)
    assert torch.all(read[:, 2] == 0)
    torch.testing.assert_close(read[:, 1].abs(), torch.full((3,), 90.0, dtype=torch.float64))
    again = euler_to_rotvec(read, convention)
    rel = Rotation.from_rotvec(again.numpy()).inv() * Rotation.from_rotvec(rotvecs.numpy())
    assert rel.magnitude().max() < 1e-6
    if convention != 'aflw':
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')      # scipy warns about the lock
            ref = Rotation.from_rotvec(rotvecs.numpy()).as_euler(convention, degrees=True)
        np.testing.assert_allclose(read.numpy(), ref, atol=1e-6)


def test_aflw_signs_in_the_image():
    """Positive yaw moves the nose to the image's left, positive pitch moves it up (the
    chin rises), positive roll turns the head clockwise in the image."""
    points = torch.from_numpy(load_reference_points()).double()
    nose, chin, brow = 30, 8, 27           # iBUG: nose tip, chin, between the eyebrows
    angles = torch.tensor([[0, 30, 0], [30, 0, 0], [0, 0, 30]], dtype=torch.float64)
    poses = torch.cat([euler_to_rotvec(angles), torch.tensor([[0, 0, 10.]] * 3)], 1)
    cam = transform_points(points, poses)
    front = transform_points(points, torch.tensor([[0, 0, 0, 0, 0, 10.]], dtype=torch.float64))[0]
    yaw, pitch, roll = cam
    assert yaw[nose, 0] < front[nose, 0] - 0.2                        # nose moves left
    assert pitch[nose, 1] < front[nose, 1] - 0.2                      # nose moves up
    assert pitch[chin, 2] < front[chin, 2]                            # chin comes forward
    up = roll[brow, :2] - roll[chin, :2]                              # chin -> brow
    assert up[0] > 0 and up[1] < 0                                    # leans to the right


def test_names_and_errors():
    assert euler_names() == ('pitch', 'yaw', 'roll')
    assert euler_names('ZYX') == ('roll', 'yaw', 'pitch')
    assert euler_names('xzy') == ('pitch', 'roll', 'yaw')
    with pytest.raises(ValueError, match='unknown Euler convention'):
        rotvec_to_euler(torch.zeros(1, 3), 'zxz')
    with pytest.raises(ValueError, match=r'\(\.\.\., 3\)'):
        rotvec_to_euler(torch.zeros(2, 6))
    with pytest.raises(ValueError, match=r'\(\.\.\., 3\)'):
        euler_to_rotvec(torch.zeros(2, 4))
    # any batch shape, float32, integer degrees
    out = rotvec_to_euler(torch.zeros(2, 5, 3, dtype=torch.float32))
    assert out.shape == (2, 5, 3) and out.dtype == torch.float32
    assert euler_to_rotvec(torch.tensor([0, 90, 0])).dtype == torch.float64
