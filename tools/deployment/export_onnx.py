#!/usr/bin/env python
"""Export an img2pose detector to one ONNX graph of standard operators.

What the graph holds, its input and outputs and how to run it: docs/deployment.md.

    python tools/deployment/export_onnx.py configs/img2pose_r18.py CKPT img2pose_r18.onnx --dynamic
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

import numpy as np


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='the model config')
    parser.add_argument('checkpoint', help='trained or converted weights (.pth)')
    parser.add_argument('output', help='the ONNX file to write')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic input height and width (any image size); otherwise '
                             'the graph takes --shape images only')
    parser.add_argument('--shape', type=int, nargs=2, default=(640, 960), metavar=('H', 'W'),
                        help='input size to trace with (the fixed size without --dynamic; '
                             'a dynamic one-stage graph needs sides above 128)')
    parser.add_argument('--opset', type=int, default=None,
                        help="ONNX opset (>= 18; default: the exporter's)")
    parser.add_argument('--no-simplify', action='store_true',
                        help='keep the graph as the exporter wrote it')
    parser.add_argument('--verify', metavar='IMAGE', default=None,
                        help="an image to run through PyTorch and onnxruntime: prints both "
                             "detection counts and the largest differences ('random' for noise)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (e.g. the test settings)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from img2pose_mm.apis import Img2Pose
    from img2pose_mm.deployment import export_onnx

    try:
        detector = Img2Pose(config=args.config, checkpoint=args.checkpoint, device='cpu',
                            cfg_options=args.cfg_options)
    except (FileNotFoundError, ValueError, TypeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    start = time.perf_counter()
    try:
        export_onnx(detector.model, args.output, dynamic=args.dynamic, input_shape=args.shape,
                    opset=args.opset, simplify=not args.no_simplify,
                    checkpoint=args.checkpoint)
    except (TypeError, ValueError, ImportError) as err:     # what cannot be exported, and why
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'saved {args.output} ({time.perf_counter() - start:.0f} s, checked with '
          'onnx.checker)')
    if args.verify:
        print(verify(detector, args.checkpoint, args.output, args.verify, args.shape,
                     args.dynamic))
    return 0


def verify(detector, checkpoint: str, onnx_file: str, image: str, shape,
           dynamic: bool) -> str:
    """PyTorch and onnxruntime on one image: detection counts and largest differences.

    A fixed-size graph gets the image resized to its size, and both detectors keep it.
    """
    import cv2

    from img2pose_mm.apis import Img2Pose, load_image
    from img2pose_mm.deployment.comparison import compare_detections

    if image == 'random':
        array = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    else:
        array = load_image(image)
    sizes = {}
    if not dynamic:
        array = cv2.resize(array, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        sizes = dict(min_size=min(shape), max_size=max(shape))
        detector = Img2Pose(config=detector.cfg, checkpoint=checkpoint, device='cpu', **sizes)
    graph = Img2Pose(backend='onnxruntime', onnx_file=onnx_file, config=detector.cfg,
                     device='cpu', score_threshold=detector.score_threshold, **sizes)
    reference = detector.predict([array])[0].pred_instances
    exported = graph.predict([array])[0].pred_instances
    return 'PyTorch vs onnxruntime: ' + compare_detections(reference, exported).summary()


if __name__ == '__main__':
    sys.exit(main())
