"""The 3D reference face: 68 iBUG landmarks, 5 alignment points and a textured mesh.

img2pose_mm ships its own face (built by ``tools/misc/build_reference_face.py`` from
the BSD-3 "James" scan of menpo3d). The original img2pose files
(``pose_references/reference_3d_68_points_trans.npy`` and
``reference_3d_5_points_trans.npy``) load as well: pass their paths.

Frame: x right, y down, z away from the camera; identity rotation = frontal face.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Union

import numpy as np

DATA_DIR = Path(__file__).parent / 'data'
DEFAULT_68 = DATA_DIR / 'reference_face_68.npy'
DEFAULT_5 = DATA_DIR / 'reference_face_5.npy'
DEFAULT_MESH = DATA_DIR / 'reference_face_mesh.npz'

PathLike = Union[str, os.PathLike]
# 5 points: left eye centre, right eye centre, nose tip, left and right mouth corners
# (left/right as seen in the image).
FIVE_POINT_NAMES = ('left_eye', 'right_eye', 'nose', 'mouth_left', 'mouth_right')


@lru_cache(maxsize=16)
def _load_points(path: str, num_points: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'reference points file not found: {path}')
    points = np.load(path)
    if points.shape != (num_points, 3):
        raise ValueError(f'{path}: expected reference points of shape ({num_points}, 3), '
                         f'got {points.shape}')
    if not np.isfinite(points).all():
        raise ValueError(f'{path}: reference points contain NaN or inf')
    return points.astype(np.float32)


def load_reference_points(path: Optional[PathLike] = None, num_points: int = 68) -> np.ndarray:
    """Reference points ``(num_points, 3)`` float32: ours by default, or an ``.npy`` path.

    Args:
        path: ``None`` for the packaged face, else a ``.npy`` file such as the original
            img2pose ``reference_3d_68_points_trans.npy``.
        num_points: 68 or 5.
    """
    if num_points not in (5, 68):
        raise ValueError(f'num_points must be 5 or 68, got {num_points}')
    if path is None:
        path = DEFAULT_68 if num_points == 68 else DEFAULT_5
    return _load_points(str(path), num_points).copy()


@dataclass(frozen=True)
class FaceMesh:
    """A triangle mesh with per-vertex RGB colours, in the reference-face frame."""
    vertices: np.ndarray   # (V, 3) float32
    triangles: np.ndarray  # (F, 3) int32, indices into vertices
    colors: np.ndarray     # (V, 3) uint8 RGB


def load_reference_mesh(path: Optional[PathLike] = None) -> FaceMesh:
    """The reference face mesh (``.npz`` with vertices, triangles, colors)."""
    path = Path(path) if path is not None else DEFAULT_MESH
    if not path.is_file():
        raise FileNotFoundError(f'reference mesh file not found: {path}')
    with np.load(path) as data:
        missing = {'vertices', 'triangles', 'colors'} - set(data.files)
        if missing:
            raise ValueError(f'{path}: mesh file lacks {sorted(missing)}')
        mesh = FaceMesh(data['vertices'].astype(np.float32), data['triangles'].astype(np.int32),
                        data['colors'].astype(np.uint8))
    if mesh.triangles.size and mesh.triangles.max() >= len(mesh.vertices):
        raise ValueError(f'{path}: triangle index out of range')
    if mesh.colors.shape != mesh.vertices.shape:
        raise ValueError(f'{path}: colors {mesh.colors.shape} do not match vertices '
                         f'{mesh.vertices.shape}')
    return mesh


# iBUG-68 left/right mirror pairs (0-based), used for flips and symmetry checks.
IBUG_68_MIRROR_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17 + i, 26 - i) for i in range(5)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]
    + [(60, 64), (61, 63), (65, 67)])


def mirror_permutation(num_points: int = 68) -> np.ndarray:
    """Index permutation that swaps left and right points (68 iBUG or 5 points)."""
    if num_points == 5:
        return np.array([1, 0, 2, 4, 3])
    if num_points != 68:
        raise ValueError(f'num_points must be 5 or 68, got {num_points}')
    perm = np.arange(68)
    for a, b in IBUG_68_MIRROR_PAIRS:
        perm[a], perm[b] = b, a
    return perm


def five_from_68(points68: np.ndarray) -> np.ndarray:
    """The 5 alignment points from 68 iBUG points ``(..., 68, D)``: eye centres, nose, mouth."""
    points68 = np.asarray(points68)
    return np.stack([points68[..., 36:42, :].mean(-2), points68[..., 42:48, :].mean(-2),
                     points68[..., 30, :], points68[..., 48, :], points68[..., 54, :]], -2)
