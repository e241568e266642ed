"""User cameras and poses re-expressed in them, against an independent PnP fit."""
import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from img2pose_mm.structures import (
    camera_intrinsics,
    change_camera,
    image_intrinsics,
    load_reference_points,
    project_points,
    transform_points,
)

H, W = 480, 640
POINTS = load_reference_points().astype(np.float64)
CAMERAS = [np.array([[1500., 0, 250], [0, 1500, 300], [0, 0, 1]]),    # longer, off-centre
           np.array([[800., 0, 400], [0, 800, 200], [0, 0, 1]]),      # shorter, off-centre
           np.array([[1120., 0, 200], [0, 1120, 340], [0, 0, 1]]),    # principal point only
           np.array([[3000., 0, 320], [0, 3200, 240], [0, 0, 1]])]    # tele, fx != fy


def project(K, rotvec, trans, points=POINTS):
    """Pixels of ``points`` under a pose, with numpy and scipy only."""
    cam = points @ Rotation.from_rotvec(rotvec).as_matrix().T + trans
    pix = cam @ K.T
    return pix[:, :2] / pix[:, 2:]


def truth_and_default(K, rng, n=25):
    """Poses drawn in camera ``K`` and, for each, the pose in img2pose's camera ``K0``
    that puts the 68 points on the same pixels (cv2's iterative PnP, independent of the
    package)."""
    K0 = image_intrinsics((H, W)).numpy()
    truth, default = [], []
    for _ in range(n):
        rotvec = Rotation.from_euler('xyz', rng.uniform([-30, -70, -30], [30, 70, 30]),
                                     degrees=True).as_rotvec()
        depth = 2 * K[0, 0] / rng.uniform(60, 200)            # a face 60..200 px wide
        u, v = rng.uniform(100, W - 100), rng.uniform(100, H - 100)
        trans = np.array([(u - K[0, 2]) * depth / K[0, 0], (v - K[1, 2]) * depth / K[1, 1], depth])
        pixels = project(K, rotvec, trans)
        _, rv0, t0 = cv2.solvePnP(POINTS, pixels, K0, None, flags=cv2.SOLVEPNP_EPNP)
        _, rv0, t0 = cv2.solvePnP(POINTS, pixels, K0, None, rv0, t0, True,
                                  cv2.SOLVEPNP_ITERATIVE)
        truth.append(np.concatenate([rotvec, trans]))
        default.append(np.concatenate([rv0.ravel(), t0.ravel()]))
    return np.array(truth), np.array(default), K0


def geodesic_deg(a, b):
    return np.degrees((Rotation.from_rotvec(a).inv() * Rotation.from_rotvec(b)).magnitude())


def test_camera_intrinsics():
    K0 = image_intrinsics((H, W))
    torch.testing.assert_close(camera_intrinsics(None, (H, W)), K0)
    torch.testing.assert_close(camera_intrinsics(float(W + H), (H, W)), K0)
    K = camera_intrinsics(900, (H, W))
    assert K.tolist() == [[900, 0, 320], [0, 900, 240], [0, 0, 1]]
    assert camera_intrinsics(np.array(CAMERAS[0]), (H, W)).tolist() == CAMERAS[0].tolist()
    assert camera_intrinsics(torch.tensor(CAMERAS[3]), (H, W),
                             torch.zeros(0, dtype=torch.float32)).dtype == torch.float32
    for bad, message in [(-5.0, 'positive'), (float('nan'), 'positive'), ([1, 2], 'shape'),
                         (np.eye(3) * [0, 1, 1], 'positive focal'),
                         ([[500, 0, 1], [0, 500, 1], [0, 1, 1]], r'\[0, 0, 1\]'),
                         ([[500, 0, 1], [3, 500, 1], [0, 0, 1]], r'\[0, 0, 1\]'),
                         (np.full((3, 3), np.inf), 'finite'), ('wide', 'focal length')]:
        with pytest.raises(ValueError, match=message):
            camera_intrinsics(bad, (H, W))


@pytest.mark.parametrize('K', CAMERAS)
def test_change_camera_recovers_the_pose_in_that_camera(K):
    """A face seen by ``K`` and described in ``K0`` by its pixels comes back to its pose
    in ``K``: the closed form keeps the origin's pixel and scales the depth exactly, the
    refinement recovers the rotation to hundredths of a degree."""
    truth, default, K0 = truth_and_default(K, np.random.default_rng(0))
    points = torch.from_numpy(POINTS)
    closed = change_camera(torch.from_numpy(default), torch.from_numpy(K0), torch.from_numpy(K))
    refined = change_camera(torch.from_numpy(default), torch.from_numpy(K0), torch.from_numpy(K),
                            points).numpy()
    # closed form: origin pixel and depth scale exact
    origin_k = project_points(closed[:, None, 3:], torch.from_numpy(K))[:, 0]
    origin_0 = project_points(torch.from_numpy(default)[:, None, 3:], torch.from_numpy(K0))[:, 0]
    torch.testing.assert_close(origin_k, origin_0, atol=1e-9, rtol=0)
    ratio = np.sqrt(K[0, 0] * K[1, 1]) / K0[0, 0]
    np.testing.assert_allclose(closed[:, 5].numpy(), default[:, 5] * ratio, rtol=1e-12)
    closed_err = geodesic_deg(closed[:, :3].numpy(), truth[:, :3])
    refined_err = geodesic_deg(refined[:, :3], truth[:, :3])
    t_err = np.abs(refined[:, 3:] - truth[:, 3:]).max(1) / truth[:, 5]
    print(f'\nK f={K[0, 0]:g}/{K[1, 1]:g} c=({K[0, 2]:g}, {K[1, 2]:g}): rotation error closed '
          f'form max {closed_err.max():.3f} deg, refined max {refined_err.max():.4f} deg '
          f'(mean {refined_err.mean():.4f}); translation max {t_err.max():.2e} of the depth; '
          f'K0 pose vs truth {geodesic_deg(default[:, :3], truth[:, :3]).mean():.2f} deg mean')
    # non-square pixels (the last camera) are the hardest for a rigid face
    assert refined_err.max() < 0.25 and refined_err.mean() < 0.08
    assert closed_err.max() < 1.5
    assert t_err.max() < 3e-3
    # the refined pose puts the 68 points on the pixels of the K0 pose at least as well
    # as the true pose does (a rigid face cannot match them exactly in another camera)
    pixels_0 = project_points(transform_points(points, torch.from_numpy(default)),
                              torch.from_numpy(K0))

    def rms(poses):
        pixels = project_points(transform_points(points, torch.as_tensor(poses)),
                                torch.from_numpy(K))
        return (pixels - pixels_0).pow(2).sum(-1).mean(-1).sqrt()
    assert torch.all(rms(refined) <= rms(truth) + 1e-6)


def test_change_camera_identities():
    rng = np.random.default_rng(1)
    truth, default, K0 = truth_and_default(CAMERAS[0], rng, n=10)
    poses, K0 = torch.from_numpy(default), torch.from_numpy(K0)
    points = torch.from_numpy(POINTS)
    torch.testing.assert_close(change_camera(poses, K0, K0, points), poses, atol=1e-10, rtol=0)
    K = torch.from_numpy(CAMERAS[1])
    there = change_camera(poses, K0, K, points)
    back = change_camera(there, K, K0, points)
    assert geodesic_deg(back[:, :3].numpy(), default[:, :3]).max() < 0.02
    torch.testing.assert_close(back[:, 3:], poses[:, 3:], rtol=1e-3, atol=0)
    # float32 in, float32 out; per-face cameras; no faces
    out32 = change_camera(poses.float(), K0.float(), K.float().expand(10, 3, 3), points.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), there, atol=1e-4, rtol=1e-4)
    assert change_camera(torch.zeros(0, 6), K0, K, points).shape == (0, 6)
    with pytest.raises(ValueError, match=r'\(N, 6\)'):
        change_camera(torch.zeros(6), K0, K)
