"""The labelling fixture of tests/data/original/labels is what its generator makes, and the
original's labels stored next to it are complete (see that folder's README)."""
import json
from pathlib import Path

import numpy as np
from PIL import Image

from img2pose_mm.testing.label_fixture import FACES, label_dataset_entries

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
