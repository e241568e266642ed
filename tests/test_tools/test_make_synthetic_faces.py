"""The synthetic face generator: deterministic, exact labels, hidden faces unlabelled."""
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from img2pose_mm.structures import (
    euler_to_rotvec,
    load_reference_points,
    pose_from_landmarks,
    pose_to_bbox,
    pose_to_euler,
    project_pose_points,
    rotation_angle_between,
)

TOOLS = Path(__file__).resolve().parents[2] / 'tools' / 'dataset_converters'
sys.path.insert(0, str(TOOLS))
import make_synthetic_faces as msf  # noqa: E402
import synthetic_scenes as scenes  # noqa: E402

POINTS = torch.as_tensor(load_reference_points(), dtype=torch.float64)
PARAMS = msf.SynthParams(seed=3, min_size=112, max_size=144, min_face=20, ext='png')


@pytest.fixture(autouse=True)
def one_torch_thread():
    with msf.torch_threads(1):
        yield


def make_pose(angles, translation):
    rotvec = euler_to_rotvec(torch.tensor([angles], dtype=torch.float64))
    return torch.cat([rotvec, torch.tensor([translation], dtype=torch.float64)], 1)


def read_records(json_path):
    lines = Path(json_path).read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp('synthetic')
    with msf.torch_threads(1):
        msf.make_dataset(out, 6, 2, PARAMS, lmdb=False, progress=False)
    return out


def test_layout_and_annotation_format(dataset):
    assert json.loads((dataset / 'meta.json').read_text())['seed'] == 3
    for split, num in (('train', 6), ('val', 2)):
        records = read_records(dataset / f'{split}.json')
        assert len(records) == num
        for i, rec in enumerate(records):
            assert rec['image_path'] == f'images/{split}/{i:06d}.png'
            assert set(rec) == {'image_path', 'bboxes', 'landmarks', 'poses'}
            n = len(rec['poses'])
            assert 1 <= n <= 6
            assert np.shape(rec['bboxes']) == (n, 4)
            assert np.shape(rec['landmarks']) == (n, 68, 2)
            assert np.shape(rec['poses']) == (n, 6)
    assert not (dataset / '.parts').exists() or not any((dataset / '.parts').rglob('*.json'))


def test_deterministic_for_a_seed(dataset, tmp_path):
    again = tmp_path / 'again'
    msf.make_dataset(again, 6, 2, PARAMS, lmdb=False, progress=False)
    for name in ('train.json', 'val.json', 'meta.json'):
        assert (again / name).read_bytes() == (dataset / name).read_bytes()
    for image in (dataset / 'images').rglob('*.png'):
        assert (again / image.relative_to(dataset)).read_bytes() == image.read_bytes()
    other = tmp_path / 'other'
    msf.make_dataset(other, 2, 0, msf.SynthParams(**{**PARAMS.__dict__, 'seed': 4}),
                     lmdb=False, progress=False)
    assert (other / 'images/train/000000.png').read_bytes() != \
        (dataset / 'images/train/000000.png').read_bytes()


def test_labels_are_exact(dataset):
    for split in ('train', 'val'):
        for rec in read_records(dataset / f'{split}.json'):
            image = cv2.imread(str(dataset / rec['image_path']))
            h, w = image.shape[:2]
            assert PARAMS.min_size <= h <= PARAMS.max_size
            poses = torch.tensor(rec['poses'], dtype=torch.float64)
            landmarks = np.array(rec['landmarks'])
            # GT pose reprojects the stored landmarks
            reprojected = project_pose_points(POINTS, poses, (h, w)).numpy()
            assert np.abs(reprojected - landmarks).max() < 0.5
            # landmarks inside the image, faces in front of the camera
            assert (landmarks >= 0).all() and (landmarks[..., 0] <= w - 1).all()
            assert (landmarks[..., 1] <= h - 1).all() and (poses[:, 5] > 0).all()
            # boxes are img2pose's pose boxes
            np.testing.assert_array_equal(np.array(rec['bboxes']),
                                          pose_to_bbox(poses, POINTS, (h, w)).numpy())
            # the LMDB converter's EPnP recovers the GT pose from the landmarks
            pnp, ok = pose_from_landmarks(landmarks, POINTS.numpy(), (h, w))
            assert ok.all()
            assert rotation_angle_between(pnp[:, :3], poses[:, :3]).max() < np.deg2rad(1.0)
            np.testing.assert_allclose(pnp[:, 3:], poses[:, 3:], rtol=0.02, atol=0.02)
            # pose ranges
            euler = pose_to_euler(poses)
            assert (euler.abs() <= torch.tensor([50., 90., 40.]) + 1e-6).all()


def test_landmarks_sit_on_the_rendered_face():
    rng = np.random.default_rng(0)
    background = np.full((160, 160, 3), 90, np.uint8)
    poses = scenes.place_faces(rng, (160, 160), msf.SynthParams(max_faces=1, min_faces=1),
                            POINTS, scenes.reference_face()[0])
    image, visible = scenes.compose_faces(background, poses)
    assert visible[0] > 0
    inner = project_pose_points(POINTS[27:36], poses, (160, 160))[0].numpy()   # nose
    x, y = np.round(inner).astype(int).T
    assert (np.abs(image[y, x].astype(int) - 90).max(-1) > 0).mean() > 0.9


def test_face_hidden_by_a_nearer_face_is_not_labelled():
    size = (128, 128)
    background = np.full(size + (3,), 60, np.uint8)
    near = make_pose((0., 0., 0.), (0., 0., 6.))      # large, centred
    hidden = make_pose((0., 20., 0.), (0., 0., 40.))  # small, right behind it
    visible_far = make_pose((0., -10., 0.), (9., 0., 40.))   # small, off to the side
    poses = torch.cat([near, hidden, visible_far])
    image, visible = scenes.compose_faces(background, poses)
    assert visible[0] > 0 and visible[1] == 0 and visible[2] > 0
    # independent check that face 1 is entirely hidden: the image is the same without it
    without, _ = scenes.compose_faces(background, poses[[0, 2]])
    np.testing.assert_array_equal(image, without)
    labels = scenes.face_labels(poses, visible, size, POINTS)
    assert len(labels['poses']) == 2
    np.testing.assert_allclose(labels['poses'], poses[[0, 2]].numpy())
    # and alone, the hidden face would have been drawn and labelled
    _, alone = scenes.compose_faces(background, hidden)
    assert alone[0] > 0


def test_resume_reuses_and_regenerates(tmp_path):
    params = msf.SynthParams(seed=1, min_size=96, max_size=96, max_faces=2, min_face=20)
    msf.make_dataset(tmp_path, 3, 0, params, lmdb=False, progress=False)
    first = {p: p.read_bytes() for p in (tmp_path / 'images').rglob('*.jpg')}
    ann = (tmp_path / 'train.json').read_bytes()
    victim = tmp_path / 'images/train/000001.jpg'
    victim.unlink()
    msf.make_dataset(tmp_path, 3, 0, params, lmdb=False, progress=False)
    assert victim.read_bytes() == first[victim]
    assert (tmp_path / 'train.json').read_bytes() == ann
    # growing the split keeps the first images
    msf.make_dataset(tmp_path, 4, 0, params, lmdb=False, progress=False)
    assert len(read_records(tmp_path / 'train.json')) == 4
    assert read_records(tmp_path / 'train.json')[:3] == [json.loads(x) for x in
                                                         ann.decode().splitlines()]
    # other parameters in the same folder are refused
    with pytest.raises(ValueError, match='other parameters'):
        msf.make_dataset(tmp_path, 3, 0, msf.SynthParams(**{**params.__dict__, 'seed': 2}),
                         lmdb=False, progress=False)


def test_overwrite_and_stale_lmdb_are_rebuilt(tmp_path, capsys):
    """``--overwrite`` on an existing folder regenerates everything (LMDBs included), and an
    LMDB made from an older JSON is rebuilt instead of resumed."""
    out = str(tmp_path / 'D')
    argv = ['--out-dir', out, '--num-train', '3', '--num-val', '2', '--img-size', '64',
            '--max-faces', '1', '--min-face', '20']
    msf.main(argv)
    first = (tmp_path / 'D' / 'train.lmdb' / 'data.mdb').stat().st_mtime_ns
    msf.main(argv + ['--overwrite'])
    assert (tmp_path / 'D' / 'train.lmdb' / 'data.mdb').stat().st_mtime_ns != first
    assert (tmp_path / 'D' / 'train_pose_mean.npy').is_file()
    # a stale LMDB: the JSON changed after the conversion
    json_path = tmp_path / 'D' / 'val.json'
    lines = json_path.read_text().splitlines()
    json_path.write_text('\n'.join(lines[:1]) + '\n')
    capsys.readouterr()
    msf.convert_split(json_path, tmp_path / 'D', 'val')
    assert 'rebuilding it' in capsys.readouterr().err
    from img2pose_mm.datasets.lmdb_record import open_lmdb_readonly, read_keys
    env = open_lmdb_readonly(str(tmp_path / 'D' / 'val.lmdb'))
    with env.begin() as txn:
        assert len(read_keys(txn, 'val.lmdb')) == 1
    env.close()


def test_cli_and_bad_parameters(tmp_path):
    args = msf.parse_args(['--out-dir', str(tmp_path), '--img-size', '80'])
    assert args.min_size == args.max_size == 80
    with pytest.raises(SystemExit):
        msf.parse_args(['--img-size', '80', '--min-size', '64'])
    with pytest.raises(ValueError, match='min_face'):
        msf.make_dataset(tmp_path, 1, 0, msf.SynthParams(min_size=32, max_size=32),
                         lmdb=False, progress=False)
