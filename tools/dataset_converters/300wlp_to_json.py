#!/usr/bin/env python
"""Convert the 300W-LP release into an img2pose JSON list with the ground-truth angles.

Usage::

    python tools/dataset_converters/300wlp_to_json.py data/300W_LP data/300W_LP.json \\
        [--landmarks pt2d|pts_2d|pts_3d] [--subsets AFW AFW_Flip ...] [--no-flip] \\
        [--strict] [--resume]
    python tools/dataset_converters/json_to_lmdb.py data/300W_LP.json data/ \\
        --name 300W_LP --image-root data/300W_LP --labelling pose_para

One line per image: the image path (relative to the data root), the landmarks' box, the
68 landmarks and ``pose_para`` (pitch, yaw, roll in radians: the first three numbers of
``Pose_Para``). ``--labelling pose_para`` then labels every face as the original's
300W-LP loader (docs/reference.md §6): rotation from the angles, translation from EPnP
of the landmarks in the full image's camera, box = the roll-aware 1.1 box of the
landmarks, box-local pose relative to it.

Landmarks: ``pt2d`` of each ``.mat`` by default (every image has one, the ``_Flip``
copies included); ``--landmarks pts_2d`` / ``pts_3d`` reads ``landmarks/<subset>/
<stem>_pts.mat`` instead, and images without such a file (the ``_Flip`` folders have
none) use their ``pt2d``. The ``_Flip`` folders are converted like the others (their
``pt2d`` and ``Pose_Para`` describe the mirrored image); ``--no-flip`` leaves them out.

Bad samples (a ``.mat`` without ``Pose_Para`` or ``pt2d``, landmarks of the wrong shape,
an image without its ``.mat`` or a ``.mat`` without its image) are reported with the
file and what is wrong and left out, and the conversion goes on (exit status 0 when at
least one image was written); ``--strict`` stops at the first one (exit status 1) and
keeps the lines written so far in ``OUT.json.partial``: fix the file and rerun with
``--resume``. Ctrl-C keeps them too.

The conversion itself is :func:`img2pose_mm.datasets.w300lp.convert_300wlp`.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from img2pose_mm.datasets.face_annotations import AnnotationError
from img2pose_mm.datasets.w300lp import LANDMARK_SOURCES, convert_300wlp


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Convert 300W-LP (image folders of .jpg + .mat with pt2d and Pose_Para) '
                    'into an img2pose JSON list with pose_para angles.')
    parser.add_argument('data_root', help='the 300W-LP folder (AFW/, AFW_Flip/, ..., '
                                          'landmarks/)')
    parser.add_argument('out_json', help='the JSON list to write')
    parser.add_argument('--landmarks', choices=LANDMARK_SOURCES, default='pt2d',
                        help="'pt2d' (default): the .mat beside each image; 'pts_2d' / "
                             "'pts_3d': landmarks/<subset>/<stem>_pts.mat (images without "
                             'one, e.g. the _Flip folders, use their pt2d)')
    parser.add_argument('--subsets', nargs='+', default=None,
                        help='only these folders (default: every folder with samples)')
    parser.add_argument('--no-flip', action='store_true',
                        help='leave out the _Flip folders (the mirrored copies)')
    parser.add_argument('--strict', action='store_true',
                        help='stop at the first bad sample instead of reporting and '
                             'skipping it')
    parser.add_argument('--resume', action='store_true',
                        help='continue an interrupted conversion (OUT.json.partial)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point."""
    args = parse_args(argv)
    try:
        summary = convert_300wlp(args.data_root, args.out_json, landmarks=args.landmarks,
                                 subsets=args.subsets, flipped=not args.no_flip,
                                 strict=args.strict, resume=args.resume,
                                 progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f'\ninterrupted: the lines written so far are kept in {args.out_json}.partial; '
              'run the same command with --resume to continue', file=sys.stderr)
        return 130
    except AnnotationError as err:
        print(f'\nconversion stopped (--strict): {err}\nthe lines written so far are kept '
              f'in {args.out_json}.partial; fix the sample (or leave out --strict) and run '
              'the same command with --resume', file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as err:
        print(f'conversion failed: {err}', file=sys.stderr)
        return 1
    if summary['images'] == 0:
        print('conversion failed: no image could be converted', file=sys.stderr)
        return 1
    print(f'next: python tools/dataset_converters/json_to_lmdb.py {args.out_json} OUT_DIR '
          f'--name 300W_LP --image-root {args.data_root} --labelling pose_para',
          file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
