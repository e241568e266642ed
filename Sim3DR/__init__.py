"""Sim3DR: a small CPU mesh renderer (C++ z-buffer rasteriser, Cython binding).

Vertices are given in pixel space: ``x`` right and ``y`` down in pixels (pixel
centres at integer coordinates) and a depth ``z`` where smaller is nearer. Triangles
are vertex indices. Rendering writes into an existing ``(H, W, 3)`` uint8 image, which
is the background; colours are per vertex and interpolated barycentrically, lit with
the Phong reflection model (ambient + diffuse + specular, one directional light).

Example::

    import numpy as np
    import Sim3DR

    image = np.zeros((480, 640, 3), np.uint8)
    Sim3DR.render(vertices, triangles, colors, image)          # in place
    image, raster = Sim3DR.render(vertices, triangles, colors, image, return_raster=True)
    raster.mask, raster.depth, raster.triangle_ids

The package imports nothing from img2pose_mm. The compiled extension is built by
``python setup.py build_ext --inplace`` or ``pip install -e .``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ['Raster', 'Light', 'DEFAULT_LIGHT', 'render', 'rasterize', 'vertex_normals',
           'normalize_colors', 'extension_available']

ArrayLike = Union[np.ndarray, Sequence]


class Raster(NamedTuple):
    """Buffers of a rasterisation: per-pixel nearest depth and triangle index."""
    depth: np.ndarray         # (H, W) float32, +inf where nothing was drawn
    triangle_ids: np.ndarray  # (H, W) int32, -1 where nothing was drawn

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: pixels covered by a triangle."""
        return self.triangle_ids >= 0


class Light(NamedTuple):
    """One directional light and the Phong weights.

    ``direction`` points from the surface towards the light in the vertex frame
    (x right, y down, z away from the viewer); it is normalised when used.
    """
    direction: Tuple[float, float, float] = (0.3, -0.5, -1.0)
    color: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.45
    diffuse: float = 0.6
    specular: float = 0.15
    shininess: float = 16.0


DEFAULT_LIGHT = Light()


def _ext():
    try:
        from . import _rasterize
    except ImportError as err:  # pragma: no cover - depends on the build
        raise ImportError(
            'Sim3DR: the compiled extension Sim3DR._rasterize is missing; build it with '
            '`python setup.py build_ext --inplace` or `pip install -e .` in the repository '
            f'root ({err})') from err
    return _rasterize


def extension_available() -> bool:
    """Whether the compiled rasteriser can be imported."""
    try:
        _ext()
    except ImportError:
        return False
    return True


def _as_vertices(vertices: ArrayLike) -> np.ndarray:
    vertices = np.ascontiguousarray(vertices, dtype=np.float32)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f'Sim3DR: vertices must be (V, 3), got shape {vertices.shape}')
    return vertices


def _as_triangles(triangles: ArrayLike, num_vertices: int) -> np.ndarray:
    triangles = np.asarray(triangles)
    if triangles.size == 0:
        return np.zeros((0, 3), np.int32)
    if triangles.ndim != 2 or triangles.shape[1] != 3:
        raise ValueError(f'Sim3DR: triangles must be (F, 3), got shape {triangles.shape}')
    if not np.issubdtype(triangles.dtype, np.integer):
        raise TypeError(f'Sim3DR: triangles must be integer indices, got {triangles.dtype}')
    lo, hi = int(triangles.min()), int(triangles.max())
    if lo < 0 or hi >= num_vertices:
        raise ValueError(f'Sim3DR: triangle indices span [{lo}, {hi}] but there are '
                         f'{num_vertices} vertices')
    return np.ascontiguousarray(triangles, dtype=np.int32)


def normalize_colors(colors: ArrayLike, num_vertices: int) -> np.ndarray:
    """Per-vertex colours as float32 ``(V, 3)`` in 0..1.

    Accepts uint8 (0..255) or float (0..1) colours, per vertex ``(V, 3)`` or one
    colour ``(3,)`` for every vertex.
    """
    colors = np.asarray(colors)
    scale = 1.0 / 255.0 if colors.dtype == np.uint8 else 1.0
    colors = colors.astype(np.float32) * np.float32(scale)
    if colors.shape == (3,):
        colors = np.broadcast_to(colors, (num_vertices, 3))
    if colors.shape != (num_vertices, 3):
        raise ValueError(f'Sim3DR: colors must be (V, 3) or (3,) with V={num_vertices}, '
                         f'got shape {colors.shape}')
    return np.ascontiguousarray(colors)


def vertex_normals(vertices: ArrayLike, triangles: ArrayLike) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)`` float32 (zero for unused vertices).

    A normal follows the winding of its triangles: ``(b - a) x (c - a)``.
    """
    vertices = _as_vertices(vertices)
    triangles = _as_triangles(triangles, len(vertices))
    normals = np.zeros_like(vertices)
    _ext().vertex_normals(vertices, triangles, normals)
    return normals


def _new_raster(height: int, width: int) -> Raster:
    return Raster(np.full((height, width), np.inf, np.float32),
                  np.full((height, width), -1, np.int32))


def _check_raster(raster: Raster, height: int, width: int) -> None:
    depth, ids = raster
    if (not isinstance(depth, np.ndarray) or depth.dtype != np.float32
            or depth.shape != (height, width) or not depth.flags.c_contiguous):
        raise ValueError(f'Sim3DR: raster.depth must be a C-contiguous float32 array of shape '
                         f'({height}, {width})')
    if (not isinstance(ids, np.ndarray) or ids.dtype != np.int32
            or ids.shape != (height, width) or not ids.flags.c_contiguous):
        raise ValueError(f'Sim3DR: raster.triangle_ids must be a C-contiguous int32 array of '
                         f'shape ({height}, {width})')


def _run_raster(vertices: np.ndarray, triangles: np.ndarray, raster: Raster,
                near: Optional[float]) -> Tuple[int, Tuple[int, int, int, int]]:
    near_z = float('nan') if near is None else float(near)
    return _ext().rasterize(vertices, triangles, raster.depth, raster.triangle_ids, near_z)


def rasterize(vertices: ArrayLike, triangles: ArrayLike, height: int, width: int,
              raster: Optional[Raster] = None, near: Optional[float] = None) -> Raster:
    """Z-buffer visibility of a mesh: nearest depth and triangle index per pixel.

    Args:
        vertices: ``(V, 3)`` pixel-space vertices (x, y, depth).
        triangles: ``(F, 3)`` vertex indices.
        height, width: the image size.
        raster: buffers to update in place (e.g. from a previous call, to combine
            meshes); new ones (depth +inf, ids -1) by default. Triangle ids refer to
            ``triangles`` of the call that drew the pixel.
        near: skip triangles with a vertex whose depth is below ``near``.
            Triangles with non-finite vertices are always skipped.
    """
    vertices = _as_vertices(vertices)
    triangles = _as_triangles(triangles, len(vertices))
    if raster is None:
        raster = _new_raster(int(height), int(width))
    else:
        _check_raster(raster, int(height), int(width))
    _run_raster(vertices, triangles, raster, near)
    return raster


def render(vertices: ArrayLike, triangles: ArrayLike, colors: ArrayLike,
           image: Optional[np.ndarray] = None, *, size: Optional[Tuple[int, int]] = None,
           normals: Optional[ArrayLike] = None, light: Light = DEFAULT_LIGHT,
           shading: bool = True, alpha: float = 1.0, near: Optional[float] = None,
           raster: Optional[Raster] = None,
           return_raster: bool = False) -> Union[np.ndarray, Tuple[np.ndarray, Raster]]:
    """Render a mesh with per-vertex colours into ``image`` (in place).

    Args:
        vertices: ``(V, 3)`` pixel-space vertices: x, y in pixels, z depth (smaller
            is nearer). Depth is interpolated linearly in screen space.
        triangles: ``(F, 3)`` integer vertex indices.
        colors: ``(V, 3)`` or ``(3,)`` colours, uint8 0..255 or float 0..1, in the
            channel order of ``image``.
        image: ``(H, W, 3)`` C-contiguous uint8 array, the background, written in
            place. ``None`` renders onto a new black image of ``size`` ``(H, W)``.
        normals: ``(V, 3)`` vertex normals in the light's frame; by default computed
            from ``vertices``, which suits z in pixel-like units. For a projected
            camera-space mesh pass the camera-space normals.
        light: the directional light and Phong weights (see :class:`Light`).
        shading: ``False`` paints the interpolated vertex colours unlit.
        alpha: opacity of the mesh over the background (0..1).
        near: skip triangles with a vertex whose depth is below ``near`` (e.g. behind
            a camera); triangles with NaN/inf vertices and parts outside the image
            are skipped or clipped as well.
        raster: depth/triangle-id buffers shared with earlier calls (occlusion
            between separately rendered meshes); fresh ones by default.
        return_raster: also return the :class:`Raster` (depth, triangle ids, mask).

    Returns:
        ``image``, or ``(image, raster)`` when ``return_raster``.
    """
    if image is None:
        if size is None:
            raise ValueError('Sim3DR.render: give an image or its size (H, W)')
        image = np.zeros((int(size[0]), int(size[1]), 3), np.uint8)
    if (not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3
            or image.shape[2] != 3 or not image.flags.c_contiguous or not image.flags.writeable):
        desc = (f'{image.dtype} {image.shape}' if isinstance(image, np.ndarray)
                else type(image).__name__)
        raise ValueError('Sim3DR.render: image must be a writeable C-contiguous (H, W, 3) '
                         f'uint8 array, got {desc}')
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'Sim3DR.render: alpha must be in [0, 1], got {alpha}')
    direction = np.asarray(light.direction, np.float64)
    norm = np.linalg.norm(direction)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f'Sim3DR.render: invalid light direction {light.direction}')
    direction = tuple(float(v) for v in direction / norm)
    height, width = image.shape[:2]
    vertices = _as_vertices(vertices)
    triangles = _as_triangles(triangles, len(vertices))
    colors = normalize_colors(colors, len(vertices))
    if shading and normals is not None:
        normals = np.ascontiguousarray(normals, dtype=np.float32)
        if normals.shape != vertices.shape:
            raise ValueError(f'Sim3DR.render: normals must be {vertices.shape}, '
                             f'got {normals.shape}')
    previous_ids = None
    if raster is None:
        raster = _new_raster(height, width)
    else:
        # Only the pixels this call wins may be shaded with this call's triangles.
        _check_raster(raster, height, width)
        previous_ids = raster.triangle_ids.copy()
        raster.triangle_ids.fill(-1)
    _, box = _run_raster(vertices, triangles, raster, near)
    if not shading:
        normals = None
    elif normals is None:
        normals = vertex_normals(vertices, triangles) if box[0] <= box[2] else None
    _ext().shade(vertices, colors, normals, triangles, raster.triangle_ids,
                 box, image, direction, tuple(float(c) for c in light.color),
                 float(light.ambient), float(light.diffuse), float(light.specular),
                 float(light.shininess), float(alpha), bool(shading))
    if previous_ids is not None:
        # Pixels this call did not win keep the ids of the earlier calls.
        np.copyto(raster.triangle_ids, previous_ids, where=raster.triangle_ids < 0)
    if return_raster:
        return image, raster
    return image
