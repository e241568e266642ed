"""300W-LP: the release layout -> JSON list (300wlp_to_json.py) -> LMDB labelled with the
original's 300W-LP rules (``labelling='pose_para'``) -> the fine-tuning config.

The fixture is a small 300W-LP release (rendered faces, ``.mat`` files written by scipy
with the release's variable names and shapes, a ``_Flip`` copy and a ``landmarks/``
file). The labels are checked against a reference written from the original loader's
description with scipy and cv2, one face at a time: rotation = the rotation vector of
``from_euler('xyz', [p, -y, -r]).T``, translation = EPnP of the 68 landmarks in the full
image's camera, box = the landmarks' box expanded by the roll-aware 1.1 rule with the roll
of that pose, box-local pose relative to that box. ``Pose_Para`` disagrees with the
rendered face by a few degrees on purpose, so that a label taken from the landmarks
(EPnP's rotation) would fail.
"""
import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from img2pose_mm.datasets.face_labelling import POSE_STATUS
from img2pose_mm.datasets.lmdb_converter import convert
from img2pose_mm.datasets.w300lp import convert_300wlp
from img2pose_mm.structures import load_reference_points, mirror_permutation

from ..test_evaluation.formats import write_300wlp, write_aflw
from ..test_evaluation.test_head_pose_protocols import reference_box
from .conftest import project, random_image, write_json_list
from .test_lmdb_converter import records

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools' / 'dataset_converters'))
import make_synthetic_faces as msf  # noqa: E402
import synthetic_scenes as scenes  # noqa: E402

REF68 = load_reference_points(None, 68)
SIZE = (128, 128)          # (h, w); the release's images are 450 x 450
# subset, stem, (pitch, yaw, roll) degrees of the rendered face; the rolls put the
# forehead up, right, left and down
FACES = [('AFW', 'AFW_134212_1_0', (10.0, -30.0, 5.0)),
         ('HELEN', 'HELEN_232194_1_0', (-5.0, 20.0, 80.0)),
         ('IBUG', 'IBUG_image_003_1_0', (5.0, 10.0, -75.0)),
         ('LFPW', 'LFPW_image_test_0001_0', (0.0, 15.0, 165.0))]
# Pose_Para = the rendered angles + this (degrees): the labels must follow Pose_Para
PARA_OFFSET = np.array([-3.0, 4.0, 2.0])


def load_tool():
    """``tools/dataset_converters/300wlp_to_json.py`` as a module (its name starts with a
    digit)."""
    path = REPO / 'tools' / 'dataset_converters' / '300wlp_to_json.py'
    spec = importlib.util.spec_from_file_location('w300lp_to_json', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scipy_rotvec(angles_deg):
    """Rotation vector of ``R = from_euler('xyz', [p, -y, -r]).T`` (angles in degrees)."""
    p, y, r = np.deg2rad(angles_deg)
    return Rotation.from_matrix(
        Rotation.from_euler('xyz', [p, -y, -r]).as_matrix().T).as_rotvec()


def camera(h, w):
    return np.array([[w + h, 0, w // 2], [0, w + h, h // 2], [0, 0, 1]], dtype=np.float64)


def face_pose(angles_deg, centre, face_px, size=SIZE):
    """Global pose of a face ``face_px`` wide whose origin projects to ``centre``."""
    h, w = size
    depth = 2.0 * (w + h) / face_px
    t = [(centre[0] - w // 2) * depth / (w + h), (centre[1] - h // 2) * depth / (w + h), depth]
    return np.concatenate([scipy_rotvec(angles_deg), t])


def render(pose, seed, size=SIZE):
    """BGR image of the reference face at ``pose``."""
    background = random_image(np.random.default_rng(seed), size)
    with msf.torch_threads(1):
        image, _ = scenes.compose_faces(background, torch.from_numpy(pose)[None])
    return np.ascontiguousarray(image)


# ----------------------------------------------------------------------------- reference
def reference_label(pose_para, landmarks, h, w):
    """The original's 300W-LP label of one face: global pose, box, box-local pose."""
    rotvec = scipy_rotvec(np.rad2deg(pose_para[:3]))
    ok, _, tvec = cv2.solvePnP(REF68.astype(np.float32), landmarks.astype(np.float32),
                               camera(h, w), None, flags=cv2.SOLVEPNP_EPNP)
    assert ok
    pose = np.concatenate([rotvec, tvec.ravel()])
    box = np.asarray(reference_box(w, h, landmarks, rotvec[2]), dtype=np.float64)
    # global -> box-local (docs/reference.md §3) with scipy's nearest rotation
    K = camera(h, w)
    Kb = K.copy()
    Kb[0, 2] = box[0] + (box[2] - box[0]) // 2
    Kb[1, 2] = box[1] + (box[3] - box[1]) // 2
    t_local = np.linalg.inv(Kb) @ K @ pose[3:]
    t_local[2] /= (w + h) / ((box[2] - box[0]) + (box[3] - box[1]))
    r_local = Rotation.from_matrix(
        np.linalg.inv(Kb) @ K @ Rotation.from_rotvec(rotvec).as_matrix()).as_rotvec()
    return pose, box, np.concatenate([r_local, t_local])


# ----------------------------------------------------------------------------- fixture
@pytest.fixture(scope='module')
def w300lp(tmp_path_factory):
    """A small 300W-LP release: four faces, the flipped copy of the first one, and a
    ``landmarks/`` file for the first one. Returns ``(root, truth)`` with
    ``truth['<subset>/<stem>'] = dict(pose_para, pt2d, pose)``."""
    root = tmp_path_factory.mktemp('300W_LP')
    truth = {}
    h, w = SIZE
    rng = np.random.default_rng(3)
    for i, (subset, stem, angles) in enumerate(FACES):
        pose = face_pose(angles, (w / 2 + rng.uniform(-8, 8), h / 2 + rng.uniform(-8, 8)),
                         rng.uniform(50, 64))
        pt2d = project(torch.from_numpy(pose)[None], SIZE)[0]
        pose_para = np.concatenate([np.deg2rad(np.asarray(angles) + PARA_OFFSET),
                                    [0.1, -0.2, 30.0, 0.0012]])
        image = render(pose, seed=i)
        extra = {}
        if i == 0:     # the landmarks/ file: 3D-style and 2D-style markups
            extra = dict(pts_3d=pt2d + [0.5, -0.25], pts_2d=pt2d + [1.0, 0.0])
        write_300wlp(root, subset, stem, image, pose_para, pt2d, **extra)
        truth[f'{subset}/{stem}'] = dict(pose_para=pose_para, pt2d=pt2d, pose=pose, **extra)
        if i == 0:
            # the mirrored copy: image flipped, landmarks mirrored (u -> w - u) in iBUG
            # order, Pose_Para of the mirrored face (yaw and roll change sign)
            flip_pt2d = pt2d[mirror_permutation(68)] * [-1, 1] + [w, 0]
            flip_para = pose_para * [1, -1, -1, 1, 1, 1, 1]
            write_300wlp(root, subset + '_Flip', stem, image[:, ::-1], flip_para, flip_pt2d)
            truth[f'{subset}_Flip/{stem}'] = dict(pose_para=flip_para, pt2d=flip_pt2d,
                                                  pose=pose * [1, -1, -1, -1, 1, 1])
    (root / 'Code').mkdir()        # the release's code folder: not a sample folder
    return root, truth


def read_lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# ----------------------------------------------------------------------------- tests
def test_json_list_holds_the_mat_contents(w300lp, tmp_path):
    root, truth = w300lp
    messages = []
    summary = convert_300wlp(root, tmp_path / 'list.json', progress=False, log=messages.append)
    lines = read_lines(tmp_path / 'list.json')
    assert [e['image_path'] for e in lines] == [f'{k}.jpg' for k in sorted(truth)]
    assert summary['images'] == 5 and not summary['skipped'] and not summary['fallbacks']
    assert summary['subsets'] == ['AFW', 'AFW_Flip', 'HELEN', 'IBUG', 'LFPW']
    assert not (tmp_path / 'list.json.partial').exists()
    for entry in lines:
        t = truth[entry['image_path'][:-4]]
        assert entry['pose_para'] == [t['pose_para'][:3].tolist()]      # exact
        np.testing.assert_array_equal(entry['landmarks'][0], t['pt2d'])
        np.testing.assert_array_equal(entry['bboxes'][0],
                                      np.concatenate([t['pt2d'].min(0), t['pt2d'].max(0)]))

    # the landmarks/ files as the source; the others (the _Flip copy among them) fall
    # back to their pt2d
    summary = convert_300wlp(root, tmp_path / 'pts.json', landmarks='pts_3d', progress=False,
                             log=messages.append)
    lines = {e['image_path']: e for e in read_lines(tmp_path / 'pts.json')}
    first = FACES[0][0] + '/' + FACES[0][1]
    np.testing.assert_array_equal(lines[first + '.jpg']['landmarks'][0], truth[first]['pts_3d'])
    assert sorted(summary['fallbacks']) == sorted(p for p in lines if p != first + '.jpg')
    np.testing.assert_array_equal(lines['AFW_Flip/AFW_134212_1_0.jpg']['landmarks'][0],
                                  truth['AFW_Flip/AFW_134212_1_0']['pt2d'])
    # --no-flip leaves the mirrored copies out
    summary = convert_300wlp(root, tmp_path / 'noflip.json', flipped=False, progress=False,
                             log=messages.append)
    assert summary['images'] == 4 and 'AFW_Flip' not in summary['subsets']


@pytest.fixture(scope='module')
def w300lp_lmdb(w300lp, tmp_path_factory):
    """The fixture converted by the two tools: 300wlp_to_json.py, then json_to_lmdb.py
    --labelling pose_para --train. Returns ``(summary, out_dir)``: the LMDB's meta with the
    paths of the LMDB and of the pose statistics."""
    import json_to_lmdb
    root, _ = w300lp
    out = tmp_path_factory.mktemp('w300lp_lmdb')
    assert load_tool().main([str(root), str(out / '300W_LP.json'), '--no-progress']) == 0
    assert json_to_lmdb.main([str(out / '300W_LP.json'), str(out), '--name', '300W_LP',
                              '--train', '--image-root', str(root), '--labelling', 'pose_para',
                              '--no-progress']) == 0
    _, items = records(out / '300W_LP.lmdb')
    summary = dict(json.loads(items[b'__meta__']), lmdb=out / '300W_LP.lmdb',
                   pose_mean=out / '300W_LP_pose_mean.npy',
                   pose_stddev=out / '300W_LP_pose_stddev.npy')
    assert summary['source']['labelling'] == 'pose_para'
    return summary, out


def test_labels_follow_the_original_300wlp_rules(w300lp, w300lp_lmdb):
    root, truth = w300lp
    summary, _ = w300lp_lmdb
    assert summary['images'] == summary['faces'] == 5 and summary['faces_without_pose'] == 0
    assert not summary['skipped']
    recs, _ = records(summary['lmdb'])
    deviation = dict(rotation=0.0, translation=0.0, box=0.0, local=0.0)
    branches = set()
    local_poses = []
    for header, arrays, _ in recs.values():
        t = truth[header['source_image_path'][:-4]]
        h, w = header['height'], header['width']
        assert (h, w) == SIZE and arrays['pose_valid'].all()
        assert [POSE_STATUS[c] for c in arrays['pose_status']] == ['ok']
        pose, box, local = reference_label(t['pose_para'], t['pt2d'], h, w)
        got = arrays['poses'][0]
        deviation['rotation'] = max(deviation['rotation'], np.abs(got[:3] - pose[:3]).max())
        deviation['translation'] = max(deviation['translation'],
                                       (np.abs(got[3:] - pose[3:]) / np.abs(pose[3:]).max()).max())
        deviation['box'] = max(deviation['box'], np.abs(arrays['bboxes'][0] - box).max())
        deviation['local'] = max(deviation['local'],
                                 np.abs(arrays['local_poses'][0] - local).max())
        np.testing.assert_allclose(arrays['pose_para'][0], t['pose_para'][:3], rtol=0, atol=0)
        local_poses.append(arrays['local_poses'][0])
        rz = pose[2]
        branches.add('down' if abs(rz) > 2.5 else 'right' if rz > 1 else
                     'left' if rz < -1 else 'up')
        # the rotation is Pose_Para's, not the landmarks' (EPnP's is the rendered face)
        rendered = Rotation.from_rotvec(t['pose'][:3])
        assert (Rotation.from_rotvec(got[:3]) * rendered.inv()).magnitude() > np.deg2rad(2)
        # the translation is EPnP of exact projections: the rendered one
        np.testing.assert_allclose(got[3:], t['pose'][3:], rtol=1e-6, atol=1e-6)
    print('max deviations from the reference:', deviation)
    assert deviation['rotation'] < 1e-6
    assert deviation['translation'] < 1e-6
    assert deviation['box'] == 0.0
    assert deviation['local'] < 1e-6
    assert branches == {'up', 'right', 'left', 'down'}      # every forehead direction
    # pose statistics: population mean / std of the box-local poses
    local_poses = np.stack(local_poses)
    np.testing.assert_allclose(np.load(summary['pose_mean']), local_poses.mean(0), atol=1e-9)
    np.testing.assert_allclose(np.load(summary['pose_stddev']), local_poses.std(0), atol=1e-9)


def test_json_dataset_labels_300wlp_as_the_lmdb(w300lp, w300lp_lmdb):
    from img2pose_mm.datasets import FacePoseJSONDataset
    root, _ = w300lp
    summary, out = w300lp_lmdb
    dataset = FacePoseJSONDataset(ann_file=str(out / '300W_LP.json'),
                                  data_prefix=dict(img=str(root)), labelling='pose_para',
                                  pipeline=[], lazy_init=False)
    recs, _ = records(summary['lmdb'])
    assert len(dataset) == len(recs)
    for info, (_, arrays, _) in zip((dataset.get_data_info(i) for i in range(len(dataset))),
                                    recs.values()):
        np.testing.assert_allclose(info['poses'].tensor.numpy(), arrays['poses'], atol=1e-5)
        assert info['instances'][0]['bbox'] == arrays['bboxes'][0].tolist()


def test_flipped_copies_get_the_mirrored_rotation(w300lp_lmdb):
    summary, _ = w300lp_lmdb
    recs, _ = records(summary['lmdb'])
    by_path = {header['source_image_path']: arrays['poses'][0]
               for header, arrays, _ in recs.values()}
    plain, flipped = by_path['AFW/AFW_134212_1_0.jpg'], by_path['AFW_Flip/AFW_134212_1_0.jpg']
    # a horizontal flip changes the sign of ry, rz and tx (docs/reference.md §3); the
    # reference face is mirror-symmetric, so EPnP of the mirrored landmarks finds the
    # mirrored translation
    np.testing.assert_allclose(flipped[:3], plain[:3] * [1, -1, -1], atol=1e-12)
    np.testing.assert_allclose(flipped[3:], plain[3:] * [-1, 1, 1], rtol=1e-6, atol=1e-6)


def test_bad_samples_are_named_and_skipped_or_stop_the_conversion(tmp_path, capsys):
    root = tmp_path / '300W_LP'
    image = random_image(np.random.default_rng(0), SIZE)
    pose = face_pose((0.0, 10.0, 0.0), (64, 64), 60)
    pt2d = project(torch.from_numpy(pose)[None], SIZE)[0]
    para = np.concatenate([pose[:3], [0, 0, 0, 1]])
    write_300wlp(root, 'AFW', 'AFW_1_0', image, para, pt2d)
    write_300wlp(root, 'AFW', 'AFW_2_0', image, para, pt2d, overrides=dict(Pose_Para=None))
    write_300wlp(root, 'AFW', 'AFW_3_0', image, para, pt2d, overrides=dict(pt2d=pt2d[:21].T))
    write_300wlp(root, 'AFW', 'AFW_4_0', None, para, pt2d)
    write_300wlp(root, 'HELEN', 'HELEN_1_0', image, para, pt2d, pts_3d=pt2d[:, :1])
    cv2.imwrite(str(root / 'HELEN' / 'HELEN_2_0.jpg'), image)
    expected = {  # sample: the file the message names and what it says
        'AFW/AFW_2_0': ('AFW/AFW_2_0.mat', "missing variable 'Pose_Para'"),
        'AFW/AFW_3_0': ('AFW/AFW_3_0.mat', 'pt2d must be 2 x 68, got 2 x 21'),
        'AFW/AFW_4_0': ('AFW/AFW_4_0.mat', 'image not found'),
        'HELEN/HELEN_1_0': ('landmarks/HELEN/HELEN_1_0_pts.mat',
                            'pts_3d must be 68 x 2, got 68 x 1'),
        'HELEN/HELEN_2_0': ('HELEN/HELEN_2_0.jpg', 'annotation not found')}

    # default: every bad sample reported with its file, the good ones written
    messages = []
    summary = convert_300wlp(root, tmp_path / 'list.json', landmarks='pts_3d',
                             progress=False, log=messages.append)
    assert summary['images'] == 1
    assert [s for s, _ in summary['skipped']] == sorted(expected)
    for sample, reason in summary['skipped']:
        name, what = expected[sample]
        assert reason.startswith(f'{root / name}: ') and what in reason
        assert any(reason in m for m in messages)
    assert [e['image_path'] for e in read_lines(tmp_path / 'list.json')] == ['AFW/AFW_1_0.jpg']

    # --strict: stops at the first bad sample (exit 1), keeps what it wrote
    tool = load_tool()
    out = tmp_path / 'strict.json'
    argv = [str(root), str(out), '--landmarks', 'pts_3d', '--no-progress']
    assert tool.main(argv + ['--strict']) == 1
    err = capsys.readouterr().err
    assert 'AFW_2_0.mat' in err and "missing variable 'Pose_Para'" in err and '--resume' in err
    assert not out.exists()
    assert [e['image_path'] for e in read_lines(f'{out}.partial')] == ['AFW/AFW_1_0.jpg']
    # fixed, the run resumes without redoing the first line
    for stem in ('AFW_2_0', 'AFW_3_0'):
        write_300wlp(root, 'AFW', stem, image, para, pt2d)
    for path in ('AFW/AFW_4_0.mat', 'HELEN/HELEN_2_0.jpg', 'landmarks/HELEN/HELEN_1_0_pts.mat'):
        (root / path).unlink()
    assert tool.main(argv + ['--strict', '--resume']) == 0
    assert 'next: python tools/dataset_converters/json_to_lmdb.py' in capsys.readouterr().err
    assert [e['image_path'] for e in read_lines(out)] == [
        'AFW/AFW_1_0.jpg', 'AFW/AFW_2_0.jpg', 'AFW/AFW_3_0.jpg', 'HELEN/HELEN_1_0.jpg']
    # no sample folder at all
    assert tool.main([str(tmp_path / 'missing'), str(out)]) == 1
    assert '300W-LP folder not found' in capsys.readouterr().err


def test_lmdb_lines_without_usable_pose_para_are_skipped_with_the_reason(tmp_path):
    image_path = tmp_path / 'face.jpg'
    cv2.imwrite(str(image_path), random_image(np.random.default_rng(1), SIZE))
    pose = face_pose((0.0, 10.0, 0.0), (64, 64), 60)
    lm = project(torch.from_numpy(pose)[None], SIZE)[0]
    box = np.concatenate([lm.min(0), lm.max(0)]).tolist()
    good = dict(image_path='face.jpg', bboxes=[box], landmarks=[lm.tolist()],
                pose_para=[pose[:3].tolist()])
    lines = [good,
             {k: v for k, v in good.items() if k != 'pose_para'},
             dict(good, pose_para=[[0.1, 0.2]]),
             dict(good, pose_para=[pose[:3].tolist()] * 2),
             dict(good, landmarks=[lm[:5].tolist()])]
    json_path = write_json_list(tmp_path / 'list.json', lines)
    messages = []
    summary = convert(json_path, tmp_path / 'out', 'list', labelling='pose_para',
                      progress=False, log=messages.append)
    assert summary['images'] == 1
    reasons = dict(summary['skipped'])
    assert 'needs a "pose_para" key' in reasons[2]
    assert '"pose_para" row 0 has 2 numbers' in reasons[3]
    assert '2 "pose_para" rows for 1 boxes' in reasons[4]
    assert 'needs 68 landmarks per face, got 5' in reasons[5]
    assert any('line 2: skipped' in m for m in messages)
    # another labelling ignores the angles, and says so
    messages = []
    convert(json_path, tmp_path / 'out', 'box', progress=False, log=messages.append)
    assert any('has "pose_para"' in m and "labelling='pose_para'" in m for m in messages)


def test_finetune_config_trains_from_a_checkpoint_and_evaluates_on_aflw2000(
        w300lp_lmdb, tmp_path):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner, save_checkpoint
    from mmengine.runner.checkpoint import weights_to_cpu

    summary, data_dir = w300lp_lmdb
    cfg = Config.fromfile(str(REPO / 'configs' / 'img2pose_r18_300wlp_finetune.py'))
    # the author's settings
    assert cfg.optim_wrapper.optimizer.lr == 1e-3 and cfg.param_scheduler == []
    assert cfg.train_cfg.max_epochs == 2
    assert cfg.model.train_cfg.rpn.sampler.num == 2
    assert cfg.model.test_cfg.rcnn.max_per_img == 4
    assert cfg.val_evaluator.type == 'HeadPoseMetric' and cfg.val_evaluator.prefix == 'aflw2000'
    assert cfg.val_dataloader.dataset.type == 'AFLW2000Dataset'

    # AFLW2000-3D in its release layout: two rendered faces
    aflw = tmp_path / 'AFLW2000'
    for i, angles in enumerate([(5.0, 20.0, 0.0), (-10.0, -15.0, 5.0)]):
        pose = face_pose(angles, (64, 66), 60)
        write_aflw(str(aflw), f'image{i:05d}', np.r_[np.deg2rad(angles), 0, 0, 0, 1],
                   project(torch.from_numpy(pose)[None], SIZE)[0], *SIZE)
        cv2.imwrite(str(aflw / f'image{i:05d}.jpg'), render(pose, seed=10 + i))

    # the "WIDER model": seeded random weights with the 300W-LP pose statistics
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    coder = model.roi_head.bbox_head.bbox_coder
    coder.pose_mean.copy_(torch.from_numpy(np.load(summary['pose_mean'])))
    coder.pose_stddev.copy_(torch.from_numpy(np.load(summary['pose_stddev'])).clamp_min(0.05))
    ckpt = tmp_path / 'wider.pth'
    save_checkpoint({'meta': {}, 'state_dict': weights_to_cpu(model.state_dict())}, str(ckpt))
    weight_name = 'roi_head.bbox_head.fc_cls.weight'
    start = dict(model.state_dict())[weight_name].clone()
    del model

    # small and fast on a CPU: tiny images, fewer proposals and RoIs (not settings of the
    # recipe), the last epoch's checkpoint and the best one
    small = (160, 128)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = str(ckpt)
    cfg.merge_from_dict({'model.train_cfg.rpn_proposal.max_per_img': 200,
                         'model.train_cfg.rcnn.sampler.num': 32,
                         'default_hooks.checkpoint.interval': 2})
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(
        data_root=str(data_dir) + '/',
        pipeline=[dict(type='LoadFacePoseImage'), dict(type='LoadFacePoseAnnotations'),
                  dict(type='BlackOutFacesWithoutPose'), dict(type='PoseRandomFlip', prob=0.5),
                  dict(type='PoseResize', scale=small, keep_ratio=True),
                  dict(type='PoseToBBox'), dict(type='PackFacePoseInputs')])
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.data_root = str(aflw) + '/'
        loader.dataset.pipeline[1]['scale'] = small
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)

    class Spy(Hook):
        seen = dict(detections=[], metrics=[])

        def before_train(self, runner):
            model = runner.model
            self.seen['start'] = dict(model.state_dict())[weight_name].clone()
            self.seen['pose_mean'] = model.roi_head.bbox_head.bbox_coder.pose_mean.clone()
            self.seen['rpn_samples'] = model.rpn_head.sampler.num

        def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.seen['detections'].extend(len(o.pred_instances) for o in outputs)

        def after_val_epoch(self, runner, metrics=None):
            self.seen['metrics'].append(metrics)

    with msf.torch_threads(1):
        runner = Runner.from_cfg(cfg)
        runner.register_hook(Spy(), priority='LOWEST')
        runner.train()
    seen = Spy.seen
    # started from the checkpoint: its weights and its pose statistics (the config has none)
    torch.testing.assert_close(seen['start'], start)
    torch.testing.assert_close(seen['pose_mean'].double(),
                               torch.from_numpy(np.load(summary['pose_mean'])))
    assert seen['rpn_samples'] == 2
    assert runner.iter == 6                      # 5 images, batch 2: 3 iterations x 2 epochs
    assert not torch.equal(dict(runner.model.state_dict())[weight_name], start)
    assert runner.optim_wrapper.get_lr()['lr'] == [1e-3]        # constant
    # validated after each epoch with the AFLW2000-3D metric, at most 4 detections
    assert len(seen['metrics']) == 2
    for metrics in seen['metrics']:
        assert metrics['aflw2000/num_faces'] == 2
        assert {'aflw2000/yaw', 'aflw2000/pitch', 'aflw2000/roll', 'aflw2000/mae'} <= set(metrics)
    assert seen['detections'] and max(seen['detections']) <= 4
    work = Path(cfg.work_dir)
    assert (work / 'epoch_2.pth').exists()
    assert list(work.glob('best_aflw2000_mae_epoch_*.pth'))
