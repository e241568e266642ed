"""Face alignment: Umeyama, the multi-pose templates, warping, a missing cv2."""
import sys

import numpy as np
import pytest
import torch

from img2pose_mm.apis import (
    FRONTAL_TEMPLATE,
    TEMPLATE_NAMES,
    TEMPLATE_YAWS,
    align_faces,
    alignment_templates,
    derive_templates,
    estimate_alignment,
    keypoints_from_faces,
    keypoints_to_dict,
    pose_keypoints,
    umeyama,
)
from img2pose_mm.structures import pose_to_euler
from img2pose_mm.visualization.draw import pose_face_map

from .conftest import camera_rotation, pose_at, render


def random_similarity(rng, dim=2):
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return rng.uniform(0.3, 3.0), q, rng.normal(size=dim) * 10


def test_umeyama_recovers_similarities_batched(rng):
    src = rng.normal(size=(6, 5, 2)) * 20
    truth = [random_similarity(rng) for _ in range(6)]
    dst = np.stack([s * p @ r.T + t for p, (s, r, t) in zip(src, truth)])
    transforms, residuals = umeyama(src, dst)
    assert transforms.shape == (6, 3, 3) and residuals.shape == (6,)
    for m, (s, r, t) in zip(transforms, truth):
        np.testing.assert_allclose(m[:2, :2], s * r, atol=1e-9)
        np.testing.assert_allclose(m[:2, 2], t, atol=1e-8)
    np.testing.assert_allclose(residuals, 0, atol=1e-8)
    # broadcasting: every source against every target, 3D as well
    all_pairs, res = umeyama(src[:, None], dst[None])
    assert all_pairs.shape == (6, 6, 3, 3)
    np.testing.assert_allclose(np.diagonal(res), 0, atol=1e-8)
    assert (res[~np.eye(6, dtype=bool)] > 1).all()
    s, r, t = random_similarity(rng, 3)
    pts = rng.normal(size=(7, 3))
    m, res3 = umeyama(pts, s * pts @ r.T + t)
    np.testing.assert_allclose(m[:3, :3], s * r, atol=1e-9)
    assert res3 < 1e-9


def test_umeyama_is_least_squares_without_reflection(rng):
    src = rng.normal(size=(5, 2))
    mirrored = src * [-1, 1]
    m, res = umeyama(src, mirrored)
    assert np.linalg.det(m[:2, :2]) > 0 and res > 0.1
    # no similarity does better: random perturbations of the optimum only increase the error
    noisy = src @ np.array([[0.9, -0.3], [0.3, 0.9]]) + rng.normal(size=(5, 2)) * 0.2
    m, res = umeyama(src, noisy)
    for _ in range(50):
        p = m + np.pad(rng.normal(size=(2, 3)) * 1e-2, ((0, 1), (0, 0)))
        a, b = p[0, 0], p[1, 0]     # keep it a similarity
        p[:2, :2] = [[a, -b], [b, a]]
        mapped = src @ p[:2, :2].T + p[:2, 2]
        assert np.sqrt(((mapped - noisy) ** 2).sum(-1).mean()) >= res - 1e-12
    # degenerate source
    _, res = umeyama(np.ones((5, 2)), noisy)
    assert np.isnan(res)


def test_templates():
    templates = alignment_templates(112)
    assert templates.shape == (5, 5, 2)
    np.testing.assert_allclose(templates[TEMPLATE_NAMES.index('frontal')], FRONTAL_TEMPLATE)
    np.testing.assert_allclose(alignment_templates(224), templates * 2)
    # (width, height): scaled by the short side and centred
    wide = alignment_templates((160, 112))
    np.testing.assert_allclose(wide, templates + [24, 0])
    derived, pitch = derive_templates()
    np.testing.assert_allclose(derived, templates)
    assert 5 < abs(pitch) < 15
    # mirror pairs: x -> 112 - x with left/right points swapped
    swap = [1, 0, 2, 4, 3]
    for a, b in ((0, 4), (1, 3)):
        np.testing.assert_allclose(templates[a][swap] * [-1, 1] + [112, 0], templates[b],
                                   atol=1e-9)
    nose_x = templates[:, 2, 0]
    assert nose_x[0] < nose_x[1] < nose_x[2] < nose_x[3] < nose_x[4]   # left ... right
    # eyes stay level; turned templates narrow the eye distance
    np.testing.assert_allclose(templates[:, 0, 1], templates[:, 1, 1], atol=1e-9)
    eye_dist = templates[:, 1, 0] - templates[:, 0, 0]
    assert eye_dist[0] < eye_dist[1] < eye_dist[2] and eye_dist[4] < eye_dist[3] < eye_dist[2]
    assert TEMPLATE_YAWS[TEMPLATE_NAMES.index('frontal')] == 0


@pytest.mark.parametrize('template_index', range(5))
def test_alignment_of_rendered_face_lands_on_template(template_index, rng):
    """Acceptance: a face rendered at a template's pose (plus roll, position and size)
    is aligned onto that template within 1.5 px at 112 and 224, in the crop itself."""
    # a long focal length (f = w + h = 1400 px) for faces of 100-130 px: weak perspective,
    # the model the templates are made with (nearer faces deviate by parallax)
    img_shape = (600, 800)
    _, pitch = derive_templates()
    roll = float(rng.uniform(-25, 25))
    rotvec = camera_rotation(pitch, TEMPLATE_YAWS[template_index], roll)
    centre = (img_shape[1] / 2 + rng.uniform(-12, 12), img_shape[0] / 2 + rng.uniform(-12, 12))
    pose = pose_at(rotvec, img_shape, centre, face_px=float(rng.uniform(100, 130)))
    image = render(pose[None], img_shape, seed=template_index)
    keypoints = pose_keypoints(pose[None], img_shape)               # exact GT keypoints
    face = {'keypoints': keypoints_to_dict(keypoints[0])}
    for size in (112, 224):
        crops, alignment = align_faces(image, [face], size, return_alignment=True)
        assert crops.shape == (1, size, size, 3) and crops.dtype == np.uint8
        assert TEMPLATE_NAMES[alignment.templates[0]] == TEMPLATE_NAMES[template_index]
        target = alignment_templates(size)[template_index]
        mapped = keypoints[0] @ alignment.matrices[0][:, :2].T + alignment.matrices[0][:, 2]
        assert np.linalg.norm(mapped - target, axis=1).max() < 1.5
        # the crop really shows the face there: warp bright dots drawn at the keypoints
        # with the same faces and find them in the crop
        found = warped_marker_centres(image.shape, keypoints[0], face, size)
        assert np.linalg.norm(found - target, axis=1).max() < 1.5, (found, target)
        # and the crop shows the rendered face at every template point
        face_mask = (pose_face_map(pose[None], img_shape) >= 0).astype(np.uint8) * 255
        mask_crop = align_faces(face_mask[..., None].repeat(3, -1), [face], size)[0, ..., 0]
        at_points = mask_crop[np.round(target[:, 1]).astype(int), np.round(target[:, 0]).astype(int)]
        assert (at_points == 255).all()


def warped_marker_centres(shape, keypoints, face, size):
    """Centroids in the aligned crop of Gaussian dots drawn at ``keypoints``."""
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    centres = []
    for group in ((0, 1, 2), (3, 4)):
        marker = np.zeros((h, w, 3), np.uint8)
        for channel, k in enumerate(group):
            x, y = keypoints[k]
            blob = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.5 ** 2))
            marker[..., channel] = np.round(255 * blob).astype(np.uint8)
        crop = align_faces(marker, [face], size)[0].astype(np.float64)
        cy, cx = np.mgrid[0:size, 0:size]
        for channel in range(len(group)):
            weight = crop[..., channel]
            centres.append([(weight * cx).sum() / weight.sum(), (weight * cy).sum() / weight.sum()])
    return np.array(centres)


def test_alignment_picks_template_by_yaw_and_any_size(rng):
    img_shape = (240, 320)
    _, pitch = derive_templates()
    yaws = np.array([-75, -50, -20, -5, 8, 22, 48, 80], np.float64)
    poses = torch.stack([pose_at(camera_rotation(pitch, y, rng.uniform(-10, 10)), img_shape,
                                 (160, 120), 100) for y in yaws])
    kps = pose_keypoints(poses, img_shape)
    names = [TEMPLATE_NAMES[i] for i in estimate_alignment(kps).templates]
    assert names == ['right_profile', 'right_profile', 'right', 'frontal', 'frontal', 'left',
                     'left_profile', 'left_profile']
    # Euler yaw of the posed faces has the same sign convention as TEMPLATE_YAWS
    assert np.sign(pose_to_euler(poses)[:, 1].numpy()).tolist() == np.sign(yaws).tolist()
    image = np.zeros((*img_shape, 3), np.uint8)
    for size in (50, 96, 300, (96, 128)):
        crops = align_faces(image, kps, size)
        w, h = (size, size) if isinstance(size, int) else size
        assert crops.shape == (len(yaws), h, w, 3)
    fixed = estimate_alignment(kps, 112, template='frontal')
    assert (fixed.templates == TEMPLATE_NAMES.index('frontal')).all()
    assert (fixed.residuals >= estimate_alignment(kps, 112).residuals - 1e-12).all()
    # float and single-channel images warp too; no faces gives an empty batch
    assert align_faces(image[..., 0].astype(np.float32), kps[:1], 64).shape == (1, 64, 64)
    assert align_faces(image, np.zeros((0, 5, 2)), 64).shape == (0, 64, 64, 3)


def test_keypoints_from_faces_forms():
    img_shape = (240, 320)
    pose = pose_at(camera_rotation(0, 20, 5), img_shape, (150, 110), 90)
    kps = pose_keypoints(pose[None], img_shape)
    np.testing.assert_allclose(keypoints_from_faces([{'pose': pose.tolist()}], img_shape), kps)
    np.testing.assert_allclose(keypoints_from_faces({'keypoints': kps[0]}), kps)
    np.testing.assert_allclose(keypoints_from_faces(kps[0]), kps)
    with pytest.raises(ValueError, match='faces\\[0\\]'):
        keypoints_from_faces([{'box': [0, 0, 1, 1]}])
    with pytest.raises(ValueError, match='lack'):
        keypoints_from_faces([{'keypoints': {'nose': [1, 2]}}])
    with pytest.raises(ValueError, match='faces \\[1\\]'):
        estimate_alignment(np.stack([kps[0], np.full((5, 2), np.nan)]))
    with pytest.raises(ValueError, match='template'):
        estimate_alignment(kps, template='sideways')


def test_missing_opencv_says_how_to_install_it(monkeypatch):
    kps = np.array([[[40., 50.], [70., 50.], [55., 68.], [43., 85.], [68., 85.]]])
    monkeypatch.setitem(sys.modules, 'cv2', None)      # import cv2 -> ImportError
    with pytest.raises(ImportError, match=r'pip install opencv-python'):
        align_faces(np.zeros((100, 100, 3), np.uint8), kps, 112)
    # the geometry alone does not need OpenCV
    assert estimate_alignment(kps).matrices.shape == (1, 2, 3)
