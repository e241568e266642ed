#!/usr/bin/env python
"""Convert the 300W-LP release into an img2pose JSON list with the ground-truth angles
(docs/datasets.md, "Command-line converters"); the conversion itself is
:func:`img2pose_mm.datasets.w300lp.convert_300wlp`.

    python tools/dataset_converters/300wlp_to_json.py data/300W_LP data/300W_LP.json
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
