"""JSON list -> LMDB: round trip, statistics, resume, bad input, CLI."""
import json
import subprocess
import sys
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch

from img2pose_mm.datasets import lmdb_converter
from img2pose_mm.datasets.lmdb_converter import convert
from img2pose_mm.datasets.lmdb_record import decode_record, encode_record
from img2pose_mm.structures import POSE_SENTINEL, global_to_local, pose_to_bbox, rotation_angle_between

from .conftest import REF68, project, random_image, synthetic_poses, write_image, write_json_list

REPO = Path(__file__).resolve().parents[2]


def read_lmdb(path):
    """Every (key, value) of an LMDB as bytes."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = {bytes(k): bytes(v) for k, v in txn.cursor()}
    env.close()
    return items


def records(path):
    items = read_lmdb(path)
    keys = json.loads(items[b'__keys__'])
    return {k: decode_record(items[k.encode()], k) for k in keys}, items


def quiet_convert(*args, **kwargs):
    messages = []
    kwargs.setdefault('progress', False)
    # these tests check the conversion's mechanics against exact projections: label in
    # the image camera and keep every image (box-camera labelling: test_labelling.py)
    kwargs.setdefault('labelling', 'image')
    kwargs.setdefault('keep_images_without_pose', True)
    summary = convert(*args, log=messages.append, **kwargs)
    return summary, '\n'.join(messages)


def test_round_trip(synthetic_set, tmp_path):
    json_path, truth = synthetic_set
    summary, _ = quiet_convert(json_path, tmp_path / 'out', 'train', train=True)
    recs, items = records(summary['lmdb'])
    assert list(recs) == [f'{line:08d}' for line in sorted(truth)]
    assert int(items[b'__len__']) == len(truth) == summary['images']
    assert summary['faces'] == sum(len(t['poses']) for t in truth.values())
    assert summary['faces_without_pose'] == 1
    assert summary['faces_without_pose_records'] == [(2, 1)]
    assert not summary['skipped']
    assert not (tmp_path / 'out' / 'train.lmdb.partial').exists()

    local_valid = []
    for key, (header, arrays, image) in recs.items():
        t = truth[int(key)]
        assert header['line'] == int(key)
        assert (header['height'], header['width']) == t['shape']
        assert image == Path(t['image']).read_bytes()          # bytes as in the file
        # boxes are clipped to the image (check_boxes)
        h, w = t['shape']
        np.testing.assert_allclose(arrays['bboxes'], t['boxes'][:, :4].clip(0, [w, h, w, h]))
        valid = arrays['pose_valid']
        np.testing.assert_array_equal(valid, t['valid'])
        assert (arrays['poses'][~valid] == POSE_SENTINEL).all()
        assert (arrays['local_poses'][~valid] == POSE_SENTINEL).all()
        assert (arrays['landmarks'][~valid] == -1).all()
        if valid.any():
            est = torch.from_numpy(arrays['poses'][valid])
            gt = torch.from_numpy(t['poses'][valid])
            assert rotation_angle_between(est[:, :3], gt[:, :3]).max() < 1e-3
            np.testing.assert_allclose(est[:, 3:], gt[:, 3:], rtol=1e-3)
            box = pose_to_bbox(est, REF68, t['shape'])
            assert 'pose_bboxes' not in arrays          # derived, never stored
            np.testing.assert_allclose(arrays['local_poses'][valid],
                                       global_to_local(est, box, t['shape']).numpy())
            np.testing.assert_allclose(arrays['landmarks'][valid], t['landmarks'][valid])
            local_valid.append(arrays['local_poses'][valid])
    for _, arrays, _ in recs.values():      # box scores and reference poses: not stored
        assert not {'scores', 'gt_poses_reference'} & set(arrays)
    assert recs['00000004'][1]['landmarks'].shape == (2, 5, 2)
    assert recs['00000005'][1]['poses'].shape == (0, 6)

    local = np.concatenate(local_valid)
    mean = np.load(summary['pose_mean'])
    std = np.load(summary['pose_stddev'])
    assert mean.shape == std.shape == (6,)
    np.testing.assert_allclose(mean, local.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(std, local.std(0), rtol=1e-12, atol=1e-12)
    assert Path(summary['pose_mean']).name == 'train_pose_mean.npy'
    meta = json.loads(items[b'__meta__'])
    assert meta['complete'] and meta['images'] == len(truth)


def test_no_statistics_without_train(synthetic_set, tmp_path):
    json_path, _ = synthetic_set
    summary, _ = quiet_convert(json_path, tmp_path, 'val')
    assert summary['pose_mean'] is None
    assert not (tmp_path / 'val_pose_mean.npy').exists()


def test_five_point_poses_match_truth(tmp_path):
    rng = np.random.default_rng(7)
    shape = (200, 260)
    write_image(tmp_path / 'a.png', random_image(rng, shape))
    poses = synthetic_poses(rng, shape, 6, size_px=(40, 90))
    from .conftest import REF5
    lm = project(poses, shape, REF5)
    boxes = pose_to_bbox(poses, REF68, shape)
    write_json_list(tmp_path / 'l.json', [dict(image_path='a.png', bboxes=boxes.tolist(),
                                               landmarks=lm.tolist())])
    summary, _ = quiet_convert(tmp_path / 'l.json', tmp_path, 'five')
    (_, arrays, _), = records(summary['lmdb'])[0].values()
    est = torch.from_numpy(arrays['poses'])
    assert rotation_angle_between(est[:, :3], poses[:, :3]).max() < 1e-3


def test_interrupted_conversion_resumes_to_the_same_lmdb(synthetic_set, tmp_path, monkeypatch):
    json_path, _ = synthetic_set
    reference, _ = quiet_convert(json_path, tmp_path / 'ref', 'train', train=True)

    real_build = lmdb_converter.build_record
    calls = {'n': 0}

    def crashing_build(*args, **kwargs):
        calls['n'] += 1
        if calls['n'] == 5:
            raise RuntimeError('simulated crash')
        return real_build(*args, **kwargs)

    monkeypatch.setattr(lmdb_converter, 'build_record', crashing_build)
    out = tmp_path / 'run'
    with pytest.raises(RuntimeError, match='simulated crash'):
        quiet_convert(json_path, out, 'train', train=True, commit_every=2)
    assert (out / 'train.lmdb.partial').is_dir()
    assert not (out / 'train.lmdb').exists()
    assert not (out / 'train_pose_mean.npy').exists()
    partial = read_lmdb(out / 'train.lmdb.partial')
    assert len([k for k in partial if not k.startswith(b'__')]) == 4   # two commits of two
    monkeypatch.setattr(lmdb_converter, 'build_record', real_build)

    summary, log = quiet_convert(json_path, out, 'train', train=True, resume=True)
    assert summary['reused'] == 4
    assert '4 kept from the interrupted run' in log
    assert read_lmdb(out / 'train.lmdb') == read_lmdb(reference['lmdb'])
    for stat in ('pose_mean', 'pose_stddev'):
        np.testing.assert_array_equal(np.load(summary[stat]), np.load(reference[stat]))

    # resuming a finished conversion is a no-op (statistics rewritten)
    (out / 'train_pose_mean.npy').unlink()
    again, log = quiet_convert(json_path, out, 'train', train=True, resume=True)
    assert 'already complete' in log
    assert again['images'] == summary['images'] and again['faces'] == summary['faces']
    np.testing.assert_array_equal(np.load(again['pose_mean']), np.load(reference['pose_mean']))
    # without resume, a finished LMDB is rebuilt and replaced
    rebuilt, log = quiet_convert(json_path, out, 'train', train=True)
    assert 'replacing the previous' in log and rebuilt['reused'] == 0
    assert read_lmdb(out / 'train.lmdb') == read_lmdb(reference['lmdb'])
    assert not list(out.glob('*.old*'))


def test_resume_refuses_a_different_source(synthetic_set, tmp_path, monkeypatch):
    json_path, _ = synthetic_set
    monkeypatch.setattr(lmdb_converter, 'build_record',
                        lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        quiet_convert(json_path, tmp_path, 'x')
    monkeypatch.undo()
    with open(json_path, 'a') as f:
        f.write('{"image_path": "images/img1.png", "bboxes": [], "landmarks": []}\n')
    with pytest.raises(ValueError, match='json_sha1'):
        quiet_convert(json_path, tmp_path, 'x', resume=True)
    summary, _ = quiet_convert(json_path, tmp_path, 'x')          # a fresh start works
    with open(json_path, 'a') as f:
        f.write('\n')
    with pytest.raises(ValueError, match='run without resume'):
        quiet_convert(json_path, tmp_path, 'x', resume=True)      # finished, other source


def test_bad_input_is_reported_and_skipped(tmp_path):
    rng = np.random.default_rng(3)
    shape = (120, 160)
    write_image(tmp_path / 'good.png', random_image(rng, shape))
    (tmp_path / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0 this is not a jpeg' * 20)
    jpeg = (tmp_path / 'good.jpg')
    write_image(jpeg, random_image(rng, shape))
    (tmp_path / 'truncated.jpg').write_bytes(jpeg.read_bytes()[:-200])
    (tmp_path / 'a_folder.png').mkdir()
    poses = synthetic_poses(rng, shape, 2)
    lm = project(poses, shape).tolist()
    box = [[10, 10, 50, 50], [60, 10, 100, 50]]
    face = dict(bboxes=box, landmarks=lm)
    entries = [
        dict(image_path='good.png', **face),                                   # 1 ok
        dict(image_path='corrupt.jpg', **face),                                # 2 corrupt
        dict(image_path='missing.png', **face),                                # 3 missing
        dict(image_path='a_folder.png', **face),                               # 4 unreadable
        '{"image_path": "good.png", "bboxes": [',                              # 5 malformed
        dict(image_path='good.png', bboxes=box, landmarks=[lm[0]]),            # 6 count
        dict(image_path='good.png', bboxes=box, landmarks=[lm[0], [[1, 2]] * 7]),  # 7 shape
        dict(image_path='good.png', bboxes=box, landmarks=[lm[0], -1]),        # 8 no pose
        dict(image_path='truncated.jpg', **face),                              # 9 truncated
        dict(bboxes=box, landmarks=lm),                                        # 10 no path
        '',                                                                    # blank: ignored
        dict(image_path=str(tmp_path / 'good.png'), **face),                   # 12 absolute
    ]
    json_path = write_json_list(tmp_path / 'bad.json', entries)
    summary, log = quiet_convert(json_path, tmp_path / 'out', 'bad', train=True)
    skipped = dict(summary['skipped'])
    assert sorted(skipped) == [2, 3, 4, 5, 6, 7, 9, 10]
    assert 'corrupt' in skipped[2] and 'corrupt.jpg' in skipped[2]
    assert 'image not found' in skipped[3] and 'missing.png' in skipped[3]
    assert 'not a file' in skipped[4]
    assert 'malformed JSON' in skipped[5]
    assert '1 landmark sets for 2 boxes' in skipped[6]
    assert 'shape' in skipped[7]
    assert 'truncated' in skipped[9]
    assert 'image_path' in skipped[10]
    for line in skipped:       # each reported as it happens, naming the line
        assert f'line {line}: skipped' in log
    assert summary['images'] == 3
    recs, _ = records(summary['lmdb'])
    assert sorted(recs) == ['00000001', '00000008', '00000012']
    arrays = recs['00000008'][1]
    assert arrays['pose_valid'].tolist() == [True, False]
    assert (arrays['poses'][1] == POSE_SENTINEL).all()
    assert (arrays['landmarks'][1] == -1).all()
    assert summary['faces_without_pose_records'] == [(8, 1)]
    assert 'line 8 face 1' in log and 'landmarks missing (-1): 1' in log


def test_cli(synthetic_set, tmp_path):
    json_path, truth = synthetic_set
    out = tmp_path / 'cli'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'dataset_converters' / 'json_to_lmdb.py'),
         str(json_path), str(out), '--name', 'set', '--train', '--image-root',
         str(json_path.parent)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (out / 'set.lmdb').is_dir()
    assert np.load(out / 'set_pose_mean.npy').shape == (6,)
    # the original's labelling by default: the image without a face is skipped
    assert f'images: {len(truth) - 1}' in proc.stderr
    assert 'line 5: no face with a pose (no face)' in proc.stderr
    assert '6/6' in proc.stderr       # progress bar


def test_record_rejects_garbage():
    with pytest.raises(ValueError, match="record 'k'"):
        decode_record(b'garbage bytes', 'k')
    good = encode_record(dict(line=1), dict(a=np.zeros(2)), b'img')
    with pytest.raises(ValueError, match='size mismatch'):
        decode_record(good + b'x', 'k')
    header, arrays, image = decode_record(good, 'k')
    assert header['line'] == 1 and image == b'img' and arrays['a'].shape == (2,)
