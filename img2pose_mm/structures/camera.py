"""Other cameras than img2pose's: a user's intrinsics and poses re-expressed in them.

What is exact and what is approximate: docs/conventions.md, "Your camera".
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from .pose import (
    ShapeLike,
    _as_hw,
    image_intrinsics,
    intrinsics_matrix,
    invert_intrinsics,
    project_points,
    quaternion_multiply,
    quaternion_to_rotvec,
    rotvec_to_matrix,
    rotvec_to_quaternion,
    transform_points,
)

#: ``None`` (the image's img2pose camera), a focal length in pixels (principal point at
#: the image's ``(w // 2, h // 2)``) or a ``3 x 3`` intrinsic matrix.
CameraLike = Union[None, float, int, Sequence, np.ndarray, Tensor]


def camera_intrinsics(camera: CameraLike, img_shape: ShapeLike,
                      like: Optional[Tensor] = None) -> Tensor:
    """The ``(3, 3)`` intrinsic matrix that ``camera`` describes for an image ``(h, w)``.

    Args:
        camera: ``None`` (img2pose's camera ``K0`` of the image), a focal length in pixels
            (``[[f, 0, w // 2], [0, f, h // 2], [0, 0, 1]]``, so ``f = w + h`` is ``K0``)
            or a ``3 x 3`` matrix ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``.
        img_shape: ``(h, w)`` of the image.
        like: tensor whose dtype/device the result takes (default float64, CPU).

    Raises:
        ValueError: a non-positive or non-finite focal length, or a matrix that is not
            ``3 x 3``, not finite, without positive ``fx``/``fy`` or with a last row
            other than ``[0, 0, 1]`` / a non-zero ``K[1, 0]``.
    """
    like = torch.empty(0, dtype=torch.float64) if like is None else like
    if not torch.is_floating_point(like):
        like = like.double()
    h, w = _as_hw(img_shape, like)
    if camera is None:
        return image_intrinsics(img_shape, like)
    if isinstance(camera, Tensor):
        value = camera.detach().to(device=like.device, dtype=like.dtype)
    else:
        try:
            value = torch.as_tensor(np.asarray(camera, dtype=np.float64), dtype=like.dtype,
                                    device=like.device)
        except (TypeError, ValueError) as err:
            raise ValueError(f'camera must be None, a focal length or a 3x3 matrix, got '
                             f'{camera!r}') from err
    if value.numel() == 1:
        focal = value.reshape(())
        if not bool(torch.isfinite(focal)) or float(focal) <= 0:
            raise ValueError(f'camera focal length must be a positive number of pixels, got '
                             f'{float(focal)}')
        return intrinsics_matrix(focal, torch.div(w, 2, rounding_mode='floor'),
                                 torch.div(h, 2, rounding_mode='floor'))
    if tuple(value.shape) != (3, 3):
        raise ValueError(f'camera must be a focal length or a 3x3 intrinsic matrix, got shape '
                         f'{tuple(value.shape)}')
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f'camera matrix must be finite, got {value.tolist()}')
    if float(value[0, 0]) <= 0 or float(value[1, 1]) <= 0:
        raise ValueError(f'camera matrix needs positive focal lengths fx = K[0, 0] and '
                         f'fy = K[1, 1], got {value.tolist()}')
    if value[2].tolist() != [0.0, 0.0, 1.0] or float(value[1, 0]) != 0:
        raise ValueError(f'camera matrix must look like [[fx, s, cx], [0, fy, cy], [0, 0, 1]], '
                         f'got {value.tolist()}')
    return value.clone()


def _focal(K: Tensor) -> Tensor:
    return torch.sqrt(K[..., 0, 0] * K[..., 1, 1])


def _smallest_rotation(src: Tensor, dst: Tensor) -> Tensor:
    """Rotation vectors ``(..., 3)`` of the smallest rotations taking directions ``src``
    to directions ``dst`` (neither needs to be unit length; they must not be opposite)."""
    src = src / torch.linalg.vector_norm(src, dim=-1, keepdim=True)
    dst = dst / torch.linalg.vector_norm(dst, dim=-1, keepdim=True)
    axis = torch.linalg.cross(src, dst, dim=-1)
    sin = torch.linalg.vector_norm(axis, dim=-1, keepdim=True)
    angle = torch.atan2(sin, (src * dst).sum(-1, keepdim=True))
    # angle / sin -> 1 for parallel directions
    ratio = torch.where(sin > 1e-12, angle / sin.clamp_min(1e-300), torch.ones_like(sin))
    return axis * ratio


def _compose(rotvecs_a: Tensor, rotvecs_b: Tensor) -> Tensor:
    """Rotation vectors of ``R_a @ R_b``."""
    return quaternion_to_rotvec(quaternion_multiply(rotvec_to_quaternion(rotvecs_a),
                                                    rotvec_to_quaternion(rotvecs_b)))


def _skew(v: Tensor) -> Tensor:
    """Cross-product matrices ``[v]_x`` ``(..., 3, 3)`` of vectors ``(..., 3)``."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1),
                        torch.stack([-y, x, zero], -1)], -2)


def _reprojection(poses: Tensor, points: Tensor, K: Tensor, target: Tensor) -> Tensor:
    """Squared pixel distances summed over points ``(N,)``."""
    return ((project_points(transform_points(points, poses), K) - target) ** 2).sum((-1, -2))


def _refine(poses: Tensor, points: Tensor, K: Tensor, target: Tensor,
            iterations: int) -> Tensor:
    """Levenberg-Marquardt on poses ``(N, 6)`` to bring ``points`` ``(M, 3)`` projected by
    ``K`` onto ``target`` ``(N, M, 2)``: left-multiplied rotation updates, additive
    translation updates, one damping factor per face (x10 on a rejected step, /10 on an
    accepted one)."""
    K = K.expand(poses.shape[0], 3, 3)
    fx, skew, fy = K[:, 0, 0, None], K[:, 0, 1, None], K[:, 1, 1, None]
    cost = _reprojection(poses, points, K, target)
    damping = poses.new_full((poses.shape[0],), 1e-3)
    eye = torch.eye(6, dtype=poses.dtype, device=poses.device)
    for _ in range(iterations):
        rotated = points @ rotvec_to_matrix(poses[:, :3]).transpose(-1, -2)      # (N, M, 3)
        cam = rotated + poses[:, None, 3:]
        x, y, z = cam.unbind(-1)
        zero = torch.zeros_like(z)
        # d pixel / d camera point, (N, M, 2, 3)
        j_proj = torch.stack([torch.stack([fx / z, skew / z, -(fx * x + skew * y) / z ** 2], -1),
                              torch.stack([zero, fy / z, -fy * y / z ** 2], -1)], -2)
        jac = torch.cat([j_proj @ -_skew(rotated), j_proj], -1)                    # (N, M, 2, 6)
        residual = project_points(cam, K) - target                                # (N, M, 2)
        normal = torch.einsum('nmik,nmil->nkl', jac, jac)
        grad = torch.einsum('nmik,nmi->nk', jac, residual)
        scale = torch.diagonal(normal, dim1=-2, dim2=-1).clamp_min(1e-12)
        system = normal + damping[:, None, None] * torch.diag_embed(scale) + 1e-12 * eye
        step = torch.linalg.solve(system, -grad[..., None])[..., 0]
        candidate = torch.cat([_compose(step[:, :3], poses[:, :3]), poses[:, 3:] + step[:, 3:]],
                              -1)
        new_cost = _reprojection(candidate, points, K, target)
        better = torch.isfinite(new_cost) & (new_cost < cost)
        poses = torch.where(better[:, None], candidate, poses)
        cost = torch.where(better, new_cost, cost)
        damping = torch.where(better, damping / 10, damping * 10).clamp(1e-9, 1e9)
    return poses


def change_camera(poses: Tensor, src_intrinsics: Tensor, dst_intrinsics: Tensor,
                  points: Optional[Tensor] = None, iterations: int = 3) -> Tensor:
    """Poses seen by camera ``src`` re-expressed in camera ``dst``, on the same pixels.

    Closed form: the face origin keeps its pixel and its depth scales with the focal
    length; the rotation turns with the viewing ray of that pixel (the smallest rotation
    from ``t`` to ``t'``). Then Levenberg-Marquardt steps bring ``points`` projected by
    ``dst`` onto their pixels under ``src`` (docs/conventions.md, "Your camera").

    Args:
        poses: ``(N, 6)`` global poses in the ``src`` camera.
        src_intrinsics, dst_intrinsics: ``(3, 3)`` or ``(N, 3, 3)``.
        points: ``(M, 3)`` reference points whose pixels the refinement keeps (e.g. the
            68 of the face model); ``None`` gives the closed form only.
        iterations: refinement steps (each one a batched 6 x 6 solve per face).

    Returns:
        ``(N, 6)`` poses in the ``dst`` camera, in the dtype of ``poses`` (computed in
        float64).
    """
    if poses.shape[-1] != 6 or poses.dim() != 2:
        raise ValueError(f'poses must be (N, 6), got {tuple(poses.shape)}')
    dtype = poses.dtype
    work = poses.double()
    K_src = src_intrinsics.to(work)
    K_dst = dst_intrinsics.to(work)
    trans = work[:, 3:]
    homog = (K_src @ trans[..., None])[..., 0]
    pixel = homog / homog[..., 2:]
    depth = trans[:, 2:] * (_focal(K_dst) / _focal(K_src)).reshape(-1, 1)
    new_trans = (invert_intrinsics(K_dst) @ pixel[..., None])[..., 0] * depth
    turn = _smallest_rotation(trans, new_trans)
    result = torch.cat([_compose(turn, work[:, :3]), new_trans], -1)
    if points is not None and iterations > 0 and len(result):
        points = points.to(work)
        target = project_points(transform_points(points, work), K_src)
        result = _refine(result, points, K_dst, target, iterations)
    return result.to(dtype)


__all__ = ['CameraLike', 'camera_intrinsics', 'change_camera']
