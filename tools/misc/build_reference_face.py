#!/usr/bin/env python
"""Build img2pose_mm's 3D reference face from the BSD-3 "James" scan of menpo3d.

The scan (``menpo3d/data/james.{obj,jpg,ljson}`` in the ``menpo3d==0.8.6`` source
distribution) is a textured face mesh in millimetres, +y up, facing +z, with 68
landmarks in menpo's own order. This script

1. reorders the landmarks to the iBUG-68 scheme;
2. turns the scan into img2pose's frame (x right, y down, z away from the camera)
   by a half turn about x;
3. removes the scan's tilt: the symmetry plane of the iBUG mirror pairs becomes the
   plane x = 0 (fixing yaw and roll), and the plane through the eye and mouth
   corners is turned to face the camera (fixing pitch);
4. makes the landmarks exactly mirror-symmetric (each pair is replaced by the mean
   of itself and its mirrored partner) and bends the mesh with a thin-plate spline
   so that it follows its landmarks;
5. centres the 68 landmarks on the origin and scales them so their largest |x| or
   |y| is 1;
6. colours every mesh vertex from the texture.

Outputs (small files inside the package, used by default everywhere)::

    img2pose_mm/structures/data/reference_face_68.npy   (68, 3) float32
    img2pose_mm/structures/data/reference_face_5.npy    (5, 3)  float32
    img2pose_mm/structures/data/reference_face_mesh.npz vertices, triangles, colors

The result is deterministic for a given sdist.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from img2pose_mm.structures.reference_face import IBUG_68_MIRROR_PAIRS, five_from_68
from img2pose_mm.utils import atomic_write

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / 'img2pose_mm' / 'structures' / 'data'
SDIST = 'menpo3d==0.8.6'
DATA_PREFIX = 'menpo3d-0.8.6/menpo3d/data/'

# menpo's 68-point order -> iBUG order (see docs/reference.md §9)
MENPO_TO_IBUG = (list(range(0, 17)) + list(range(29, 34)) + list(range(43, 48))
                 + list(range(34, 43)) + list(range(17, 23)) + list(range(23, 29))
                 + list(range(48, 68)))

FACIAL_PLANE = (36, 39, 42, 45, 48, 54)   # eye corners and mouth corners


def fetch_scan(sdist: Path | None) -> dict[str, bytes]:
    """Bytes of james.obj/jpg/ljson from the sdist (downloaded with pip if not given)."""
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
                   '--no-build-isolation', SDIST, '-d', tmp]
            print(f'downloading {SDIST} source distribution ...', flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            sdist = next(Path(tmp).glob('menpo3d-*.tar.gz'))
        with tarfile.open(sdist) as tar:
            return {name: tar.extractfile(DATA_PREFIX + name).read()
                    for name in ('james.obj', 'james.jpg', 'james.ljson')}


def parse_obj(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (V, 3), texture coords (T, 2), triangles (F, 3), texture triangles (F, 3)."""
    verts, uvs, tris, tex_tris = [], [], [], []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == 'v':
            verts.append([float(x) for x in parts[1:4]])
        elif parts[0] == 'vt':
            uvs.append([float(x) for x in parts[1:3]])
        elif parts[0] == 'f':
            corners = [p.split('/') for p in parts[1:]]
            if len(corners) != 3:
                raise ValueError(f'only triangles are supported, got: {line!r}')
            tris.append([int(c[0]) - 1 for c in corners])
            tex_tris.append([int(c[1]) - 1 for c in corners])
    return (np.asarray(verts, np.float64), np.asarray(uvs, np.float64),
            np.asarray(tris, np.int64), np.asarray(tex_tris, np.int64))


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``a`` to unit vector ``b``."""
    v, c = np.cross(a, b), float(np.dot(a, b))
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def canonical_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Rotation, centre and scale that put iBUG landmarks (in img2pose axes) frontal.

    Returns ``(R, centre, scale)`` with canonical points ``(p - centre) @ R.T / scale``.
    """
    left = np.array([p for p, _ in IBUG_68_MIRROR_PAIRS])
    right = np.array([q for _, q in IBUG_68_MIRROR_PAIRS])
    diffs = landmarks[right] - landmarks[left]
    # the symmetry plane's normal: the dominant direction of the mirror offsets
    normal = np.linalg.svd(diffs, full_matrices=False)[2][0]
    normal *= np.sign(normal @ diffs.sum(0))       # from subject's right to left = +x
    rot = rotation_between(normal, np.array([1.0, 0.0, 0.0]))
    pts = landmarks @ rot.T
    # pitch: make the plane of eye and mouth corners face the camera (-z)
    plane = pts[list(FACIAL_PLANE)]
    plane_normal = np.linalg.svd(plane - plane.mean(0))[2][2]
    plane_normal[0] = 0.0
    plane_normal /= np.linalg.norm(plane_normal)
    if plane_normal[2] > 0:
        plane_normal = -plane_normal
    rot = rotation_between(plane_normal, np.array([0.0, 0.0, -1.0])) @ rot
    pts = landmarks @ rot.T
    centre_rot = pts.mean(0)
    scale = float(np.abs(pts[:, :2] - centre_rot[:2]).max())
    centre = rot.T @ centre_rot
    return rot, centre, scale


def symmetrize(points: np.ndarray) -> np.ndarray:
    """Mirror-symmetric copy of iBUG points in a frame whose symmetry plane is x = 0."""
    mirror = np.array([-1.0, 1.0, 1.0])           # (x, y, z) -> (-x, y, z)
    out = points.copy()
    for a, b in IBUG_68_MIRROR_PAIRS:
        mean = (points[a] + points[b] * mirror) / 2
        out[a], out[b] = mean, mean * mirror
    paired = {i for pair in IBUG_68_MIRROR_PAIRS for i in pair}
    centre_line = [i for i in range(len(points)) if i not in paired]
    out[centre_line, 0] = 0.0
    return out


def vertex_colors(texture_bgr: np.ndarray, uvs: np.ndarray, tris: np.ndarray,
                  tex_tris: np.ndarray, num_vertices: int) -> np.ndarray:
    """Average texture colour (RGB uint8) of each vertex over its texture corners."""
    h, w = texture_bgr.shape[:2]
    corner_uv = uvs[tex_tris.reshape(-1)]
    x = corner_uv[:, 0] * (w - 1)
    y = (1 - corner_uv[:, 1]) * (h - 1)
    x0 = np.clip(np.floor(x).astype(np.int64), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, h - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    tex = texture_bgr.astype(np.float64)
    sampled = ((1 - fy) * ((1 - fx) * tex[y0, x0] + fx * tex[y0, x0 + 1])
               + fy * ((1 - fx) * tex[y0 + 1, x0] + fx * tex[y0 + 1, x0 + 1]))
    sums = np.zeros((num_vertices, 3))
    counts = np.zeros(num_vertices)
    np.add.at(sums, tris.reshape(-1), sampled)
    np.add.at(counts, tris.reshape(-1), 1)
    colors = sums / np.maximum(counts, 1)[:, None]
    return np.round(colors[:, ::-1]).clip(0, 255).astype(np.uint8)


def build(files: dict[str, bytes]) -> dict[str, np.ndarray]:
    verts, uvs, tris, tex_tris = parse_obj(files['james.obj'].decode())
    ljson = json.loads(files['james.ljson'])
    groups = ljson.get('groups', {'': ljson})
    landmarks = np.asarray(next(iter(groups.values()))['landmarks']['points'], np.float64)
    if landmarks.shape != (68, 3):
        raise ValueError(f'expected 68 3D landmarks in james.ljson, got {landmarks.shape}')
    flip = np.diag([1.0, -1.0, -1.0])              # +y up/+z towards viewer -> y down/z away
    landmarks = landmarks[MENPO_TO_IBUG] @ flip.T
    verts = verts @ flip.T
    rot, centre, scale = canonical_frame(landmarks)
    points68 = (landmarks - centre) @ rot.T / scale
    vertices = (verts - centre) @ rot.T / scale
    symmetric = symmetrize(points68)
    bend = RBFInterpolator(points68, symmetric - points68, kernel='thin_plate_spline')
    vertices = vertices + bend(vertices)
    print(f'symmetrised landmarks: largest move {np.abs(symmetric - points68).max():.4f}')
    offset = symmetric.mean(0)
    points68, vertices = symmetric - offset, vertices - offset
    points5 = five_from_68(points68)
    texture = cv2.imdecode(np.frombuffer(files['james.jpg'], np.uint8), cv2.IMREAD_COLOR)
    colors = vertex_colors(texture, uvs, tris, tex_tris, len(verts))
    tilt = np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))
    print(f'removed a tilt of {tilt:.2f} deg; scale {scale:.3f} mm per unit')
    return dict(points68=points68.astype(np.float32), points5=points5.astype(np.float32),
                vertices=vertices.astype(np.float32), triangles=tris.astype(np.int32),
                colors=colors)


def save(arrays: dict[str, np.ndarray], out_dir: Path) -> None:
    """Write the three files atomically."""
    def write(name: str, writer) -> None:
        buf = io.BytesIO()
        writer(buf)
        atomic_write(out_dir / name, buf.getvalue())

    write('reference_face_68.npy', lambda f: np.save(f, arrays['points68']))
    write('reference_face_5.npy', lambda f: np.save(f, arrays['points5']))
    write('reference_face_mesh.npz', lambda f: np.savez_compressed(
        f, vertices=arrays['vertices'], triangles=arrays['triangles'], colors=arrays['colors']))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sdist', type=Path, help=f'a local {SDIST} .tar.gz (else pip downloads it)')
    parser.add_argument('--out-dir', type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    arrays = build(fetch_scan(args.sdist))
    save(arrays, args.out_dir)
    p = arrays['points68']
    print(f'wrote {args.out_dir}: 68 + 5 points (x {p[:, 0].min():.2f}..{p[:, 0].max():.2f}, '
          f'y {p[:, 1].min():.2f}..{p[:, 1].max():.2f}), mesh {len(arrays["vertices"])} vertices '
          f'/ {len(arrays["triangles"])} triangles')
    return 0


if __name__ == '__main__':
    sys.exit(main())
