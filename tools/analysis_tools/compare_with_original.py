#!/usr/bin/env python
"""Run the original img2pose and img2pose_mm on the same images and compare them.

    python tools/analysis_tools/compare_with_original.py --original-repo ~/img2pose [--training]

The original is imported from your own checkout (nothing of it is copied into this
project). What is compared, and how: docs/fidelity.md; the fixtures that
``--write-fixture`` stores: tests/data/original/README.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tools.fidelity.detections import run_detections  # noqa: E402
from tools.fidelity.label_fixture import make_label_dataset  # noqa: E402
from tools.fidelity.labels import run_labels  # noqa: E402
from tools.fidelity.original_layout import SAMPLE_PHOTOS  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--original-repo',
                        help='your checkout of github.com/vitoralbiero/img2pose')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights')
    parser.add_argument('--original-checkpoint', help="a real original checkpoint "
                        "({'fpn_model': ...}) instead of seeded weights")
    parser.add_argument('--release-dir', help='folder of the original release files '
                        '(img2pose_v1.pth, WIDER_train_pose_{mean,stddev}_v1.npy, ...)')
    parser.add_argument('--pose-mean')
    parser.add_argument('--pose-stddev')
    parser.add_argument('--reference-points-68')
    parser.add_argument('--reference-points-5')
    parser.add_argument('--checkout-references', action='store_true',
                        help="seeded runs: give both models the checkout's pose_references "
                             "instead of img2pose_mm's packaged face")
    parser.add_argument('--rotation-method', choices=('svd', 'markley'), default='svd',
                        help="img2pose_mm's nearest rotation ('svd' = scipy >= 1.16)")
    parser.add_argument('--images', nargs='+', help='image files (default: the scikit-image '
                        'photos ' + ', '.join(SAMPLE_PHOTOS) + ')')
    parser.add_argument('--photos', nargs='+', default=list(SAMPLE_PHOTOS),
                        metavar='NAME', help='scikit-image photos to use without --images')
    parser.add_argument('--proposals', type=int, default=1000, help='RPN test proposals')
    parser.add_argument('--score-thr', type=float, default=0.05)
    parser.add_argument('--frozen-bn-eps', type=float, default=None,
                        help="set the original's FrozenBatchNorm2d eps (0 = torchvision "
                             '0.8, the stack the release was trained on; default: today\'s)')
    parser.add_argument('--speed', action='store_true',
                        help='also time both models per stage (preprocess, backbone+FPN, '
                             'RPN, RoI features, heads, decode+NMS; a training step: '
                             'forward+loss, backward, optimizer)')
    parser.add_argument('--speed-repeats', type=int, default=5,
                        help='timed rounds over the images (after one warm-up round); '
                             'the tables show medians')
    parser.add_argument('--train-batch', type=int, default=2,
                        help='images per training step in --speed')
    parser.add_argument('--resize', type=int, nargs=2, metavar=('H', 'W'),
                        help='resize every image to H x W (bilinear, before both models)')
    parser.add_argument('--no-train-speed', action='store_true',
                        help='--speed without the training step')
    parser.add_argument('--min-share', type=float, default=0.99,
                        help='exit status 2 when an image agrees less than this')
    parser.add_argument('--write-fixture', metavar='DIR',
                        help='store the original\'s outputs (numbers only) under DIR')
    parser.add_argument('--training', action='store_true',
                        help='compare training instead of detections: the loss terms, every '
                             "gradient and the parameters after --training-steps SGD steps "
                             "with the samplers' draws equalised (tools/fidelity/training.py)")
    parser.add_argument('--training-steps', type=int, default=10,
                        help='SGD steps of --training')
    parser.add_argument('--labels', metavar='JSONL',
                        help="run the original's dataset labelling on a JSON-lines dataset "
                             'instead of comparing detections')
    parser.add_argument('--make-labels-dataset', metavar='DIR',
                        help='write the labelling fixture dataset (images + faces.jsonl, '
                             'tools/fidelity/label_fixture.py) under DIR and exit')
    args = parser.parse_args(argv)
    if args.original_repo is None and not args.make_labels_dataset:
        parser.error('--original-repo is required')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.make_labels_dataset:
        print(f'wrote {make_label_dataset(args.make_labels_dataset)}')
        return 0
    if args.labels:
        return run_labels(args)
    if args.training:
        from tools.fidelity.training_run import run_training
        return run_training(args)
    return run_detections(args)


if __name__ == '__main__':
    sys.exit(main())
