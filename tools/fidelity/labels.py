"""The labelling oracle: the original's dataset labelling run on a JSON-lines dataset.

``utils/json_loader.py`` + ``convert_json_list_to_lmdb.py`` of the checkout, with
img2pose_mm's packaged reference face (``--labels JSONL``); ``--write-fixture`` stores
the labels (:func:`tools.fidelity.fixtures.write_labels_fixture`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .fixtures import stack_versions, write_labels_fixture
from .original import import_original, original_commit


def write_original_layout(jsonl: Path, workdir: Path) -> Tuple[Path, Path, List[dict]]:
    """The original's input layout for a JSON-lines dataset: one JSON file per image and a
    list file of their paths (``convert_json_list_to_lmdb.py --json_list``); returns the
    list file, the dataset root (``--dataset_path``) and the entries."""
    entries = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    frames = workdir / 'frames'
    frames.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, entry in enumerate(entries):
        path = frames / f'{i:05d}.json'
        path.write_text(json.dumps(entry))
        paths.append(str(path))
    list_file = workdir / 'faces_list.txt'
    list_file.write_text('\n'.join(paths) + '\n')
    return list_file, jsonl.parent.resolve(), entries


def run_original_labelling(repo: str, jsonl: Path, points_68: str, points_5: str,
                           workdir: Path) -> Dict[str, object]:
    """The original's labels of a JSON-lines dataset.

    Per image, ``utils/json_loader.FramesJsonList`` (the kept int boxes, box-local and
    global poses, -9 rows for faces without a pose); then ``convert_json_list_to_lmdb.
    json_list_to_lmdb`` with ``--train`` on the same list decides which images are written
    (the others are skipped) and computes the pose mean/std.
    """
    mods = import_original(repo, 'utils.json_loader', 'convert_json_list_to_lmdb')
    loader_mod, lmdb_mod = mods['utils.json_loader'], mods['convert_json_list_to_lmdb']
    list_file, root, entries = write_original_layout(jsonl, workdir)
    dataset = loader_mod.FramesJsonList(np.load(points_5), np.load(points_68), str(list_file),
                                        str(root))
    images = []
    for index in range(len(dataset)):
        raw, global_poses, boxes, local_poses, landmarks = dataset[index]
        # which input faces survived (the loader returns their landmark lists as given)
        kept = [next(j for j, lm in enumerate(entries[index]['landmarks']) if lm == want)
                for want in landmarks]
        images.append(dict(raw=raw, boxes=np.asarray(boxes, np.float64).reshape(-1, 4),
                           local_poses=np.asarray(local_poses, np.float64).reshape(-1, 6),
                           global_poses=np.asarray(global_poses, np.float64).reshape(-1, 6),
                           kept=np.asarray(kept, np.int64)))
    dest = workdir / 'lmdb'
    args = argparse.Namespace(json_list=str(list_file), dataset_path=str(root), num_workers=0,
                              write_frequency=5000, dest=str(dest), train=True,
                              threed_5_points=points_5, threed_68_points=points_68)
    dest.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):
        lmdb_mod.json_list_to_lmdb(args)
    name = list_file.name[:-4]
    written = _lmdb_images(dest / f'{name}.lmdb', lmdb_mod.msgpack.loads)
    for image in images:
        image['skipped'] = image['raw'] not in written
    return dict(images=images, entries=entries,
                pose_mean=np.load(dest / f'{name}_pose_mean.npy'),
                pose_stddev=np.load(dest / f'{name}_pose_stddev.npy'))


def _lmdb_images(path: Path, loads) -> List[bytes]:
    """The raw image bytes of every record of the original's LMDB."""
    import lmdb
    env = lmdb.open(str(path), subdir=path.is_dir(), readonly=True, lock=False)
    with env.begin() as txn:
        keys = loads(txn.get(b'__keys__'))
        records = [loads(txn.get(key)) for key in keys]
    env.close()
    return [record[0] for record in records]


def run_labels(args) -> int:
    from img2pose_mm.structures.reference_face import DEFAULT_5, DEFAULT_68
    jsonl = Path(args.labels)
    points_68 = args.reference_points_68 or str(DEFAULT_68)
    points_5 = args.reference_points_5 or str(DEFAULT_5)
    with tempfile.TemporaryDirectory(prefix='img2pose_labels_') as tmp:
        result = run_original_labelling(args.original_repo, jsonl, points_68, points_5,
                                        Path(tmp))
    names = [Path(e['image_path']).stem for e in result['entries']]
    print(f'original: {args.original_repo} @ {original_commit(args.original_repo)}; '
          f'{jsonl}: {len(names)} images; reference points {points_68}, {points_5}')
    np.set_printoptions(precision=5, suppress=True, linewidth=120)
    for name, image in zip(names, result['images']):
        state = 'skipped (no face with a pose)' if image['skipped'] else 'written'
        print(f'{name}: faces kept {image["kept"].tolist()} of '
              f'{len(result["entries"][names.index(name)]["bboxes"])}; {state}')
        for box, local, glob in zip(image['boxes'], image['local_poses'], image['global_poses']):
            print(f'  box {box.astype(int).tolist()}  local {local}  global {glob}')
    print(f'pose mean   {result["pose_mean"]}\npose stddev {result["pose_stddev"]}')
    if args.write_fixture:
        packaged = os.path.samefile(points_68, DEFAULT_68) and os.path.samefile(points_5, DEFAULT_5)
        if not packaged:
            print('--write-fixture stores labels made with the packaged face only',
                  file=sys.stderr)
            return 1
        settings = dict(dataset=jsonl.name, reference_points='img2pose_mm packaged face',
                        original_commit=original_commit(args.original_repo), **stack_versions())
        path = write_labels_fixture(Path(args.write_fixture), names, result, settings)
        print(f'wrote {path} ({path.stat().st_size / 1024:.0f} KiB)')
    return 0
