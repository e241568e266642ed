"""The original AFLW2000-3D and BIWI protocols as configs, against a reference written from
the protocol's description (numpy / scipy / cv2, one image at a time, like the notebooks).

The configs' datasets, pipelines and metrics run on fixtures in the datasets' real file
layouts; the predictions are scripted per image (in the original image's frame, as the
detector reports them) so that every rule is exercised: the IoU choice, the 'last
detection' fallback of AFLW2000-3D, the centre choice and 'first detection' fallback of
BIWI, images without detection, the 99-degree filter, and angle errors without wrapping.
"""
import math

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, METRICS
from mmengine.config import Config
from mmengine.structures import InstanceData
from scipy.io import loadmat
from scipy.spatial.transform import Rotation

import img2pose_mm  # noqa: F401
from img2pose_mm.structures import euler_to_rotvec, load_reference_points, project_pose_points

from ..test_models.utils import REPO
from .formats import write_aflw, write_biwi_frame

REF68 = load_reference_points(None, 68)


# ----------------------------------------------------------------------------- reference
def reference_aflw_angles(rotvec):
    """The author's AFLW conversion: transpose, as_euler('xyz'), negate yaw and roll."""
    angle = Rotation.from_matrix(Rotation.from_rotvec(rotvec).as_matrix().T).as_euler(
        'xyz', degrees=True)
    return np.array([angle[0], -angle[1], -angle[2]])


def reference_box(w, h, points, roll, factor=1.1, forehead=0.3):
    """The roll-aware 1.1 box of the points, integer corners, crops to the image."""
    lo, hi = points.min(0), points.max(0)
    size = [int((hi[0] - lo[0]) * factor), int((hi[1] - lo[1]) * factor)]
    cx, cy = 0.5 * lo[0] + 0.5 * hi[0], 0.5 * lo[1] + 0.5 * hi[1]
    x1, x2 = cx - size[0] * 0.5, cx + size[0] * 0.5
    y1, y2 = cy - size[1] * 0.5, cy + size[1] * 0.5
    if abs(roll) > 2.5:
        y2 += forehead * (hi[1] - lo[1])
    elif roll > 1:
        x2 += forehead * (hi[0] - lo[0])
    elif roll < -1:
        x1 -= forehead * (hi[0] - lo[0])
    else:
        y1 -= forehead * (hi[1] - lo[1])
    x1, x2, y1, y2 = (int(np.int32(v)) for v in (x1, x2, y1, y2))
    return [0 if x1 < 0 else x1, 0 if y1 < 0 else y1, w if x2 > w else x2, h if y2 > h else y2]


def reference_iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1 + 1) * max(0, y2 - y1 + 1)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / float(area_a + area_b - inter)


def reference_aflw(mat_paths, shapes, predictions):
    """Mean absolute errors (pitch, yaw, roll, tx, ty, tz) and the number of failures."""
    errors, failures = [], 0
    for mat_path, (h, w), pred in zip(mat_paths, shapes, predictions):
        mat = loadmat(mat_path)
        points = np.asarray(mat['pt3d_68']).T[:, :2]
        K = np.array([[w + h, 0, w // 2], [0, w + h, h // 2], [0, 0, 1]], dtype=np.float64)
        ok, rvec, tvec = cv2.solvePnP(REF68.astype(np.float32), points.astype(np.float32), K,
                                      None, flags=cv2.SOLVEPNP_EPNP)
        target = np.concatenate([rvec.ravel(), tvec.ravel()])
        box = reference_box(w, h, points, target[2])
        degrees = np.asarray(mat['Pose_Para'])[0][:3] * (180 / math.pi)
        if np.any(np.abs(degrees) > 99):
            continue
        boxes, scores, poses = pred
        best, best_iou, chosen = -1, 0, None
        for i in range(len(boxes)):
            if scores[i] > 0.0:
                chosen = poses[i]                 # the loop leaves the last one behind
                iou = reference_iou(boxes[i], box)
                if iou > best_iou:
                    best_iou, best = iou, i
        if best >= 0:
            chosen = poses[best]
        if len(boxes) == 0:
            failures += 1
            continue
        errors.append(np.abs(np.concatenate([reference_aflw_angles(chosen[:3]) - degrees,
                                             chosen[3:] - target[3:]])))
    return np.mean(errors, 0), failures


def reference_biwi(pose_paths, shapes, predictions):
    """Mean absolute errors (pitch, yaw, roll) and the number of failures."""
    errors, failures = [], 0
    for pose_path, (h, w), pred in zip(pose_paths, shapes, predictions):
        with open(pose_path) as f:
            rows = [line.split()[:3] for line in f.readlines()[:3]]
        rot = np.asarray(rows, dtype=float)
        angle = Rotation.from_matrix(rot.T).as_euler('xyz', degrees=True)
        target = np.array([angle[0], -angle[1], -angle[2]])
        boxes, scores, poses = pred
        if len(boxes) == 0:
            failures += 1
            continue
        best, best_dist = 0, float('inf')
        for i in range(len(boxes)):
            if scores[i] > 0.9:
                cx = boxes[i][0] + (boxes[i][2] - boxes[i][0]) // 2
                cy = boxes[i][1] + (boxes[i][3] - boxes[i][1]) // 2
                dist = math.dist([cx, cy], [w // 2, h // 2])
                if dist < best_dist:
                    best_dist, best = dist, i
        errors.append(np.abs(reference_aflw_angles(poses[best][:3]) - target))
    return np.mean(errors, 0), failures


# ----------------------------------------------------------------------------- running
def evaluate_config(cfg_path, data_root, predictions):
    """The config's dataset + pipeline + metric, with scripted predictions per image."""
    cfg = Config.fromfile(str(cfg_path))
    dataset_cfg = cfg.test_dataloader.dataset
    dataset_cfg.update(data_root=str(data_root))
    dataset = DATASETS.build(dataset_cfg)
    metric = METRICS.build(cfg.test_evaluator)
    for idx in range(len(dataset)):
        sample = dataset[idx]['data_samples']
        boxes, scores, poses = predictions[sample.img_id]
        sample.pred_instances = InstanceData(
            bboxes=torch.as_tensor(np.asarray(boxes, np.float32).reshape(-1, 4)),
            scores=torch.as_tensor(np.asarray(scores, np.float32)),
            labels=torch.zeros(len(scores), dtype=torch.long),
            poses=torch.as_tensor(np.asarray(poses, np.float32).reshape(-1, 6)))
        metric.process({}, [sample.to_dict()])
    return metric.evaluate(len(dataset)), dataset


def pose_of(angles_deg, translation):
    rotvec = euler_to_rotvec(torch.tensor(angles_deg, dtype=torch.float64)).numpy()
    return np.concatenate([rotvec, translation])


AFLW_SHAPE = (160, 200)
AFLW = {   # stem: (pitch, yaw, roll) degrees, translation of the face
    'image00002': ((-10.0, 25.0, 5.0), (0.1, -0.05, 6.0)),
    'image00004': ((15.0, -40.0, -8.0), (-0.2, 0.1, 7.0)),
    'image00006': ((5.0, 96.0, 80.0), (0.0, 0.0, 6.5)),     # yaw > 90: raw angles differ
    'image00008': ((5.0, 100.0, 0.0), (0.0, 0.0, 6.5)),     # |yaw| > 99: skipped
    'image00010': ((0.0, 10.0, 0.0), (0.3, 0.2, 8.0)),      # no detection: failure
}


def test_aflw2000_config_follows_the_original_protocol(tmp_path):
    folder = tmp_path / 'AFLW2000'
    points = torch.from_numpy(REF68).double()
    predictions, mats, shapes, preds_in_order = {}, [], [], []
    for k, (stem, (angles, trans)) in enumerate(AFLW.items()):
        pose = torch.from_numpy(pose_of(angles, trans))
        landmarks = project_pose_points(points, pose[None], AFLW_SHAPE)[0].numpy()
        pose_para = list(np.deg2rad(angles)) + [0.0, 0.0, 0.0, 1e-3]
        write_aflw(str(folder), stem, pose_para, landmarks, *AFLW_SHAPE, seed=k)
        lo, hi = landmarks.min(0), landmarks.max(0)
        on_face = [lo[0] - 2, lo[1] - 9, hi[0] + 3, hi[1] + 2]
        off = [0.0, 0.0, 6.0, 6.0]                  # overlaps no face box
        rng = np.random.default_rng(k)
        answer = pose.numpy() + np.concatenate([rng.normal(0, 0.05, 3), rng.normal(0, 0.1, 3)])
        decoy = pose.numpy() + np.concatenate([rng.normal(0, 0.3, 3), [0.5, 0.5, 1.0]])
        if stem == 'image00004':        # nothing overlaps: the last detection answers
            pred = ([off, off], [0.9, 0.2], [decoy, answer])
        elif stem == 'image00010':
            pred = ([], [], [])
        else:                           # the confident decoy misses, the answer overlaps
            pred = ([off, on_face], [0.95, 0.6], [decoy, answer])
        predictions[stem] = pred
        mats.append(str(folder / f'{stem}.mat'))
        shapes.append(AFLW_SHAPE)
        preds_in_order.append(pred)
    result, dataset = evaluate_config(REPO / 'configs' / 'img2pose_r18_aflw2000.py', folder,
                                      predictions)
    assert dataset.skipped_images == ['image00008']
    expected, failures = reference_aflw(mats, shapes, preds_in_order)
    assert result['aflw2000/num_miss'] == failures == 1
    assert result['aflw2000/num_faces'] == 4
    for key, value in zip(('pitch', 'yaw', 'roll', 'tx', 'ty', 'tz'), expected):
        assert result[f'aflw2000/{key}'] == pytest.approx(value, abs=2e-3), key
    assert result['aflw2000/mae'] == pytest.approx(expected[:3].mean(), abs=2e-3)
    # past 90 degrees of yaw the predicted Euler angles come out as (p + 180, 180 - y,
    # r + 180): without wrap-around their raw differences to Pose_Para count (~180)
    assert expected[0] > 50 and expected[2] > 50


BIWI_SHAPE = (120, 160)


def test_biwi_config_follows_the_original_protocol(tmp_path):
    root = tmp_path / 'hpdb'
    rng = np.random.default_rng(3)
    predictions, pose_paths, shapes, preds_in_order = {}, [], [], []
    centre = [70.0, 50.0, 90.0, 70.0]           # around the image centre (80, 60)
    corner = [0.0, 0.0, 20.0, 20.0]
    for frame in range(1, 6):
        angles = rng.uniform(-50, 50, 3)
        rot = Rotation.from_euler('xyz', angles, degrees=True).as_matrix()
        path = write_biwi_frame(str(root), '01', frame, rot, [10.0, -5.0, 900.0],
                                *BIWI_SHAPE)
        truth = pose_of(reference_aflw_angles(Rotation.from_matrix(rot).as_rotvec()), [0, 0, 5])
        answer = truth + np.concatenate([rng.normal(0, 0.05, 3), [0, 0, 0]])
        other = truth + np.concatenate([rng.normal(0, 0.4, 3), [0, 0, 0]])
        if frame == 2:      # nothing above 0.9: the first detection answers
            pred = ([corner, centre], [0.8, 0.5], [answer, other])
        elif frame == 4:    # no detection: a failure
            pred = ([], [], [])
        else:               # the most confident is off-centre; the central one answers
            pred = ([corner, centre], [0.99, 0.95], [other, answer])
        predictions[f'01/frame_{frame:05d}'] = pred
        pose_paths.append(path)
        shapes.append(BIWI_SHAPE)
        preds_in_order.append(pred)
    result, _ = evaluate_config(REPO / 'configs' / 'img2pose_r18_biwi.py', root, predictions)
    expected, failures = reference_biwi(pose_paths, shapes, preds_in_order)
    assert result['biwi/num_miss'] == failures == 1 and result['biwi/num_faces'] == 5
    for key, value in zip(('pitch', 'yaw', 'roll'), expected):
        assert result[f'biwi/{key}'] == pytest.approx(value, abs=2e-3), key
    assert 'biwi/tx' not in result


@pytest.fixture(scope='module')
def converted_checkpoint(tmp_path_factory):
    """Seeded weights in the original's layout, converted (self-contained checkpoint)."""
    import importlib.util

    from img2pose_mm.structures.reference_face import DEFAULT_5, DEFAULT_68
    from tools.fidelity import SEEDED_POSE_MEAN, SEEDED_POSE_STDDEV, save_original_checkpoint
    spec = importlib.util.spec_from_file_location(
        'img2pose_to_mmdet', REPO / 'tools' / 'model_converters' / 'img2pose_to_mmdet.py')
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    tmp = tmp_path_factory.mktemp('converted')
    src = save_original_checkpoint(str(tmp / 'seeded.pth'), 0)
    np.save(tmp / 'mean.npy', SEEDED_POSE_MEAN)
    np.save(tmp / 'std.npy', SEEDED_POSE_STDDEV)
    converter.convert(src, str(tmp / 'converted.pth'), pose_mean=str(tmp / 'mean.npy'),
                      pose_stddev=str(tmp / 'std.npy'), reference_points=str(DEFAULT_68),
                      reference_points_5=str(DEFAULT_5))
    return tmp / 'converted.pth'


@pytest.mark.parametrize('name', ['aflw2000', 'biwi'])
def test_protocol_configs_run_with_tools_test(name, tmp_path, converted_checkpoint):
    """The configs as a user runs them: tools/test.py with a converted checkpoint (no other
    file), on fixtures in the datasets' layouts."""
    import subprocess
    import sys
    root = tmp_path / 'data'
    if name == 'aflw2000':
        angles, trans = AFLW['image00002']
        pose = torch.from_numpy(pose_of(angles, trans))
        points = torch.from_numpy(REF68).double()
        landmarks = project_pose_points(points, pose[None], AFLW_SHAPE)[0].numpy()
        write_aflw(str(root), 'image00002', list(np.deg2rad(angles)) + [0, 0, 0, 1e-3],
                   landmarks, *AFLW_SHAPE)
    else:
        write_biwi_frame(str(root), '01', 3, np.eye(3), [0.0, 0.0, 900.0], *BIWI_SHAPE)
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'test.py'),
         str(REPO / 'configs' / f'img2pose_r18_{name}.py'), str(converted_checkpoint),
         '--work-dir', str(tmp_path / 'work'), '--cfg-options',
         f'test_dataloader.dataset.data_root={root}', 'test_dataloader.num_workers=0'],
        capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert f'{name}/mae' in out and f'{name}/num_faces: 1' in out
