"""What a face dict says, checked on renders with known poses: Euler angles, the 68
landmarks, poses in the user's camera, and poses for given boxes."""
import cv2
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from scipy.spatial.transform import Rotation

import Sim3DR
from img2pose_mm.apis import EULER_KEYS, FaceOutputs, faces_from_poses
from img2pose_mm.structures import (
    FaceModel,
    change_camera,
    euler_to_rotvec,
    image_intrinsics,
    load_reference_points,
    rotvec_to_euler,
)
from img2pose_mm.visualization import render_pose_meshes

from .conftest import scenes, synthetic_images

POINTS = load_reference_points().astype(np.float64)


def aflw_rotvecs(pitch, yaw, roll):
    """The author's recipe inverted with scipy: ``R.T = from_euler('xyz', [p, -y, -r])``."""
    angles = np.stack([pitch, -np.asarray(yaw), -np.asarray(roll)], -1)
    return Rotation.from_euler('xyz', angles, degrees=True).inv().as_rotvec()


def camera_pixels(rotvec, trans, K, points=POINTS):
    """Projection with numpy and scipy only."""
    cam = points @ Rotation.from_rotvec(rotvec).as_matrix().T + trans
    pix = cam @ np.asarray(K).T
    return pix[..., :2] / pix[..., 2:]


def rendered_marker_centres(pose, K, img_shape, radius_px=2.5):
    """Where Sim3DR draws a tiny octahedron around each of the 68 reference points
    (pixel centroid of its raster; projection with numpy/scipy, one marker at a time)."""
    h, w = img_shape
    radius = radius_px * pose[5] / K[0][0]
    offsets = np.concatenate([np.eye(3), -np.eye(3)]) * radius
    triangles = np.array([[a, b, c] for a in (0, 3) for b in (1, 4) for c in (2, 5)], np.int32)
    ys, xs = np.mgrid[0:h, 0:w]
    centres = []
    for point in POINTS:
        corners = point + offsets
        cam = corners @ Rotation.from_rotvec(pose[:3]).as_matrix().T + pose[3:]
        vertices = np.concatenate([camera_pixels(pose[:3], pose[3:], K, corners), cam[:, 2:]], 1)
        mask = Sim3DR.rasterize(vertices.astype(np.float32), triangles, h, w).mask
        assert mask.sum() >= 4, 'marker too small to locate'
        centres.append([xs[mask].mean(), ys[mask].mean()])
    return np.array(centres)


def place(rotvecs, img_shape, K, centres_px, face_px):
    """Poses with these rotations whose origins project to ``centres_px`` in camera ``K``
    and whose faces (about 2 units wide) are about ``face_px`` pixels wide."""
    K = np.asarray(K, dtype=np.float64)
    depth = 2.0 * K[0, 0] / np.asarray(face_px, dtype=np.float64)
    rays = np.linalg.solve(K, np.concatenate([centres_px, np.ones((len(centres_px), 1))], 1).T).T
    return np.concatenate([rotvecs, rays * depth[:, None]], 1)


# --------------------------------------------------------------------------- Euler, 68
def test_euler_angles_and_68_landmarks_on_renders(random_detector):
    """Faces rendered at known (pitch, yaw, roll) over the whole yaw range of 'aflw':
    ``face['euler']`` gives the generating angles back (1e-3 degrees), the round trip
    angles -> rotation vector -> angles is exact, and ``face['landmarks']`` lie on the
    rendered reference points (below 1 px)."""
    rng = np.random.default_rng(0)
    img_shape = (200, 240)
    K0 = image_intrinsics(img_shape).numpy()
    yaws = np.linspace(-89.5, 89.5, 11)
    pitch, roll = rng.uniform(-60, 60, (2, len(yaws)))
    rotvecs = aflw_rotvecs(pitch, yaws, roll)
    centres = rng.uniform([80, 70], [160, 130], (len(yaws), 2))
    poses = place(rotvecs, img_shape, K0, centres, rng.uniform(90, 130, len(yaws)))
    faces = random_detector.faces_from_poses(poses, np.linspace(1, 0.5, len(yaws)), img_shape,
                                             landmarks=68)
    assert [list(f) for f in faces] == [['box', 'confidence', 'pose', 'euler', 'keypoints',
                                         'landmarks']] * len(yaws)
    got = np.array([[f['euler'][k] for k in ('pitch', 'yaw', 'roll')] for f in faces])
    err = np.abs(got - np.stack([pitch, yaws, roll], 1)).max()
    # the whole range, pitch and roll included, without rendering
    n = 2000
    full = np.stack([rng.uniform(-179.9, 179.9, n), np.linspace(-89.99, 89.99, n),
                     rng.uniform(-179.9, 179.9, n)], 1)
    many = faces_from_poses(torch.from_numpy(place(aflw_rotvecs(*full.T), img_shape, K0,
                                                   np.full((n, 2), 100.0), np.full(n, 100.0))),
                            torch.ones(n), img_shape, FaceModel())
    got_full = np.array([[f['euler'][k] for k in ('pitch', 'yaw', 'roll')] for f in many])
    err_full = np.abs(got_full - full).max()
    back = rotvec_to_euler(euler_to_rotvec(torch.from_numpy(got_full)))
    round_trip = (back - torch.from_numpy(got_full)).abs().max().item()

    rendered = [rendered_marker_centres(pose, K0, img_shape) for pose in poses]
    px_err = max(np.linalg.norm(np.array(f['landmarks']) - r, axis=1).max()
                 for f, r in zip(faces, rendered))
    # the faces are drawn where the landmarks say (our renderer, the face mesh itself)
    image, face_map = render_pose_meshes(np.zeros(img_shape + (3,), np.uint8), poses[:1],
                                         color='texture', alpha=1.0, return_face_map=True)
    nose = np.round(faces[0]['landmarks'][30]).astype(int)
    print(f"\nEuler max error: renders {err:.2e} deg, full range {err_full:.2e} deg; round "
          f"trip {round_trip:.2e} deg; 68 landmarks vs rendered points max {px_err:.3f} px")
    assert err < 1e-3 and err_full < 1e-3 and round_trip < 1e-9
    assert px_err < 1.0
    assert face_map[nose[1], nose[0]] == 0 and image[face_map == 0].any()


def test_euler_conventions_and_keys(random_detector):
    img_shape = (128, 128)
    poses = place(aflw_rotvecs([10.0], [-35.0], [5.0]), img_shape, image_intrinsics(img_shape),
                  np.array([[64.0, 64.0]]), np.array([80.0]))
    face, = random_detector.faces_from_poses(poses, [0.9], img_shape, euler='ZYX')
    ref = Rotation.from_rotvec(poses[0, :3]).as_euler('ZYX', degrees=True)   # roll, yaw, pitch
    assert list(face['euler']) == list(EULER_KEYS)
    np.testing.assert_allclose([face['euler'][k] for k in ('roll', 'yaw', 'pitch')], ref,
                               atol=1e-9)
    face, = random_detector.faces_from_poses(poses, [0.9], img_shape, euler=None)
    assert 'euler' not in face and 'landmarks' not in face
    with pytest.raises(ValueError, match='unknown Euler convention'):
        FaceOutputs(euler='pyr')
    with pytest.raises(ValueError, match='landmarks must be None or 68'):
        FaceOutputs(landmarks=5)
    with pytest.raises(ValueError, match='focal'):
        FaceOutputs(camera=-3)


# --------------------------------------------------------------------------- camera
def geodesic_deg(a, b):
    return np.degrees((Rotation.from_rotvec(a).inv() * Rotation.from_rotvec(b)).magnitude())


def oracle_network(monkeypatch, detector, poses, img_shape):
    """Make the RoI head predict ``poses`` (global, network-input camera) for the given
    boxes, one per box: the encoding of the truth, so that every later step (decode,
    rescale, camera, Euler) runs for real on a perfect network."""
    head = detector.model.roi_head
    forward = head._bbox_forward

    def oracle(x, rois, *args, **kwargs):
        out = forward(x, rois, *args, **kwargs)
        target = torch.as_tensor(poses, dtype=torch.float64)
        out['bbox_pred'] = head.bbox_head.bbox_coder.encode(
            rois[:, 1:].double(), target, img_shape).to(out['bbox_pred'])
        return out
    monkeypatch.setattr(head, '_bbox_forward', oracle)


@pytest.fixture(scope='module')
def camera_scene():
    """Two faces rendered by a camera ``K`` unlike img2pose's (focal 420 instead of 288,
    principal point (92, 58) instead of (80, 64)), their true poses in ``K``, their
    boxes, and the default camera's truth: the ``K0`` poses whose 68 points fall on the
    same pixels (cv2's iterative PnP)."""
    img_shape = (128, 160)
    K = np.array([[420.0, 0, 92.0], [0, 420.0, 58.0], [0, 0, 1]])
    K0 = image_intrinsics(img_shape).numpy()
    rng = np.random.default_rng(3)
    background = scenes.random_background(rng, *img_shape, scenes.load_backgrounds())
    truth = place(aflw_rotvecs([-10.0, 12.0], [25.0, -40.0], [8.0, -5.0]), img_shape, K,
                  np.array([[58.0, 66.0], [112.0, 60.0]]), np.array([62.0, 56.0]))
    image = render_pose_meshes(background, truth, color='texture', alpha=1.0, intrinsics=K)
    pixels = np.stack([camera_pixels(p[:3], p[3:], K) for p in truth])
    boxes = FaceModel().points_to_bbox(torch.from_numpy(pixels), torch.from_numpy(truth[:, 2]),
                                       img_shape).numpy()
    truth0 = []
    for px in pixels:
        _, rv, t = cv2.solvePnP(POINTS, px, K0, None, flags=cv2.SOLVEPNP_EPNP)
        _, rv, t = cv2.solvePnP(POINTS, px, K0, None, rv, t, True, cv2.SOLVEPNP_ITERATIVE)
        truth0.append(np.concatenate([rv.ravel(), t.ravel()]))
    return image, K, K0, truth, np.array(truth0), boxes


def camera_errors(det, scene):
    """Rotation (degrees) and relative translation errors of ``estimate_poses`` in the
    default camera (against the default truth) and with ``camera=K`` (against the truth in
    ``K``), and the faces of both."""
    image, K, _, truth, truth0, boxes = scene
    default = det.estimate_poses(image, boxes, landmarks=68)
    in_k = det.estimate_poses(image, boxes, landmarks=68, camera=K)
    pose0 = np.array([f['pose'] for f in default])
    pose_k = np.array([f['pose'] for f in in_k])

    def t_err(a, b):
        return np.linalg.norm(a[:, 3:] - b[:, 3:], axis=1) / np.linalg.norm(b[:, 3:], axis=1)
    return (geodesic_deg(pose0[:, :3], truth0[:, :3]), geodesic_deg(pose_k[:, :3], truth[:, :3]),
            t_err(pose0, truth0), t_err(pose_k, truth), default, in_k)


@pytest.mark.parametrize('error_deg', [0.0, 5.0, 10.0])
def test_camera_gives_the_pose_in_that_camera(random_detector, camera_scene, monkeypatch,
                                              error_deg):
    """A face rendered by a camera ``K`` and estimated with ``camera=K`` gets its pose in
    ``K``: a network that is right (or off by ``error_deg``) in its own camera is right
    (off by the same angle) in ``K``, and the translation projects where the face is."""
    image, K, K0, truth, truth0, boxes = camera_scene
    img_shape = image.shape[:2]
    axes = np.array([[0.3, -0.8, 0.5], [-0.6, 0.2, 0.77]])
    turn = axes / np.linalg.norm(axes, axis=1, keepdims=True) * np.deg2rad(error_deg)
    predicted = truth0.copy()
    predicted[:, :3] = (Rotation.from_rotvec(turn) * Rotation.from_rotvec(truth0[:, :3])).as_rotvec()
    oracle_network(monkeypatch, random_detector, predicted, img_shape)
    err0, err_k, t_err0, t_err_k, default, in_k = camera_errors(random_detector, camera_scene)
    pose_k = np.array([f['pose'] for f in in_k])
    reproj = np.stack([camera_pixels(p[:3], p[3:], K) for p in pose_k])
    rms = np.sqrt(((reproj - np.array([f['landmarks'] for f in in_k])) ** 2).sum(-1).mean(-1))
    print(f'\ncamera f=420 c=(92, 58) (K0: f=288 c=(80, 64)), network off by {error_deg:g} deg: '
          f'geodesic error default camera {np.round(err0, 3).tolist()} deg, camera=K '
          f'{np.round(err_k, 3).tolist()} deg; translation error {np.round(t_err0, 5).tolist()}'
          f' / {np.round(t_err_k, 5).tolist()}; landmark reprojection rms in K '
          f'{np.round(rms, 3).tolist()} px')
    np.testing.assert_allclose(err0, error_deg, atol=1e-3)       # the decode is exact
    np.testing.assert_allclose(err_k, err0, atol=0.15)
    np.testing.assert_allclose(t_err_k, t_err0, atol=2e-3)
    assert rms.max() < 0.5
    for a, b in zip(default, in_k):                                 # pixels do not change
        assert a['box'] == b['box'] and a['keypoints'] == b['keypoints']
        assert a['landmarks'] == b['landmarks'] and a['confidence'] == b['confidence']
    # Euler angles are read from the pose in K
    np.testing.assert_allclose([[f['euler'][k] for k in ('pitch', 'yaw', 'roll')] for f in in_k],
                               rotvec_to_euler(torch.from_numpy(pose_k[:, :3])).numpy(),
                               atol=1e-9)


def test_camera_with_the_real_network(random_detector, camera_scene):
    """The same render through the (random-weights) network: pixels unchanged, the error in
    ``K`` close to the error in the default camera (within 0.2 deg + 3 %), a focal of
    ``w + h`` is the default camera, and detection follows the same rule."""
    det = random_detector
    image, K, K0, truth, truth0, boxes = camera_scene
    err0, err_k, t_err0, t_err_k, default, in_k = camera_errors(det, camera_scene)
    print(f'\nrandom-weights network: geodesic error default camera {np.round(err0, 3).tolist()}'
          f' deg, camera=K {np.round(err_k, 3).tolist()} deg')
    assert np.all(np.abs(err_k - err0) <= 0.2 + 0.03 * err0)
    same = det.estimate_poses(image, boxes, camera=float(sum(image.shape[:2])))
    np.testing.assert_allclose([f['pose'] for f in same], [f['pose'] for f in default], atol=1e-9)
    found = det.detect_faces(image)[:5]
    found_k = det.detect_faces(image, camera=K)[:5]
    assert [f['box'] for f in found] == [f['box'] for f in found_k]
    expected = change_camera(torch.tensor([f['pose'] for f in found], dtype=torch.float64),
                             torch.from_numpy(K0), torch.from_numpy(K), torch.from_numpy(POINTS))
    np.testing.assert_allclose([f['pose'] for f in found_k], expected.numpy(), atol=1e-6)
    old = det.outputs
    try:
        det.outputs = det.outputs.replace(camera=K)
        assert det.detect_faces(image)[:5] == found_k
    finally:
        det.outputs = old


# --------------------------------------------------------------------------- given boxes
@pytest.fixture(scope='module')
def scene():
    image, ann = synthetic_images(1, seed=21, faces=(2, 3))[0]
    return image, np.array(ann['bboxes'], dtype=np.float64)


def test_estimate_poses_one_face_per_box(random_detector, scene):
    det = random_detector
    image, gt_boxes = scene
    h, w = image.shape[:2]
    assert det.estimate_poses(image, []) == [] == det.estimate_poses(image, np.zeros((0, 4)))
    one = det.estimate_poses(image, gt_boxes[0])
    assert len(one) == 1 and list(one[0]) == ['box', 'confidence', 'pose', 'euler', 'keypoints']
    boxes = np.concatenate([gt_boxes, gt_boxes[:1], gt_boxes + 7, [[w - 20, h - 30, w + 25, h + 9]],
                            [[2.0, 3.0, 4.0, 6.0]]])
    many = det.estimate_poses(image, boxes)
    assert len(many) == len(boxes)
    assert many[0] == many[len(gt_boxes)]                      # duplicates: no NMS between them
    np.testing.assert_allclose(many[0]['pose'], one[0]['pose'], atol=1e-5)
    reverse = det.estimate_poses(image, boxes[::-1])
    np.testing.assert_allclose([f['pose'] for f in reverse[::-1]], [f['pose'] for f in many],
                               atol=1e-4, rtol=1e-4)
    # a box partly outside is its part inside the image; a score column is ignored
    clipped = det.estimate_poses(image, [[w - 20, h - 30, w, h]])
    np.testing.assert_allclose(many[-2]['pose'], clipped[0]['pose'], atol=1e-5)
    scored = det.estimate_poses(image, np.concatenate([boxes, np.ones((len(boxes), 1))], 1))
    np.testing.assert_allclose([f['pose'] for f in scored], [f['pose'] for f in many], atol=1e-5)
    # the threshold and the face cap of detection do not apply
    old = det.score_threshold, det.max_faces
    try:
        det.score_threshold, det.max_faces = 0.999, 1
        assert len(det.estimate_poses(image, boxes)) == len(boxes)
    finally:
        det.score_threshold, det.max_faces = old
    for bad, message in [([[10, 10, 10, 30]], r'boxes \[0\] are degenerate'),
                         ([[0, 0, 5, 5], [30, 40, 20, 50]], r'boxes \[1\] are degenerate'),
                         ([[w + 1, 0, w + 30, 20]], r'boxes \[0\] lie outside the 128x128'),
                         ([[-40, -40, -1, 5]], 'lie outside'),
                         ([[0, 0, np.nan, 5]], r'boxes \[0\] are not finite'),
                         ([[1, 2, 3]], r'\(N, 4\)'), ('box', 'numbers')]:
        with pytest.raises(ValueError, match=message):
            det.estimate_poses(image, bad)


def test_estimate_poses_equals_the_detector_on_its_proposals(random_detector, scene):
    """Given the RPN's own proposals, every detection's pose, score and box is one of the
    results (the detector's only extra steps are the score filter and NMS)."""
    det = random_detector
    image, _ = scene
    model = det.model
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate(
            [det.pipeline(dict(img=np.ascontiguousarray(image[..., ::-1]), img_id=0))]), False)
        feats = model.extract_feat(data['inputs'])
        proposals = model.rpn_head.predict(feats, data['data_samples'], rescale=False)[0]
    scale = np.array(data['data_samples'][0].metainfo['scale_factor'] * 2)
    given = proposals.bboxes.double().numpy() / scale
    faces = det.estimate_poses(image, given)
    detected = det.detect_faces(image)
    assert len(faces) == len(given) >= len(detected) > 0
    poses = np.array([f['pose'] for f in faces])
    matched = 0
    for face in detected:
        row = np.abs(poses - face['pose']).max(1).argmin()
        np.testing.assert_allclose(faces[row]['pose'], face['pose'], atol=1e-5, rtol=1e-5)
        assert faces[row]['confidence'] == pytest.approx(face['confidence'], abs=1e-6)
        np.testing.assert_allclose(faces[row]['box'], face['box'], atol=1e-3)
        matched += 1
    print(f'\nestimate_poses on the detector\'s {len(given)} proposals: all {matched} '
          f'detections found with equal pose, score and box')
