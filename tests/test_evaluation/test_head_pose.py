"""Head pose: Euler convention vs scipy, AFLW2000-3D / BIWI readers, HeadPoseMetric."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, METRICS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from scipy.spatial.transform import Rotation

from img2pose_mm.datasets.aflw2000 import AFLW2000Dataset
from img2pose_mm.datasets.biwi import BIWIDataset
from img2pose_mm.evaluation import HeadPoseMetric
from img2pose_mm.evaluation.functional import angle_errors, select_by_center, select_by_iou
from img2pose_mm.structures import (
    FacePoses,
    euler_to_rotvec,
    load_reference_points,
    points_to_bbox,
    pose_to_euler,
    project_pose_points,
    rotation_angle_between,
)

from .formats import write_aflw, write_biwi_frame

AFLW_SHAPE = (120, 160)   # h, w of the fixture images


def scipy_euler(rotvecs):
    """docs/reference.md §3 with scipy: E = from_matrix(R.T).as_euler('xyz'), (E0, -E1, -E2)."""
    e = Rotation.from_matrix(Rotation.from_rotvec(rotvecs).as_matrix().transpose(0, 2, 1)) \
        .as_euler('xyz', degrees=True)
    return np.stack([e[:, 0], -e[:, 1], -e[:, 2]], 1)


# ----------------------------------------------------------------------------- convention
def test_euler_matches_scipy_on_10000_rotations():
    rotvecs = Rotation.random(10000, random_state=7).as_rotvec()
    ours = pose_to_euler(torch.from_numpy(rotvecs)).numpy()
    ref = scipy_euler(rotvecs)
    regular = np.abs(ref[:, 1]) < 89.9        # away from gimbal lock (yaw = +-90)
    assert regular.sum() > 9900
    np.testing.assert_allclose(angle_errors(ours[regular], ref[regular]), 0, atol=1e-6)
    # and the inverse reproduces the rotation (scipy builds the matrix)
    back = euler_to_rotvec(torch.from_numpy(ref))
    ref_m = Rotation.from_euler('xyz', np.stack([ref[:, 0], -ref[:, 1], -ref[:, 2]], 1),
                                degrees=True).as_matrix().transpose(0, 2, 1)
    np.testing.assert_allclose(Rotation.from_rotvec(back.numpy()).as_matrix(), ref_m,
                               atol=1e-9)


def test_angle_errors_wrap():
    np.testing.assert_allclose(angle_errors([179.0, 10.0], [-179.0, -20.0]), [2.0, 30.0])
    np.testing.assert_allclose(angle_errors([179.0], [-179.0], wrap=False), [358.0])


# ----------------------------------------------------------------------------- AFLW2000
AFLW_FACES = {    # stem: ((pitch, yaw, roll) degrees, translation)
    'image00002': ((-10.0, 25.0, 5.0), (0.1, -0.05, 6.0)),
    'image00004': ((15.0, -40.0, -8.0), (-0.2, 0.1, 7.0)),
    'image00006': ((5.0, 100.0, 0.0), (0.0, 0.0, 6.5)),    # |yaw| > 99: skipped
}


def make_aflw(folder):
    points = torch.from_numpy(load_reference_points()).double()
    truth = {}
    for k, (stem, (angles, trans)) in enumerate(AFLW_FACES.items()):
        rotvec = euler_to_rotvec(torch.tensor(angles, dtype=torch.float64))
        pose = torch.cat([rotvec, torch.tensor(trans, dtype=torch.float64)])
        landmarks = project_pose_points(points, pose[None], AFLW_SHAPE)[0].numpy()
        pose_para = list(np.deg2rad(angles)) + [0.0, 0.0, 0.0, 1e-3]
        write_aflw(folder, stem, pose_para, landmarks, *AFLW_SHAPE, seed=k)
        truth[stem] = (pose, landmarks)
    return truth


def test_aflw2000_reads_release_format_and_filters(tmp_path):
    folder = str(tmp_path / 'AFLW2000')
    truth = make_aflw(folder)
    ds = DATASETS.build(dict(type='AFLW2000Dataset', data_root=str(tmp_path),
                             data_prefix=dict(img='AFLW2000/'), test_mode=True))
    assert isinstance(ds, AFLW2000Dataset)
    assert [d['img_id'] for d in ds] == ['image00002', 'image00004']
    assert ds.skipped_images == ['image00006']
    for info in ds:
        pose, landmarks = truth[info['img_id']]
        assert (info['height'], info['width']) == AFLW_SHAPE
        assert info['img_path'].endswith(info['img_id'] + '.jpg')
        inst, = info['instances']
        assert info['poses'].valid.all() and inst['bbox_label'] == 0 and inst['ignore_flag'] == 0
        gt = info['poses'].tensor[0].double()
        # the benchmark's own angles: Pose_Para in degrees
        np.testing.assert_allclose(info['gt_euler'][0], np.rad2deg(info['pose_para'][0, :3]))
        # rotation from Pose_Para through euler_to_rotvec: the same Euler angles back
        np.testing.assert_allclose(pose_to_euler(gt[None])[0].numpy(),
                                   np.rad2deg(info['pose_para'][0, :3]), atol=1e-4)
        assert rotation_angle_between(gt[None, :3], pose[None, :3]).item() < 1e-6
        # translation from EPnP of the landmarks (exact projections: exact pose)
        np.testing.assert_allclose(gt[3:].numpy(), pose[3:].numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(info['landmarks'][0], landmarks, rtol=1e-6)
        # the box: the img2pose rule on the landmarks, roll of the landmark pose
        box = points_to_bbox(torch.from_numpy(landmarks)[None], pose[None, 2], AFLW_SHAPE)
        np.testing.assert_allclose(inst['bbox'], box[0].numpy())
    # a list file selects images; no angle filter keeps the 100 degree one
    (tmp_path / 'list.txt').write_text('image00006.jpg\nimage00002\n')
    listed = AFLW2000Dataset(data_root=str(tmp_path), ann_file='list.txt', max_angle=None,
                             data_prefix=dict(img='AFLW2000/'), test_mode=True)
    assert [d['img_id'] for d in listed] == ['image00006', 'image00002']


def test_aflw2000_bad_mat_names_the_file(tmp_path):
    from scipy.io import savemat
    folder = tmp_path / 'AFLW2000'
    make_aflw(str(folder))
    savemat(str(folder / 'image00004.mat'), {'Pose_Para': np.zeros((1, 7))})
    with pytest.raises(ValueError, match=r"image00004.mat: missing variable 'pt3d_68'"):
        AFLW2000Dataset(data_prefix=dict(img=str(folder)), test_mode=True)
    savemat(str(folder / 'image00004.mat'), {'Pose_Para': np.zeros((1, 7)),
                                            'pt3d_68': np.zeros((3, 5))})
    with pytest.raises(ValueError, match='image00004.mat: pt3d_68 must be 3 x 68'):
        AFLW2000Dataset(data_prefix=dict(img=str(folder)), test_mode=True)


# ----------------------------------------------------------------------------- BIWI
def hopenet_biwi_angles(rotation):
    """(pitch, yaw, roll) the HopeNet / FSA-Net BIWI loaders compute from a pose file."""
    r = np.asarray(rotation).T
    roll = -np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    yaw = -np.degrees(np.arctan2(-r[2, 0], np.sqrt(r[2, 1] ** 2 + r[2, 2] ** 2)))
    pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    return np.array([pitch, yaw, roll])


def make_biwi(root, rng):
    truth = {}
    for seq in ('01', '02'):
        for frame in (3, 4, 7):
            rot = Rotation.from_euler('xyz', rng.uniform(-40, 40, 3), degrees=True).as_matrix()
            trans = rng.uniform(-100, 100, 3) + [0, 0, 900]
            write_biwi_frame(root, seq, frame, rot, trans)
            truth[f'{seq}/frame_{frame:05d}'] = (rot, trans)
    return truth


def test_biwi_reads_frames_and_pose_files(tmp_path, rng):
    root = str(tmp_path / 'hpdb')
    truth = make_biwi(root, rng)
    ds = DATASETS.build(dict(type='BIWIDataset', data_root=str(tmp_path),
                             data_prefix=dict(img='hpdb/'), test_mode=True))
    assert [d['img_id'] for d in ds] == list(truth)
    for info in ds:
        rot, trans = truth[info['img_id']]
        assert info['img_path'].endswith(info['img_id'] + '_rgb.png')
        # no translation in img2pose's camera: no pose, only the angles
        assert not info['poses'].valid.any() and info['poses'].img_shape == (48, 64)
        np.testing.assert_allclose(info['translations_mm'][0], trans, atol=1e-6)
        np.testing.assert_allclose(info['rotation_matrices'][0], rot, atol=2e-6)
        # the same angles the established BIWI protocol derives from the file
        np.testing.assert_allclose(info['gt_euler'][0], hopenet_biwi_angles(rot), atol=1e-3)
    # img2pose's frame list format: "<path> pitch yaw roll"
    (tmp_path / 'BIWI_annotations.txt').write_text(
        '02/frame_00004_rgb.png 1.0 2.0 3.0\n01/frame_00007_rgb.png 0 0 0\n')
    listed = BIWIDataset(data_root=str(tmp_path), ann_file='BIWI_annotations.txt',
                         data_prefix=dict(img='hpdb/'), test_mode=True)
    assert [d['img_id'] for d in listed] == ['02/frame_00004', '01/frame_00007']


def test_biwi_bad_pose_file_names_the_file(tmp_path, rng):
    root = str(tmp_path / 'hpdb')
    make_biwi(root, rng)
    bad = osp.join(root, '02', 'frame_00004_pose.txt')
    with open(bad, 'w') as f:
        f.write('1 0 0\n0 1 0\n0 0 1\n')
    with pytest.raises(ValueError, match='frame_00004_pose.txt: expected 3 rotation rows'):
        BIWIDataset(data_prefix=dict(img=root), test_mode=True)
    with open(bad, 'w') as f:
        f.write('1 0 0\n0 2 0\n0 0 1\n\n1 2 3\n')
    with pytest.raises(ValueError, match='frame_00004_pose.txt: the 3x3 block is not'):
        BIWIDataset(data_prefix=dict(img=root), test_mode=True)


# ----------------------------------------------------------------------------- selection
def test_selection_rules():
    boxes = np.array([[0, 0, 10, 10], [2, 2, 12, 12], [50, 50, 60, 60.]])
    scores = np.array([0.95, 0.9, 0.5])
    np.testing.assert_array_equal(
        select_by_iou(boxes, scores, [[2, 2, 12, 12], [100, 100, 110, 110]]), [1, -1])
    # detections at or below the score threshold do not take part
    assert select_by_iou(boxes, scores, [[2, 2, 12, 12]], score_thr=0.9)[0] == 0
    # BIWI: the score > 0.9 detection nearest the image centre (w // 2, h // 2)
    centre_boxes = np.array([[45, 45, 55, 55], [0, 0, 10, 10], [30, 30, 50, 50.]])
    assert select_by_center(centre_boxes, [0.5, 0.99, 0.95], (100, 100)) == 2
    assert select_by_center(centre_boxes, [0.5, 0.9, 0.2], (100, 100)) == -1


# ----------------------------------------------------------------------------- metric
def pose_sample(info, boxes, scores, poses, shape=AFLW_SHAPE):
    ds = DetDataSample(metainfo=dict(img_path=info['img_path'], ori_shape=shape,
                                     gt_euler=info['gt_euler']))
    ds.gt_instances = InstanceData(
        bboxes=torch.tensor([inst['bbox'] for inst in info['instances']], dtype=torch.float32),
        poses=info['poses'])
    ds.pred_instances = InstanceData(
        bboxes=torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
        scores=torch.as_tensor(np.asarray(scores, dtype=np.float32)),
        labels=torch.zeros(len(scores), dtype=torch.long),
        poses=torch.as_tensor(np.asarray(poses, dtype=np.float32).reshape(-1, 6)))
    return ds.to_dict()


def aflw_samples(tmp_path, offset_deg=(0.0, 0.0, 0.0), t_offset=(0.0, 0.0, 0.0)):
    folder = str(tmp_path / 'AFLW2000')
    make_aflw(folder)
    ds = AFLW2000Dataset(data_prefix=dict(img=folder), test_mode=True)
    samples = []
    for info in ds:
        inst, = info['instances']
        gt = info['poses'].tensor[0].double()
        rot = euler_to_rotvec(torch.from_numpy(info['gt_euler']) + torch.tensor([offset_deg]))[0]
        pred = torch.cat([rot, gt[3:] + torch.tensor(t_offset)]).numpy()
        decoy = np.array([0.5, 0.5, 0.5, 0.0, 0.0, 5.0])
        far = [0, 0, 5, 5]
        samples.append(pose_sample(info, [far, inst['bbox']], [0.99, 0.6], [decoy, pred]))
    return samples


def test_perfect_predictions_give_zero_mae(tmp_path):
    metric = METRICS.build(dict(type='HeadPoseMetric', selection='iou'))
    metric.process({}, aflw_samples(tmp_path))
    res = metric.evaluate(2)
    for key in ('yaw', 'pitch', 'roll', 'mae', 'geodesic', 'tx', 'ty', 'tz', 't_mae'):
        assert res[f'head_pose/{key}'] == pytest.approx(0.0, abs=1e-4), key
    assert res['head_pose/num_faces'] == 2 and res['head_pose/num_miss'] == 0


def test_known_yaw_offset_gives_five_thirds(tmp_path):
    metric = HeadPoseMetric(prefix='aflw2000')
    metric.process({}, aflw_samples(tmp_path, offset_deg=(0.0, 5.0, 0.0),
                                    t_offset=(0.1, 0.0, -0.3)))
    res = metric.evaluate(2)
    assert res['aflw2000/yaw'] == pytest.approx(5.0, abs=1e-4)
    assert res['aflw2000/pitch'] == pytest.approx(0.0, abs=1e-4)
    assert res['aflw2000/roll'] == pytest.approx(0.0, abs=1e-4)
    assert res['aflw2000/mae'] == pytest.approx(5 / 3, abs=1e-4)
    assert res['aflw2000/tx'] == pytest.approx(0.1, abs=1e-5)
    assert res['aflw2000/tz'] == pytest.approx(0.3, abs=1e-5)
    assert res['aflw2000/t_mae'] == pytest.approx(0.4 / 3, abs=1e-5)


def test_misses_are_counted_and_follow_the_policy(tmp_path):
    samples = aflw_samples(tmp_path)
    # the second image's detection no longer overlaps its face: a miss
    samples[1]['pred_instances']['bboxes'][1] = torch.tensor([0., 0., 5., 5.])
    exclude = HeadPoseMetric()
    exclude.process({}, samples)
    res = exclude.evaluate(2)
    assert res['head_pose/num_miss'] == 1 and res['head_pose/miss_rate'] == 0.5
    assert res['head_pose/mae'] == pytest.approx(0.0, abs=1e-4)   # the hit is perfect
    frontal = HeadPoseMetric(miss_policy='frontal')
    frontal.process({}, samples)
    res = frontal.evaluate(2)
    pitch, yaw, roll = AFLW_FACES['image00004'][0]      # the missed face, vs zero
    assert res['head_pose/yaw'] == pytest.approx(abs(yaw) / 2, abs=1e-4)
    assert res['head_pose/mae'] == pytest.approx((abs(pitch) + abs(yaw) + abs(roll)) / 6,
                                                 abs=1e-4)


def test_biwi_protocol_end_to_end(tmp_path, rng):
    root = str(tmp_path / 'hpdb')
    make_biwi(root, rng)
    ds = BIWIDataset(data_prefix=dict(img=root), test_mode=True)
    samples = []
    for info in ds:
        pred = np.concatenate([euler_to_rotvec(torch.from_numpy(info['gt_euler'][0])
                                               + torch.tensor([0.0, 0.0, 3.0])).numpy(),
                               [0, 0, 5]])
        # a confident off-centre face, a central low-score one, and the answer
        samples.append(pose_sample(
            info, [[0, 0, 10, 10], [27, 19, 37, 29], [22, 14, 42, 34]], [0.99, 0.5, 0.95],
            [np.zeros(6), np.zeros(6), pred], shape=(48, 64)))
    metric = HeadPoseMetric(selection='center', prefix='biwi')
    metric.process({}, samples)
    res = metric.evaluate(len(samples))
    assert res['biwi/roll'] == pytest.approx(3.0, abs=1e-3)
    assert res['biwi/mae'] == pytest.approx(1.0, abs=1e-3)
    assert 'biwi/tx' not in res          # BIWI's millimetres are not img2pose units
    assert res['biwi/num_miss'] == 0


def test_metric_reads_gt_instances_and_rejects_bad_input():
    ds = DetDataSample(metainfo=dict(img_path='x.jpg', ori_shape=(100, 100)))
    pose = torch.tensor([[0.1, 0.2, 0.0, 0.0, 0.0, 5.0]])
    ds.gt_instances = InstanceData(bboxes=torch.tensor([[10., 10, 50, 50]]),
                                   poses=FacePoses(pose, img_shape=(100, 100)))
    ds.pred_instances = InstanceData(bboxes=torch.tensor([[12., 10, 50, 52]]),
                                     scores=torch.tensor([0.9]), labels=torch.tensor([0]),
                                     poses=pose)
    metric = HeadPoseMetric()
    metric.process({}, [ds.to_dict()])
    assert metric.evaluate(1)['head_pose/mae'] == pytest.approx(0.0, abs=1e-5)
    no_pose = ds.clone()
    del no_pose.pred_instances.poses
    with pytest.raises(KeyError, match='x.jpg: pred_instances has no `poses`'):
        HeadPoseMetric().process({}, [no_pose.to_dict()])
    with pytest.raises(ValueError, match='selection must be one of'):
        HeadPoseMetric(selection='nearest')
