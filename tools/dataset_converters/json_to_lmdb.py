"""Convert an img2pose JSON list into a face-pose LMDB.

Usage::

    python tools/dataset_converters/json_to_lmdb.py train.json data/ --name WIDER_train \\
        --train [--resume] [--image-root DIR] [--reference-points-68 P.npy] \\
        [--reference-points-5 P.npy]

Writes ``data/WIDER_train.lmdb`` (through ``WIDER_train.lmdb.partial``, renamed when
complete) and, with ``--train``, ``WIDER_train_pose_mean.npy`` /
``WIDER_train_pose_stddev.npy`` (statistics of the box-local poses). Bad lines are
reported with their line number and skipped; ``--resume`` continues an interrupted run
(and is a no-op on a finished one); without it an existing LMDB is rebuilt and replaced.

Python API (the same function)::

    from tools.dataset_converters.json_to_lmdb import convert
    summary = convert(json_path, out_dir, name, train=False, resume=False, image_root=None)

The implementation lives in :mod:`img2pose_mm.datasets.lmdb_converter` so that it is
importable from the installed package.
"""
import sys

from img2pose_mm.datasets.lmdb_converter import convert, format_summary, main, parse_args

__all__ = ['convert', 'format_summary', 'main', 'parse_args']

if __name__ == '__main__':
    sys.exit(main())
