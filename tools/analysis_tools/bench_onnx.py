#!/usr/bin/env python
"""onnxruntime against PyTorch on this machine: latency side by side at equal outputs.

    python tools/analysis_tools/bench_onnx.py configs/img2pose_r18.py [--checkpoint CKPT] \\
        --img-size 640 960 --num-proposals 1000 100 --threads 2 --repeats 10 \\
        --work-dir work_dirs/bench_onnx --out work_dirs/bench_onnx/result.json

For each proposal count (``model.test_cfg.rpn.max_per_img``) the detector is built,
exported to a dynamic ONNX graph (``--onnx-dir`` reuses graphs exported before) and both
run on the same input, alternately, ``--repeats`` times after a warm-up: PyTorch's
``model.test_step`` (our default inference, float32) and
:class:`~img2pose_mm.apis.onnx_backend.OnnxRuntimeDetector`'s ``test_step`` (the graph
plus the same mapping back to the original image), each with ``--threads`` threads. The
outputs are compared (detection counts, largest box, score and pose differences).

The input is a scikit-image photo (``--image``) resized to ``--img-size`` (the test
pipeline keeps that size) with uniform noise of ``--noise`` grey levels. Flat regions of
a photo give anchors exactly equal scores, and the order of equal scores is decided by
PyTorch's unstable sort, i.e. by neither runtime's definition: the noise keeps the
comparison about the numbers. Without ``--checkpoint`` the weights are random with
face-like pose statistics (see ``benchmark.py``), and the RPN's objectness layer is
drawn so that its scores spread over decades like a trained RPN's (the default
initialisation gives every anchor 0.5 +- 0.02, where float rounding alone reorders the
top anchors); every proposal above the score threshold is decoded.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Dict, List

import numpy as np
import torch
from benchmark import timed_call  # the benchmark's timer (this script's folder)
from mmengine.config import DictAction

RANDOM_WEIGHT_STATS = dict(pose_mean=[0.0, 0.0, 0.0, 0.0, 0.0, 5.0],
                           pose_stddev=[0.2, 0.4, 0.2, 0.3, 0.3, 1.0])


def photo(name: str, h: int, w: int, noise: int = 0, seed: int = 0) -> np.ndarray:
    """A scikit-image photo as RGB uint8 ``(h, w, 3)``, plus uniform noise in
    ``[-noise, noise]`` grey levels."""
    import cv2
    from skimage import data

    from img2pose_mm.apis import to_rgb_uint8
    image = cv2.resize(to_rgb_uint8(getattr(data, name)()), (w, h),
                       interpolation=cv2.INTER_LINEAR).astype(np.int16)
    image += np.random.default_rng(seed).integers(-noise, noise + 1, image.shape,
                                                  dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


@torch.no_grad()
def spread_objectness(model: torch.nn.Module, seed: int = 0) -> None:
    """Random RPN objectness weights whose scores spread like a trained RPN's
    (logits about -3 +- 2) instead of the default initialisation's 0.5 +- 0.02."""
    generator = torch.Generator().manual_seed(seed)
    layer = model.rpn_head.rpn_cls
    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
    layer.bias.fill_(-4.0)


def time_pair(run_a, run_b, warmup: int, repeats: int) -> Dict[str, List[float]]:
    """Alternate two callables; wall times in ms after ``warmup`` rounds."""
    for _ in range(warmup):
        run_a()
        run_b()
    times: Dict[str, List[float]] = {'a': [], 'b': []}
    for _ in range(repeats):
        for key, run in (('a', run_a), ('b', run_b)):
            times[key].append(timed_call(run, torch.device('cpu'))[1])
    return times


def bench_one(args, proposals: int, image: np.ndarray) -> dict:
    from mmengine.dataset import pseudo_collate

    from img2pose_mm.apis import Img2Pose
    from img2pose_mm.apis.onnx_backend import OnnxRuntimeDetector
    from img2pose_mm.deployment import compare_detections, export_onnx

    coder = 'model.roi_head.bbox_head.bbox_coder.'
    options = {'model.test_cfg.rpn.max_per_img': proposals}
    if args.checkpoint is None:
        options.update({coder + key: value for key, value in RANDOM_WEIGHT_STATS.items()})
    options.update(args.cfg_options or {})
    torch.manual_seed(0)
    detector = Img2Pose(config=args.config, checkpoint=args.checkpoint, device='cpu',
                        cfg_options=options)
    if args.checkpoint is None:
        spread_objectness(detector.model)
    onnx_file = os.path.join(args.work_dir, f'img2pose_{proposals}.onnx')
    export_s = None
    if not (args.reuse and os.path.isfile(onnx_file)):
        start = time.perf_counter()
        export_onnx(detector.model, onnx_file, dynamic=True, input_shape=args.img_size,
                    checkpoint=args.checkpoint)
        export_s = time.perf_counter() - start
    graph = OnnxRuntimeDetector(onnx_file, num_threads=args.threads)
    data = pseudo_collate([detector.pipeline(dict(img=np.ascontiguousarray(image[..., ::-1]),
                                                  img_id=0))])
    if tuple(data['data_samples'][0].img_shape) != tuple(args.img_size):
        raise ValueError(f'the test pipeline resized the input to '
                         f'{data["data_samples"][0].img_shape}: pick --img-size it keeps')
    model = detector.model
    with torch.no_grad():
        times = time_pair(lambda: model.test_step(data), lambda: graph.test_step(data),
                          args.warmup, args.repeats)
        reference = model.test_step(data)[0].pred_instances
    exported = graph.test_step(data)[0].pred_instances
    diff = compare_detections(reference, exported)
    torch_ms, onnx_ms = statistics.median(times['a']), statistics.median(times['b'])
    return dict(proposals=proposals, onnx_file=onnx_file, export_s=export_s,
                pytorch_ms=torch_ms, onnxruntime_ms=onnx_ms, speedup=torch_ms / onnx_ms,
                pytorch_runs_ms=times['a'], onnxruntime_runs_ms=times['b'],
                equality=diff.as_dict(), equal=diff.within(1.0, 1e-4, 1e-3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config')
    parser.add_argument('--checkpoint', help='weights (random initialisation without)')
    parser.add_argument('--img-size', type=int, nargs=2, default=[640, 960], metavar=('H', 'W'))
    parser.add_argument('--num-proposals', type=int, nargs='+', default=[1000, 100])
    parser.add_argument('--threads', type=int, default=2,
                        help='threads of both runtimes (torch intra-op, onnxruntime intra-op)')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--image', default='astronaut', help='scikit-image photo name')
    parser.add_argument('--noise', type=int, default=3,
                        help='uniform noise added to the photo, in grey levels')
    parser.add_argument('--work-dir', default='work_dirs/bench_onnx',
                        help='where the exported graphs go')
    parser.add_argument('--reuse', action='store_true',
                        help='reuse graphs already exported to --work-dir')
    parser.add_argument('--out', help='write the numbers as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    args.img_size = tuple(args.img_size)
    torch.set_num_threads(args.threads)
    os.makedirs(args.work_dir, exist_ok=True)
    image = photo(args.image, *args.img_size, noise=args.noise)
    import onnxruntime
    result = dict(config=args.config, checkpoint=args.checkpoint, img_size=list(args.img_size),
                  image=args.image, noise=args.noise, threads=args.threads, repeats=args.repeats,
                  torch=torch.__version__, onnxruntime=onnxruntime.__version__,
                  cpu=platform.processor() or platform.machine(), runs=[])
    print(f'{args.config} at {args.img_size[0]}x{args.img_size[1]}, {args.threads} threads, '
          f'median of {args.repeats} alternating runs')
    print('| proposals | PyTorch (ms) | onnxruntime (ms) | speed-up | detections | '
          'max box diff (px) | max score diff | max pose diff |')
    print('|---:|---:|---:|---:|---|---:|---:|---:|')
    for proposals in args.num_proposals:
        run = bench_one(args, proposals, image)
        result['runs'].append(run)
        eq = run['equality']
        print(f'| {proposals} | {run["pytorch_ms"]:.0f} | {run["onnxruntime_ms"]:.0f} | '
              f'{run["speedup"]:.2f}x | {eq["count_a"]} / {eq["count_b"]} | {eq["boxes"]:.3g} | '
              f'{eq["scores"]:.3g} | {eq["poses"]:.3g} |', flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
