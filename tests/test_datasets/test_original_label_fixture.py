"""The labelling fixture of tests/data/original/labels is what its generator makes, and the
original's labels stored next to it are complete (see that folder's README)."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tools.fidelity.label_fixture import FACES, label_dataset_entries

LABELS = Path(__file__).resolve().parents[1] / 'data' / 'original' / 'labels'


def test_dataset_files_are_the_generators():
    # the committed files are the reference (the original's labels were made from them)
    lines = (LABELS / 'faces.jsonl').read_text().splitlines()
    stored, generated = [json.loads(line) for line in lines], label_dataset_entries()
    assert len(stored) == len(generated)
    for a, b in zip(stored, generated):
        assert a['image_path'] == b['image_path']
        assert [len(box) for box in a['bboxes']] == [len(box) for box in b['bboxes']]
        for key in ('bboxes', 'landmarks'):
            for x, y in zip(a[key], b[key]):
                np.testing.assert_allclose(x, y, atol=1e-3)
    for name, (h, w), _, _ in FACES:
        with Image.open(LABELS / 'images' / f'{name}.png') as img:
            assert img.size == (w, h)


def test_original_labels_cover_every_image():
    labels = np.load(LABELS / 'original_labels.npz')
    names = [str(n) for n in labels['image_names']]
    assert names == [name for name, *_ in FACES]
    assert labels['skipped'].tolist() == [False, False, False, True]
    assert labels['pose_mean'].shape == labels['pose_stddev'].shape == (6,)
    for name, _, _, faces in FACES:
        kept = labels[f'{name}/kept']
        # degenerate boxes are dropped, faces without a pose kept with -9 rows
        assert kept.tolist() == [i for i, f in enumerate(faces) if 'degenerate' not in f]
        for key in ('boxes', 'local_poses', 'global_poses'):
            assert labels[f'{name}/{key}'].shape[0] == len(kept)
        no_pose = [bool(faces[i].get('missing')) for i in kept]
        assert (labels[f'{name}/local_poses'][:, 0] == -9).tolist() == no_pose


def test_json_to_lmdb_gives_the_originals_labels(tmp_path):
    """json_to_lmdb.py --train (the original's labelling, its default) on the fixture: the
    same images, kept faces, integer boxes, box-local and global poses and statistics as
    the original's own labelling run on it (stored numbers, 1e-6)."""
    import subprocess
    import sys

    from img2pose_mm.datasets.lmdb_record import decode_record, open_lmdb_readonly, read_keys

    repo = LABELS.parents[3]
    proc = subprocess.run(
        [sys.executable, str(repo / 'tools' / 'dataset_converters' / 'json_to_lmdb.py'),
         str(LABELS / 'faces.jsonl'), str(tmp_path), '--name', 'labels', '--train',
         '--no-progress'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    labels = np.load(LABELS / 'original_labels.npz')
    names = [str(n) for n in labels['image_names']]
    env = open_lmdb_readonly(str(tmp_path / 'labels.lmdb'))
    with env.begin() as txn:
        keys = read_keys(txn, 'labels.lmdb')
        records = [decode_record(txn.get(k.encode()), k)[1] for k in keys]
    env.close()
    written = [name for name, skipped in zip(names, labels['skipped']) if not skipped]
    assert [names[int(k) - 1] for k in keys] == written
    for key, arrays in zip(keys, records):
        name = names[int(key) - 1]
        np.testing.assert_array_equal(arrays['faces'], labels[f'{name}/kept'])
        for ours, theirs in (('local_poses', 'local_poses'), ('poses', 'global_poses')):
            np.testing.assert_allclose(arrays[ours], labels[f'{name}/{theirs}'], rtol=0,
                                       atol=1e-6, err_msg=f'{name} {ours}')
        # the stored boxes are the original's integer boxes, clipped to the image
        with Image.open(LABELS / 'images' / f'{name}.png') as img:
            w, h = img.size
        np.testing.assert_array_equal(arrays['bboxes'],
                                      labels[f'{name}/boxes'].clip(0, [w, h, w, h]))
    np.testing.assert_allclose(np.load(tmp_path / 'labels_pose_mean.npy'), labels['pose_mean'],
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / 'labels_pose_stddev.npy'),
                               labels['pose_stddev'], rtol=0, atol=1e-6)
