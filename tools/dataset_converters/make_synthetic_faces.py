#!/usr/bin/env python
"""Make the embedded synthetic 6DoF face dataset (img2pose_mm's default data).

What the images hold, the output layout and how runs resume: docs/datasets.md.

    python tools/dataset_converters/make_synthetic_faces.py --out-dir data/synthetic --workers 2
"""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence, Tuple

import cv2
import torch

from img2pose_mm.datasets.face_annotations import iter_json_list
from img2pose_mm.datasets.lmdb_converter import convert as convert_json_list
from img2pose_mm.utils import atomic_write, with_progress

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synthetic_scenes import SPLIT_IDS, SynthParams, encode_image, generate_sample  # noqa: E402


@contextlib.contextmanager
def torch_threads(num: int) -> Iterator[None]:
    """Temporarily set torch's intra-op threads.

    The generator runs thousands of tiny tensor ops; with several threads on a busy
    CPU each one waits for the pool (milliseconds instead of microseconds).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(num)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------
def image_relpath(split: str, index: int, params: SynthParams) -> str:
    return f'images/{split}/{index:06d}.{params.ext}'


def _part_path(out_dir: Path, split: str, index: int) -> Path:
    return out_dir / '.parts' / split / f'{index:06d}.json'


def _make_one(job: Tuple[str, str, int, dict]) -> Tuple[int, dict]:
    """Worker: render, write the image and its annotation part; return the annotation."""
    out_dir, split, index, params = job
    params = SynthParams(**params)
    image, ann = generate_sample(split, index, params)
    rel = image_relpath(split, index, params)
    record = {'image_path': rel, **ann}
    atomic_write(Path(out_dir) / rel, encode_image(image, params))
    atomic_write(_part_path(Path(out_dir), split, index), json.dumps(record).encode())
    return index, record


def _init_worker() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _existing_records(out_dir: Path, split: str, num: int, params: SynthParams) -> Dict[int, dict]:
    """Records of a previous run (its split file and parts) whose images still exist."""
    found: Dict[int, dict] = {}
    by_path = {image_relpath(split, i, params): i for i in range(num)}
    split_file = out_dir / f'{split}.json'
    if split_file.is_file():
        for line_no, line in iter_json_list(split_file):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{split_file}:{line_no}: invalid JSON ({err}); '
                                 'use --overwrite') from err
            index = by_path.get(record.get('image_path'))
            if index is not None:
                found[index] = record
    for index in range(num):
        part = _part_path(out_dir, split, index)
        if index not in found and part.is_file():
            try:
                found[index] = json.loads(part.read_text())
            except json.JSONDecodeError:
                continue   # an interrupted write: generate again
    return {i: r for i, r in found.items() if (out_dir / r['image_path']).is_file()}


def _run_jobs(jobs: list, records: Dict[int, dict], workers: int, progress: bool,
              title: str) -> None:
    if progress:
        print(title, flush=True)
    pool = (mp.get_context('spawn').Pool(workers, initializer=_init_worker) if workers > 1
            else contextlib.nullcontext())
    with pool:
        results = pool.imap_unordered(_make_one, jobs) if workers > 1 else map(_make_one, jobs)
        for index, record in with_progress(results, len(jobs), progress):
            records[index] = record


def generate_split(out_dir: Path, split: str, num: int, params: SynthParams, workers: int = 0,
                   overwrite: bool = False, progress: bool = True) -> Path:
    """Generate ``num`` images of ``split``; write ``<out_dir>/<split>.json``; return it."""
    out_dir = Path(out_dir)
    records = {} if overwrite else _existing_records(out_dir, split, num, params)
    todo = [i for i in range(num) if i not in records]
    jobs = [(str(out_dir), split, i, asdict(params)) for i in todo]
    if todo:
        with torch_threads(1):
            _run_jobs(jobs, records, workers, progress, f'{split}: {len(todo)} images to render '
                      f'({num - len(todo)} reused)')
    lines = [json.dumps(records[i]) for i in range(num)]
    split_file = out_dir / f'{split}.json'
    atomic_write(split_file, ('\n'.join(lines) + '\n').encode() if lines else b'')
    shutil.rmtree(out_dir / '.parts' / split, ignore_errors=True)
    return split_file


def check_meta(out_dir: Path, params: SynthParams, overwrite: bool) -> None:
    """Record the parameters; refuse to mix images made with other parameters."""
    meta_path = out_dir / 'meta.json'
    meta = asdict(params)
    if meta_path.is_file() and not overwrite:
        try:
            old = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f'{meta_path}: invalid JSON ({err}); use --overwrite') from err
        if old != meta:
            diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
            raise ValueError(f'{out_dir} holds a dataset made with other parameters '
                             f'(old, new): {diff}; use --overwrite or another --out-dir')
    atomic_write(meta_path, (json.dumps(meta, indent=2) + '\n').encode())


def convert_split(json_path: Path, out_dir: Path, split: str, overwrite: bool = False) -> dict:
    """``<out_dir>/<split>.lmdb`` (+ pose statistics for train) from the split's JSON.

    An up-to-date LMDB is kept; one made from another version of the JSON (or any LMDB
    with ``overwrite``) is rebuilt.
    """
    args = (str(json_path), str(out_dir), split)
    # the renders' landmarks are exact projections in the image camera: label them in
    # that camera (the original's box-camera EPnP, json_to_lmdb's default, would move the
    # known poses by a few degrees)
    kwargs = dict(train=split == 'train', image_root=str(out_dir), labelling='image')
    if not overwrite:
        try:
            return convert_json_list(*args, resume=True, **kwargs)
        except ValueError as err:
            print(f'{split}.lmdb does not match {json_path.name} ({err}): rebuilding it',
                  file=sys.stderr)
    return convert_json_list(*args, resume=False, **kwargs)


def make_dataset(out_dir: Path, num_train: int, num_val: int, params: SynthParams,
                 workers: int = 0, overwrite: bool = False, lmdb: bool = True,
                 progress: bool = True) -> Dict[str, Path]:
    """Generate both splits (and their LMDBs); returns the split JSON paths."""
    params.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_meta(out_dir, params, overwrite)
    outputs = {}
    for split, num in (('train', num_train), ('val', num_val)):
        if num < 0:
            raise ValueError(f'--num-{split} must be >= 0, got {num}')
        outputs[split] = generate_split(out_dir, split, num, params, workers, overwrite,
                                        progress)
    if lmdb:
        for split, json_path in outputs.items():
            if (num_train, num_val)[SPLIT_IDS[split]] > 0:
                convert_split(json_path, out_dir, split, overwrite)
    return outputs


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out-dir', default='data/synthetic', help='output folder')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=50)
    parser.add_argument('--img-size', type=int, default=None,
                        help='square images of this side (default 256 unless --min/max-size)')
    parser.add_argument('--min-size', type=int, default=None, help='smallest image side')
    parser.add_argument('--max-size', type=int, default=None, help='largest image side')
    parser.add_argument('--min-faces', type=int, default=1)
    parser.add_argument('--max-faces', type=int, default=6)
    parser.add_argument('--min-face', type=float, default=24.0, help='smallest face box, pixels')
    parser.add_argument('--max-face-frac', type=float, default=0.5,
                        help='largest face box as a fraction of the short image side')
    parser.add_argument('--min-visible', type=float, default=0.2,
                        help='least visible share of a partly occluded face')
    parser.add_argument('--ext', choices=('jpg', 'png'), default='jpg')
    parser.add_argument('--jpeg-quality', type=int, default=92)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=0, help='worker processes (0: none)')
    parser.add_argument('--overwrite', action='store_true',
                        help='regenerate everything instead of reusing existing images')
    parser.add_argument('--no-lmdb', action='store_true', help='skip the LMDB conversion')
    args = parser.parse_args(argv)
    if args.img_size is not None and (args.min_size is not None or args.max_size is not None):
        parser.error('give --img-size or --min-size/--max-size, not both')
    if args.img_size is not None:
        args.min_size = args.max_size = args.img_size
    else:
        args.min_size = args.min_size or args.max_size or 256
        args.max_size = args.max_size or args.min_size
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    params = SynthParams(seed=args.seed, min_size=args.min_size, max_size=args.max_size,
                         min_faces=args.min_faces, max_faces=args.max_faces,
                         min_face=args.min_face, max_face_frac=args.max_face_frac,
                         min_visible=args.min_visible, ext=args.ext,
                         jpeg_quality=args.jpeg_quality)
    outputs = make_dataset(Path(args.out_dir), args.num_train, args.num_val, params,
                           workers=args.workers, overwrite=args.overwrite, lmdb=not args.no_lmdb)
    for split, path in outputs.items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()
