"""Steady video: IoU tracking of faces and One-Euro smoothing of their poses."""
import json

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from img2pose_mm.apis import FaceTracker, OneEuro, PoseFilterState, one_euro_step
from img2pose_mm.structures import FaceModel, rotation_angle_between

from .conftest import CONFIG, REPO, synthetic_images
from .test_tools import FAST_OPTIONS, load_script

FPS = 30.0
IMG_SHAPE = (240, 320)


def moving_faces(num_frames):
    """Global poses ``(F, 3, 6)`` of three faces moving and turning over the frames, and
    the frames in which each face is in the scene (``(F, 3)`` bool)."""
    t = np.arange(num_frames)[:, None]
    starts = np.array([[-0.2, 0.3, 0.0, -3.0, -1.0, 20.0],
                       [0.1, -0.5, 0.1, 2.5, 1.5, 24.0],
                       [0.0, 0.0, -0.2, 0.0, -2.5, 18.0]])
    speeds = np.array([[0.0, 0.02, 0.0, 0.12, 0.02, 0.0],      # right, turning
                       [0.01, 0.0, -0.01, -0.10, 0.03, 0.1],   # left, down, away
                       [0.0, -0.03, 0.0, 0.05, 0.04, -0.05]])  # enters late, approaches
    poses = starts[None] + speeds[None] * t[..., None]
    present = np.ones((num_frames, 3), dtype=bool)
    present[:10, 2] = False                                     # face 2 enters at frame 10
    return poses, present


def test_tracker_keeps_ids_through_a_video_with_a_dropped_frame():
    """Three moving faces (one entering late), detections shuffled and jittered, frame 12
    dropped from the stream, face 1 missed in frames 20-21: every face keeps one id; a
    face gone for longer than ``max_age`` comes back with a new one."""
    rng = np.random.default_rng(0)
    num_frames = 36
    poses, present = moving_faces(num_frames)
    face_model = FaceModel()
    boxes = face_model.pose_to_bbox(torch.from_numpy(poses.reshape(-1, 6)), IMG_SHAPE,
                                    clip=False).numpy().reshape(num_frames, 3, 4)
    present[20:22, 1] = False                                   # missed detections
    present[27:, 2] = False                                     # face 2 leaves at 27 ...
    late_return = 34                                            # ... and is back at 34
    present[late_return:, 2] = True
    tracker = FaceTracker(max_age=5)
    ids = {0: set(), 1: set(), 2: set()}
    returned_ids = set()
    for frame in range(num_frames):
        if frame == 12:
            continue                                            # a dropped frame
        faces = np.flatnonzero(present[frame])
        order = rng.permutation(faces)
        detected = boxes[frame, order] + rng.uniform(-1, 1, (len(order), 4))
        update = tracker.update(detected, poses[frame, order], timestamp=frame / FPS)
        assert update.ids.shape == (len(order),) and len(set(update.ids.tolist())) == len(order)
        for face, track_id in zip(order, update.ids.tolist()):
            (returned_ids if face == 2 and frame >= late_return else ids[face]).add(track_id)
    print(f'\ntrack ids per face: {ids}, face 2 after {late_return - 27} frames away: '
          f'{returned_ids}')
    assert [len(v) for v in ids.values()] == [1, 1, 1]
    assert ids[0] | ids[1] == {0, 1} and ids[2] == {2}
    assert returned_ids == {3}                      # gone longer than max_age: a new track
    assert len(tracker) == 3


def test_tracker_inputs():
    tracker = FaceTracker(smooth=True)
    with pytest.raises(ValueError, match='needs the poses'):
        tracker.update([[0, 0, 10, 10]])
    with pytest.raises(ValueError, match='1 boxes but 2 poses'):
        tracker.update([[0, 0, 10, 10]], np.zeros((2, 6)))
    first = tracker.update([[0, 0, 10, 10]], [[0, 0, 0, 0, 0, 5.0]])
    assert first.ids.tolist() == [0]
    assert tracker.update(np.zeros((0, 4)), np.zeros((0, 6))).ids.shape == (0,)
    with pytest.raises(ValueError, match='timestamps must increase'):
        tracker.update([[0, 0, 10, 10]], [[0, 0, 0, 0, 0, 5.0]], timestamp=0.0)
    with pytest.raises(ValueError, match='min_cutoff'):
        OneEuro(min_cutoff=0)
    with pytest.raises(ValueError, match='iou_threshold'):
        FaceTracker(iou_threshold=0)


def smooth_sequence(poses, **kwargs):
    """Smoothed poses ``(F, 6)`` of one face tracked over ``poses`` ``(F, 6)``."""
    tracker = FaceTracker(smooth=True, **kwargs)
    box = [[100.0, 100.0, 160.0, 170.0]]
    return np.stack([tracker.update(box, pose[None], timestamp=i / FPS).poses[0].numpy()
                     for i, pose in enumerate(poses)])


def rotation_jitter(poses):
    """RMS frame-to-frame rotation change, degrees."""
    steps = rotation_angle_between(torch.from_numpy(poses[1:, :3]),
                                   torch.from_numpy(poses[:-1, :3]))
    return float(np.degrees(np.sqrt((steps.numpy() ** 2).mean())))


def translation_jitter(poses):
    return float(np.sqrt((np.diff(poses[:, 3:], axis=0) ** 2).sum(1).mean()))


def test_smoothing_reduces_jitter_and_follows_steps():
    """A still face with noisy poses jitters at least 3x less once smoothed; a sudden
    30 degree turn and a jump of the translation are followed within a bounded lag."""
    rng = np.random.default_rng(1)
    base = np.array([0.2, -0.4, 0.1, 0.5, -0.3, 20.0])
    still = np.tile(base, (90, 1))
    noise = Rotation.from_rotvec(rng.normal(0, np.deg2rad(2.0), (90, 3)))
    still[:, :3] = (noise * Rotation.from_rotvec(still[:, :3])).as_rotvec()
    still[:, 3:] += rng.normal(0, [0.05, 0.05, 0.5], (90, 3))
    smoothed = smooth_sequence(still)[15:]                      # after the first half second
    rot_ratio = rotation_jitter(still[15:]) / rotation_jitter(smoothed)
    trans_ratio = translation_jitter(still[15:]) / translation_jitter(smoothed)

    turn = Rotation.from_euler('y', 30, degrees=True)
    step = np.tile(base, (60, 1))
    step[30:, :3] = (turn * Rotation.from_rotvec(base[:3])).as_rotvec()
    step[30:, 3:] += [2.0, 0.0, 5.0]
    out = smooth_sequence(step)[30:]
    err = np.degrees(rotation_angle_between(torch.from_numpy(out[:, :3]),
                                            torch.from_numpy(step[30:, :3])).numpy())
    rot_lag = {tol: int(np.argmax(err <= tol)) for tol in (3.0, 1.0)}
    moved = np.abs(out[:, 3:] - step[30:, 3:]) / np.array([2.0, 1.0, 5.0])
    trans_lag = {tol: int(np.argmax(moved.max(1) <= tol)) for tol in (0.1, 0.02)}
    overshoot = np.degrees(rotation_angle_between(torch.from_numpy(out[:, :3]),
                                                  torch.from_numpy(np.tile(base[:3], (30, 1))))
                           .numpy()).max() - 30.0
    print(f'\njitter reduction: rotation {rot_ratio:.1f}x, translation {trans_ratio:.1f}x; '
          f'30 deg turn at {FPS:g} fps: within 3 deg after {rot_lag[3.0]} frames, within 1 deg '
          f'after {rot_lag[1.0]}; translation jump: within 10 % after {trans_lag[0.1]} frames, '
          f'2 % after {trans_lag[0.02]}; overshoot {overshoot:.3f} deg')
    assert rot_ratio >= 3 and trans_ratio >= 3
    assert rot_lag[3.0] <= 6 and rot_lag[1.0] <= 10
    assert trans_lag[0.1] <= 8 and trans_lag[0.02] <= 15
    assert overshoot < 0.01


def test_smoothing_has_no_jump_at_180_degrees():
    """A head rolling through 180 degrees (the rotation vector flips there, Euler angles
    wrap): the smoothed rotation stays next to the raw one on every frame."""
    angles = np.linspace(150, 210, 61)                          # 1 degree per frame
    raw = np.zeros((61, 6))
    raw[:, :3] = Rotation.from_euler('z', angles[:, None], degrees=True).as_rotvec()
    raw[:, 5] = 20.0
    assert np.abs(np.diff(raw[:, 2])).max() > 3                 # the raw vector does jump
    out = smooth_sequence(raw)
    gap = np.degrees(rotation_angle_between(torch.from_numpy(out[:, :3]),
                                            torch.from_numpy(raw[:, :3])).numpy())
    steps = np.degrees(rotation_angle_between(torch.from_numpy(out[1:, :3]),
                                              torch.from_numpy(out[:-1, :3])).numpy())
    print(f'\nrolling through 180 deg: smoothed lags the raw rotation by at most {gap.max():.2f} '
          f'deg, largest frame-to-frame step {steps.max():.2f} deg (raw: 1 deg)')
    assert gap.max() < 4.0 and steps.max() < 1.5


def test_one_euro_step_is_batched():
    """Rows are independent: a batch step equals the rows stepped one by one."""
    rng = np.random.default_rng(2)
    start = torch.from_numpy(np.concatenate([rng.normal(0, 0.5, (5, 3)),
                                             rng.normal(0, 1, (5, 3))], 1))
    new = start + torch.from_numpy(rng.normal(0, 0.1, (5, 6)))
    dt = torch.full((5,), 1 / FPS, dtype=torch.float64)
    state = PoseFilterState.start(start)
    batch = one_euro_step(state, new, dt).poses()
    rows = torch.cat([one_euro_step(state.index(slice(i, i + 1)), new[i:i + 1], dt[i:i + 1])
                      .poses() for i in range(5)])
    torch.testing.assert_close(batch, rows)
    # a constant input stays put
    torch.testing.assert_close(one_euro_step(state, start, dt).poses(), start)


# --------------------------------------------------------------------------- the demo
@pytest.fixture(scope='module')
def model_args(tiny_checkpoint):
    return ['--config', str(CONFIG), '--checkpoint', str(tiny_checkpoint[0]), '--device', 'cpu',
            '--min-size', '128', '--max-size', '256'] + FAST_OPTIONS


def test_video_demo_tracks_and_smooths(tmp_path, model_args):
    """A still clip: every frame has the same faces, which keep their track ids, and the
    smoothed poses of a still input are the input; JSON lines per frame."""
    demo = load_script('demo/video_demo.py')
    image = synthetic_images(1, seed=5)[0][0]
    video = tmp_path / 'still.avi'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10,
                             image.shape[1::-1])
    for _ in range(4):
        writer.write(np.ascontiguousarray(image[..., ::-1]))
    writer.release()
    lines = tmp_path / 'out' / 'faces.jsonl'
    assert demo.main([str(video), '--json-out', str(lines), '--smooth', '--landmarks',
                      '--score-thr', '0.05', '--max-frames', '3'] + model_args) == 0
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r['frame'] for r in records] == [0, 1, 2]
    assert [r['time'] for r in records] == pytest.approx([0.0, 0.1, 0.2])
    first = records[0]['faces']
    assert first and sorted(f['track_id'] for f in first) == list(range(len(first)))
    assert all(set(f) == {'box', 'confidence', 'pose', 'euler', 'keypoints', 'landmarks',
                          'track_id'} for f in first)
    for record in records[1:]:
        assert [f['track_id'] for f in record['faces']] == [f['track_id'] for f in first]
        np.testing.assert_allclose([f['pose'] for f in record['faces']],
                                   [f['pose'] for f in first], atol=1e-5)
    assert not list(lines.parent.glob('.tmp*'))
    assert demo.main([str(video), '--camera', '1', '2', '--json-out', str(lines)]
                     + model_args) == 2
    assert REPO.is_dir()
