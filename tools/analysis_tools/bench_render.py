#!/usr/bin/env python
"""Benchmark Sim3DR: the reference face mesh rendered into a 640x480 image.

    python tools/analysis_tools/bench_render.py --repeat 50

Prints the median milliseconds per render at a few sizes and poses against the 20 ms
target (docs/benchmarks.md, "Rendering (Sim3DR)").
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from benchmark import time_it  # the benchmark's timer (this script's folder)

import Sim3DR
from img2pose_mm.structures import euler_to_rotvec, load_reference_mesh
from img2pose_mm.visualization.draw import project_mesh


def face_vertices(height: int, width: int, face_height: float, angles=(0., 0., 0.)) -> np.ndarray:
    """Pixel-space vertices of the reference mesh, centred, about ``face_height`` px tall."""
    mesh = load_reference_mesh()
    rotvec = euler_to_rotvec(torch.tensor([angles], dtype=torch.float64))
    focal = width + height
    extent = float(np.ptp(mesh.vertices[:, 1]))
    pose = torch.cat([rotvec, torch.tensor([[0., 0., focal * extent / face_height]],
                                           dtype=torch.float64)], 1)
    vertices, _ = project_mesh(pose, (height, width), mesh)
    return vertices[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeat', type=int, default=50)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    args = parser.parse_args()
    torch.set_num_threads(1)

    mesh = load_reference_mesh()
    h, w = args.height, args.width
    print(f'Sim3DR: reference mesh {len(mesh.vertices)} vertices / {len(mesh.triangles)} '
          f'triangles into {w}x{h}, median of {args.repeat} runs')
    cases = [('whole head fills the height', h * 0.95, (0., 0., 0.)),
             ('half height, yaw 45', h * 0.5, (10., 45., 5.)),
             ('small, 60 px', 60., (0., -30., 0.))]
    background = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    results = []
    for name, size, angles in cases:
        vertices = face_vertices(h, w, size, angles)

        def run_render(vertices=vertices):
            image = background.copy()
            Sim3DR.render(vertices, mesh.triangles, mesh.colors, image)

        def run_raster(vertices=vertices):
            Sim3DR.rasterize(vertices, mesh.triangles, h, w)

        cpu = torch.device('cpu')
        render_ms = time_it(run_render, cpu, 3, args.repeat)
        raster_ms = time_it(run_raster, cpu, 3, args.repeat)
        results.append(render_ms)
        print(f'  {name:<30s} render (shaded) {render_ms:7.2f} ms | z-buffer only '
              f'{raster_ms:7.2f} ms')
    worst = max(results)
    verdict = 'OK' if worst < 20 else 'SLOWER THAN TARGET'
    print(f'median render ms (worst case): {worst:.2f} ms -> {verdict} (target < 20 ms)')


if __name__ == '__main__':
    main()
