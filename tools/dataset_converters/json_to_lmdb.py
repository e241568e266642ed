#!/usr/bin/env python
"""Convert an img2pose JSON list into a face-pose LMDB.

Usage::

    python tools/dataset_converters/json_to_lmdb.py train.json data/ --name WIDER_train \\
        --train [--resume] [--image-root DIR] [--reference-points-68 P.npy] \\
        [--reference-points-5 P.npy]

Writes ``data/WIDER_train.lmdb`` (through ``WIDER_train.lmdb.partial``, renamed when
complete) and, with ``--train``, ``WIDER_train_pose_mean.npy`` /
``WIDER_train_pose_stddev.npy`` (statistics of the box-local poses). Bad lines are
reported with their line number and skipped; ``--resume`` continues an interrupted run
(Ctrl-C keeps what was committed) and is a no-op on a finished one; without it an
existing LMDB is rebuilt and replaced.

The conversion itself is :func:`img2pose_mm.datasets.lmdb_converter.convert`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from img2pose_mm.datasets.lmdb_converter import convert


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Convert an img2pose JSON list (one object per line: image_path, bboxes, '
                    'landmarks) into a face-pose LMDB with EPnP poses.')
    parser.add_argument('json_list', help='the JSON list')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--name', required=True, help='base name: <name>.lmdb, '
                        '<name>_pose_mean.npy, <name>_pose_stddev.npy')
    parser.add_argument('--train', action='store_true',
                        help='also write the local-pose mean and stddev')
    parser.add_argument('--resume', action='store_true',
                        help='continue an interrupted conversion (<name>.lmdb.partial)')
    parser.add_argument('--image-root', default=None,
                        help='folder relative image paths start from (default: the '
                             "JSON list's folder)")
    parser.add_argument('--reference-points-68', default=None,
                        help='.npy (68, 3) reference points (default: packaged face)')
    parser.add_argument('--reference-points-5', default=None,
                        help='.npy (5, 3) reference points (default: packaged face)')
    parser.add_argument('--commit-every', type=int, default=100,
                        help='records per LMDB transaction')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point."""
    args = parse_args(argv)
    face_model = dict(reference_points=args.reference_points_68,
                      reference_points_5=args.reference_points_5)
    try:
        convert(args.json_list, args.out_dir, args.name, train=args.train, resume=args.resume,
                image_root=args.image_root, face_model=face_model,
                commit_every=args.commit_every, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f'\ninterrupted: the records written so far are kept in '
              f'{args.out_dir}/{args.name}.lmdb.partial; run the same command with --resume '
              'to continue', file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError) as err:
        print(f'conversion failed: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
