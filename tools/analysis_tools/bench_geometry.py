#!/usr/bin/env python
"""Micro-benchmark: img2pose's pose decode of N proposals, batched vs a per-box loop.

    python tools/analysis_tools/bench_geometry.py --num-proposals 1000 --repeats 20

See docs/benchmarks.md, "Batched geometry vs the per-box way".
"""
from __future__ import annotations

import argparse
import functools
import json

import numpy as np
import torch
from benchmark import time_it  # the benchmark's timer (this script's folder)
from scipy.spatial.transform import Rotation

from img2pose_mm.structures import load_reference_points
from img2pose_mm.task_modules import PoseBBoxCoder


def decode_loop(boxes: np.ndarray, local_poses: np.ndarray, img_shape, points: np.ndarray,
                mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-box numpy/scipy decode (the baseline)."""
    h, w = img_shape
    f = w + h
    K = np.array([[f, 0, w // 2], [0, f, h // 2], [0, 0, 1.0]])
    out = []
    for box, pred in zip(boxes, local_poses):
        pose = pred * std + mean
        bw, bh = box[2] - box[0], box[3] - box[1]
        Kb = K.copy()
        Kb[0, 2] = box[0] + bw // 2
        Kb[1, 2] = box[1] + bh // 2
        t = pose[3:].copy()
        t[2] *= f / (bw + bh)
        A = np.linalg.inv(K) @ Kb
        rot = Rotation.from_matrix(A @ Rotation.from_rotvec(pose[:3]).as_matrix())
        t = A @ t
        cam = points @ rot.as_matrix().T + t
        uv = cam @ K.T
        uv = uv[:, :2] / uv[:, 2:]
        lo, hi = uv.min(0), uv.max(0)
        size = np.trunc((hi - lo) * 1.1)
        c = (lo + hi) / 2
        x1, y1 = c - size / 2
        x2, y2 = c + size / 2
        rz = rot.as_rotvec()[2]
        if abs(rz) > 2.5:
            y2 += 0.3 * (hi[1] - lo[1])
        elif rz > 1:
            x2 += 0.3 * (hi[0] - lo[0])
        elif rz < -1:
            x1 -= 0.3 * (hi[0] - lo[0])
        else:
            y1 -= 0.3 * (hi[1] - lo[1])
        b = np.trunc([x1, y1, x2, y2])
        out.append(np.clip(b, 0, [w, h, w, h]))
    return np.asarray(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--num-proposals', type=int, default=1000)
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--img-shape', type=int, nargs=2, default=(640, 960), metavar=('H', 'W'))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='write the numbers as JSON here')
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    h, w = args.img_shape
    n = args.num_proposals
    xy = rng.uniform(0, [w - 64, h - 64], (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(16, 300, (n, 2))], 1)
    boxes = np.minimum(boxes, [w, h, w, h])
    mean = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 4.5])
    std = np.array([0.3, 0.5, 0.2, 0.1, 0.1, 1.0])
    preds = rng.normal(0, 0.5, (n, 6))
    points = load_reference_points().astype(np.float64)

    boxes_t = torch.tensor(boxes, dtype=torch.float32, device=args.device)
    preds_t = torch.tensor(preds, dtype=torch.float32, device=args.device)
    device = torch.device(args.device)
    loop_ms = time_it(lambda: decode_loop(boxes, preds, (h, w), points, mean, std),
                      torch.device('cpu'), 1, max(3, args.repeats // 5))
    ref = decode_loop(boxes, preds, (h, w), points, mean, std)
    result = dict(num_proposals=n, img_shape=[h, w], device=args.device, loop_ms=loop_ms,
                  torch_threads=torch.get_num_threads())
    print(f'decode of {n} proposals, {h}x{w}, {args.device}; per-box numpy/scipy loop: '
          f'{loop_ms:.1f} ms')
    for method in ('markley', 'svd'):
        coder = PoseBBoxCoder(face_model=dict(rotation_method=method), pose_mean=mean.tolist(),
                              pose_stddev=std.tolist())
        batched_ms = time_it(functools.partial(coder.decode, boxes_t, preds_t, (h, w)), device, 1,
                             args.repeats)
        ours = coder.decode(boxes_t.double(), preds_t.double(), (h, w))[1].cpu().numpy()
        # scipy >= 1.16 orthogonalises with SVD, so only 'svd' is expected to agree exactly
        agree = float(np.mean(np.abs(ours - ref).max(1) <= 1.0))
        result[method] = dict(batched_ms=batched_ms, speedup=loop_ms / batched_ms,
                              boxes_agree_with_loop_within_1px=agree)
        print(f'  batched ({method:7s}): {batched_ms:6.2f} ms -> {loop_ms / batched_ms:5.0f}x '
              f'faster; boxes agree with the loop within 1 px: {agree:.1%}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
