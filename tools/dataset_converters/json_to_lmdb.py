#!/usr/bin/env python
"""Convert an img2pose JSON list into a face-pose LMDB (docs/datasets.md, "Command-line
converters"); the conversion itself is :func:`img2pose_mm.datasets.lmdb_converter.convert`.

    python tools/dataset_converters/json_to_lmdb.py train.json data/ --name WIDER_train --train
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from img2pose_mm.datasets.face_labelling import LABELLING_MODES, MIN_POSE_BOX_IOU
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
    parser.add_argument('--labelling', choices=LABELLING_MODES, default='box',
                        help="'box' (default): the original img2pose labelling, EPnP in the "
                             "camera of each annotated box cast to integers (the statistics "
                             "the released weights expect); 'image': EPnP in the full image's "
                             "camera, exact for landmarks projected by that camera; "
                             "'pose_para': 300W-LP (a JSON list with pose_para angles, see "
                             '300wlp_to_json.py): rotation from the angles, translation from '
                             "EPnP in the full image's camera, box = the roll-aware box of the "
                             'landmarks')
    parser.add_argument('--min-pose-iou', type=float, default=MIN_POSE_BOX_IOU,
                        help='a pose whose box overlaps its annotated box less is implausible '
                             '(the face gets no pose)')
    parser.add_argument('--keep-images-without-pose', action='store_true',
                        help='keep images where no face has a pose (the original skips them)')
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
                image_root=args.image_root, face_model=face_model, labelling=args.labelling,
                min_pose_iou=args.min_pose_iou,
                keep_images_without_pose=args.keep_images_without_pose,
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
