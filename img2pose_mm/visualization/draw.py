"""Pure drawing functions for 6DoF face poses (numpy in, numpy out; RGB or BGR alike).

Used by :class:`PoseLocalVisualizer`, the synthetic-dataset generator and the demos.
Every pose is a global pose ``[rx, ry, rz, tx, ty, tz]`` relative to the camera of
the image it is drawn on (``image_intrinsics`` of ``img_shape``, by default the
drawn image's own ``(h, w)``, or the ``intrinsics`` given). All geometry comes from
:mod:`img2pose_mm.structures`; rasterisation from :mod:`Sim3DR`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

import Sim3DR
from img2pose_mm.structures import (
    FaceMesh,
    image_intrinsics,
    load_reference_mesh,
    project_points,
    rotvec_to_matrix,
    transform_points,
)

ArrayOrTensor = Union[np.ndarray, torch.Tensor, Sequence]
Color = Tuple[int, int, int]

# Axis colours in RGB order: x red, y green, z blue.
AXIS_COLORS: Tuple[Color, Color, Color] = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
# The drawn axes in the reference-face frame (x right, y down, z into the head):
# x to the face's right-hand side of the image, y up, z out of the face (where it looks).
AXIS_DIRECTIONS = np.array([[1., 0., 0.], [0., -1., 0.], [0., 0., -1.]])
# Vertices nearer than this (reference-face units) to the camera plane are not drawn.
NEAR_PLANE = 1e-2


@lru_cache(maxsize=1)
def _default_mesh() -> FaceMesh:
    return load_reference_mesh()


def _float64(values: ArrayOrTensor) -> np.ndarray:
    return np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values,
                      np.float64)


def _as_poses(poses: ArrayOrTensor) -> torch.Tensor:
    poses = torch.as_tensor(_float64(poses))
    if poses.numel() == 0:
        return poses.reshape(0, 6)
    if poses.ndim == 1:
        poses = poses[None]
    if poses.ndim != 2 or poses.shape[1] != 6:
        raise ValueError(f'poses must be (N, 6) [rx, ry, rz, tx, ty, tz], got '
                         f'{tuple(poses.shape)}')
    return poses


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        desc = f'{image.dtype} {image.shape}' if isinstance(image, np.ndarray) else type(image)
        raise ValueError(f'expected an (H, W, 3) uint8 image, got {desc}')


def _img_shape(image: np.ndarray, img_shape: Optional[Sequence[int]]) -> Tuple[int, int]:
    if img_shape is None:
        return int(image.shape[0]), int(image.shape[1])
    return int(img_shape[0]), int(img_shape[1])


def _intrinsics(img_shape: Sequence[int], intrinsics: Optional[ArrayOrTensor],
                like: torch.Tensor) -> torch.Tensor:
    """``intrinsics`` as a tensor like ``like``, or the camera of ``img_shape``."""
    if intrinsics is None:
        return image_intrinsics(img_shape, like)
    return torch.as_tensor(_float64(intrinsics)).to(like)


def project_mesh(poses: ArrayOrTensor, img_shape: Sequence[int],
                 mesh: Optional[FaceMesh] = None,
                 near: float = NEAR_PLANE,
                 intrinsics: Optional[ArrayOrTensor] = None) -> Tuple[np.ndarray, np.ndarray]:
    """The mesh of each pose in pixel space, ready for :func:`Sim3DR.render`.

    Args:
        poses: ``(N, 6)`` global poses.
        img_shape: ``(h, w)`` of the image whose camera the poses refer to.
        mesh: a :class:`FaceMesh` (the reference face by default).
        near: vertices with camera depth below this become NaN (not drawn).
        intrinsics: ``(3, 3)`` camera of the poses (default: img2pose's camera of
            ``img_shape``).

    Returns:
        ``vertices`` ``(N, V, 3)`` float32 (pixel x, y and camera depth z) and
        ``normals`` ``(N, V, 3)`` float32, unit normals in the camera frame.
    """
    mesh = _default_mesh() if mesh is None else mesh
    poses = _as_poses(poses)
    num_vertices = len(mesh.vertices)
    if len(poses) == 0:
        empty = np.zeros((0, num_vertices, 3), np.float32)
        return empty, empty.copy()
    ref = torch.as_tensor(mesh.vertices, dtype=torch.float64)
    cam = transform_points(ref, poses)                                   # (N, V, 3)
    pixels = project_points(cam, _intrinsics(img_shape, intrinsics, cam))  # (N, V, 2)
    vertices = torch.cat([pixels, cam[..., 2:]], -1).numpy().astype(np.float32)
    vertices[cam[..., 2].numpy() < near] = np.nan
    ref_normals = Sim3DR.vertex_normals(mesh.vertices, mesh.triangles).astype(np.float64)
    rot = rotvec_to_matrix(poses[:, :3]).numpy()                          # (N, 3, 3)
    normals = np.einsum('vj,nij->nvi', ref_normals, rot).astype(np.float32)
    return vertices, normals


def render_pose_meshes(image: np.ndarray, poses: ArrayOrTensor,
                       img_shape: Optional[Sequence[int]] = None,
                       mesh: Optional[FaceMesh] = None,
                       color: Union[str, Color, np.ndarray] = (200, 200, 200),
                       alpha: float = 0.6, light: Sim3DR.Light = Sim3DR.DEFAULT_LIGHT,
                       shading: bool = True, copy: bool = True,
                       return_face_map: bool = False,
                       intrinsics: Optional[ArrayOrTensor] = None
                       ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Render the face mesh of every pose over ``image`` with mutual occlusion.

    Args:
        image: ``(H, W, 3)`` uint8.
        poses: ``(N, 6)`` global poses (numpy or torch); faces behind the camera or
            outside the image simply draw nothing.
        img_shape: ``(h, w)`` of the camera the poses refer to (default: the image's).
        mesh: the mesh to draw (the reference face by default).
        color: ``'texture'`` for the mesh's own vertex colours, one colour ``(3,)``
            for all faces, per-face colours ``(N, 3)`` (uint8, image channel order) or
            per-face vertex colours ``(N, V, 3)`` (uint8 0..255 or float 0..1).
        alpha: opacity of the mesh (0..1).
        light: lighting (:class:`Sim3DR.Light`), frame x right, y down, z away.
        shading: Phong shading on/off.
        copy: draw on a copy (default) or in place.
        return_face_map: also return the ``(H, W)`` int32 map of the face index seen
            at each pixel (-1 = background).
        intrinsics: ``(3, 3)`` camera of the poses (default: img2pose's camera of
            ``img_shape``).
    """
    _check_image(image)
    out = np.ascontiguousarray(image.copy() if copy else image)
    if not copy and out is not image:
        raise ValueError('render_pose_meshes(copy=False) needs a C-contiguous image')
    mesh = _default_mesh() if mesh is None else mesh
    vertices, normals = project_mesh(poses, _img_shape(out, img_shape), mesh,
                                     intrinsics=intrinsics)
    num_faces, num_vertices = vertices.shape[:2]
    face_map = np.full(out.shape[:2], -1, np.int32)
    if num_faces:
        if isinstance(color, str):
            if color != 'texture':
                raise ValueError(f"color must be 'texture' or RGB values, got {color!r}")
            colors = np.tile(mesh.colors, (num_faces, 1))
        else:
            color = np.asarray(color)
            if color.shape == (num_faces, num_vertices, 3):
                colors = color.reshape(-1, 3)
            else:
                color = color.astype(np.uint8).reshape(-1, 3)
                if len(color) not in (1, num_faces):
                    raise ValueError(f'color must be one RGB triple, one per face ({num_faces}) '
                                     f'or one per face and vertex, got shape {np.shape(color)}')
                colors = np.repeat(np.broadcast_to(color, (num_faces, 3)), num_vertices, 0)
        offsets = (np.arange(num_faces, dtype=np.int64) * num_vertices)[:, None, None]
        triangles = (mesh.triangles[None].astype(np.int64) + offsets).reshape(-1, 3)
        _, raster = Sim3DR.render(vertices.reshape(-1, 3), triangles, colors, out,
                                  normals=normals.reshape(-1, 3), light=light, shading=shading,
                                  alpha=alpha, near=NEAR_PLANE, return_raster=True)
        covered = raster.triangle_ids >= 0
        face_map[covered] = raster.triangle_ids[covered] // len(mesh.triangles)
    if return_face_map:
        return out, face_map
    return out


def pose_face_map(poses: ArrayOrTensor, img_shape: Sequence[int],
                  mesh: Optional[FaceMesh] = None) -> np.ndarray:
    """Which face is seen at each pixel: ``(H, W)`` int32 pose index, -1 for background.

    The z-buffer visibility of all poses' meshes together (no shading), the same as
    the ``face_map`` of :func:`render_pose_meshes`.
    """
    mesh = _default_mesh() if mesh is None else mesh
    height, width = int(img_shape[0]), int(img_shape[1])
    vertices, _ = project_mesh(poses, (height, width), mesh)
    num_faces, num_vertices = vertices.shape[:2]
    face_map = np.full((height, width), -1, np.int32)
    if num_faces:
        offsets = (np.arange(num_faces, dtype=np.int64) * num_vertices)[:, None, None]
        triangles = (mesh.triangles[None].astype(np.int64) + offsets).reshape(-1, 3)
        raster = Sim3DR.rasterize(vertices.reshape(-1, 3), triangles, height, width,
                                  near=NEAR_PLANE)
        covered = raster.triangle_ids >= 0
        face_map[covered] = raster.triangle_ids[covered] // len(mesh.triangles)
    return face_map


def pose_axes_points(poses: ArrayOrTensor, img_shape: Sequence[int],
                     length: float = 1.0, intrinsics: Optional[ArrayOrTensor] = None
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel positions of each pose's origin and axis tips (camera: ``intrinsics``, by
    default img2pose's camera of ``img_shape``).

    Returns ``points`` ``(N, 4, 2)`` (origin, x tip, y tip, z tip, see
    ``AXIS_DIRECTIONS``) and ``valid`` ``(N,)``: all four points in front of the camera.
    """
    poses = _as_poses(poses)
    if len(poses) == 0:
        return np.zeros((0, 4, 2)), np.zeros(0, bool)
    ref = torch.as_tensor(np.concatenate([np.zeros((1, 3)), AXIS_DIRECTIONS * length]))
    cam = transform_points(ref, poses)
    points = project_points(cam, _intrinsics(img_shape, intrinsics, cam)).numpy()
    valid = (cam[..., 2] > NEAR_PLANE).all(-1).numpy() & np.isfinite(points).all((1, 2))
    return points, valid


def draw_pose_axes(image: np.ndarray, poses: ArrayOrTensor,
                   img_shape: Optional[Sequence[int]] = None, length: float = 1.0,
                   thickness: Optional[int] = None,
                   colors: Sequence[Color] = AXIS_COLORS, copy: bool = True,
                   intrinsics: Optional[ArrayOrTensor] = None) -> np.ndarray:
    """Draw each pose's 3D axes (x red, y green, z blue in RGB) from the face origin.

    Args:
        image: ``(H, W, 3)`` uint8.
        poses: ``(N, 6)`` global poses.
        img_shape: ``(h, w)`` of the poses' camera (default: the image's).
        length: axis length in reference-face units (the 68 points span about 2).
        thickness: line width in pixels (default: from the image size).
        colors: three colours in the image's channel order.
        copy: draw on a copy (default) or in place.
        intrinsics: ``(3, 3)`` camera of the poses (default: img2pose's camera of
            ``img_shape``).
    """
    _check_image(image)
    out = image.copy() if copy else image
    points, valid = pose_axes_points(poses, _img_shape(out, img_shape), length, intrinsics)
    if thickness is None:
        thickness = max(2, int(round(min(out.shape[:2]) / 200)))
    limit = 4 * max(out.shape[:2])   # cv2 clips lines, but needs sane integers
    for face_points, ok in zip(points, valid):
        if not ok:
            continue
        pts = np.clip(np.round(face_points), -limit, limit).astype(int)
        # draw z first so that x and y stay visible for frontal faces
        for axis in (2, 1, 0):
            cv2.line(out, tuple(pts[0]), tuple(pts[axis + 1]), tuple(int(c) for c in colors[axis]),
                     thickness, cv2.LINE_AA)
    return out


def draw_bboxes(image: np.ndarray, bboxes: ArrayOrTensor, color: Color = (0, 255, 0),
                thickness: int = 2, scores: Optional[ArrayOrTensor] = None,
                copy: bool = True, labels: Optional[Sequence[str]] = None) -> np.ndarray:
    """Draw ``(N, 4)`` boxes ``x1, y1, x2, y2`` (and ``labels`` and scores above them)
    with OpenCV."""
    _check_image(image)
    out = image.copy() if copy else image
    bboxes = _float64(bboxes).reshape(-1, 4)
    if scores is not None:
        scores = _float64(scores).reshape(-1)
    for i, box in enumerate(bboxes):
        if not np.isfinite(box).all():
            continue
        x1, y1, x2, y2 = np.round(box).astype(int)
        cv2.rectangle(out, (x1, y1), (x2, y2), tuple(int(c) for c in color), thickness)
        text = [labels[i]] if labels is not None else []
        if scores is not None:
            text.append(f'{scores[i]:.2f}')
        if text:
            cv2.putText(out, ' '.join(text), (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.4, tuple(int(c) for c in color), 1, cv2.LINE_AA)
    return out


def draw_landmarks(image: np.ndarray, landmarks: ArrayOrTensor, color: Color = (255, 255, 0),
                   radius: int = 1, copy: bool = True) -> np.ndarray:
    """Draw points ``(N, M, 2)`` (or ``(M, 2)``) as filled circles; skips non-finite ones."""
    _check_image(image)
    out = image.copy() if copy else image
    points = _float64(landmarks).reshape(-1, 2)
    for x, y in points[np.isfinite(points).all(1)]:
        cv2.circle(out, (int(round(x)), int(round(y))), radius, tuple(int(c) for c in color), -1,
                   cv2.LINE_AA)
    return out


__all__ = ['AXIS_COLORS', 'AXIS_DIRECTIONS', 'NEAR_PLANE', 'project_mesh', 'render_pose_meshes',
           'pose_face_map', 'pose_axes_points', 'draw_pose_axes', 'draw_bboxes', 'draw_landmarks']
