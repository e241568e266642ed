"""6DoF face pose geometry: the single implementation used by the whole project.

Shapes and the camera: docs/conventions.md. Reference points ``P`` map to the camera frame
as ``P @ R.T + t``; ``img_shape`` is ``(h, w)`` shared by the batch or a tensor ``(N, 2)``.
Every function is batched, differentiable where it makes sense and works on any device and
floating dtype.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch
from torch import Tensor

ShapeLike = Union[Sequence[int], Tensor]

ROTATION_METHODS = ('markley', 'svd')


# --------------------------------------------------------------------------
# intrinsics
# --------------------------------------------------------------------------
def _as_hw(img_shape: ShapeLike, like: Tensor) -> Tuple[Tensor, Tensor]:
    """Heights and widths of ``img_shape`` as tensors shaped like ``like[..., 0]``."""
    hw = torch.as_tensor(img_shape, dtype=like.dtype, device=like.device)
    if hw.shape[-1] < 2:
        raise ValueError(f'img_shape must end with (h, w), got shape {tuple(hw.shape)}')
    return hw[..., 0], hw[..., 1]


def intrinsics_matrix(focal: Tensor, cx: Tensor, cy: Tensor) -> Tensor:
    """Stack ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]`` over broadcast inputs."""
    focal, cx, cy = torch.broadcast_tensors(focal, cx, cy)
    zero, one = torch.zeros_like(focal), torch.ones_like(focal)
    rows = [torch.stack([focal, zero, cx], -1),
            torch.stack([zero, focal, cy], -1),
            torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, -2)


def image_intrinsics(img_shape: ShapeLike, like: Tensor | None = None) -> Tensor:
    """Camera matrix of an image ``(h, w)``: focal ``w + h``, centre ``(w // 2, h // 2)``.

    Args:
        img_shape: ``(h, w)`` or a tensor ``(N, 2)``.
        like: tensor whose dtype/device the result takes (default float64, CPU).

    Returns:
        ``(3, 3)`` or ``(N, 3, 3)``.
    """
    like = torch.empty(0, dtype=torch.float64) if like is None else like
    h, w = _as_hw(img_shape, like)
    return intrinsics_matrix(w + h, torch.div(w, 2, rounding_mode='floor'),
                             torch.div(h, 2, rounding_mode='floor'))


def box_intrinsics(bboxes: Tensor, img_shape: ShapeLike, integer_centre: bool = False) -> Tensor:
    """The image camera with its principal point moved to each box centre.

    The centre is ``(x1 + (x2 - x1) // 2, y1 + (y2 - y1) // 2)``, truncated to an
    integer with ``integer_centre`` (what writing it into the original's integer numpy
    camera does); the focal stays ``w + h`` of the full image. Returns ``(N, 3, 3)``.
    """
    h, w = _as_hw(img_shape, bboxes)
    x1, y1, x2, y2 = bboxes.unbind(-1)
    cx = x1 + torch.div(x2 - x1, 2, rounding_mode='floor')
    cy = y1 + torch.div(y2 - y1, 2, rounding_mode='floor')
    if integer_centre:
        cx, cy = torch.trunc(cx), torch.trunc(cy)
    return intrinsics_matrix((w + h).expand_as(x1), cx, cy)


def local_intrinsics(bboxes: Tensor) -> Tensor:
    """The camera of a box seen as its own image: ``[[w+h, 0, w//2], [0, w+h, h//2]]``."""
    return image_intrinsics(torch.stack([bboxes[..., 3] - bboxes[..., 1],
                                         bboxes[..., 2] - bboxes[..., 0]], -1), bboxes)


def invert_intrinsics(K: Tensor) -> Tensor:
    """Closed-form inverse of upper-triangular camera matrices ``(..., 3, 3)``."""
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    s, cx, cy = K[..., 0, 1], K[..., 0, 2], K[..., 1, 2]
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [torch.stack([1 / fx, -s / (fx * fy), (s * cy - cx * fy) / (fx * fy)], -1),
            torch.stack([zero, 1 / fy, -cy / fy], -1),
            torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, -2)


# --------------------------------------------------------------------------
# rotations
# --------------------------------------------------------------------------
def _sinc_half(angle: Tensor) -> Tensor:
    """``sin(angle / 2) / angle`` with a Taylor series near zero."""
    small = angle < 1e-3
    safe = torch.where(small, torch.ones_like(angle), angle)
    series = 0.5 - angle ** 2 / 48 + angle ** 4 / 3840
    return torch.where(small, series, torch.sin(safe / 2) / safe)


def rotvec_to_quaternion(rotvecs: Tensor) -> Tensor:
    """Rotation vectors ``(..., 3)`` -> unit quaternions ``(..., 4)`` in (x, y, z, w) order."""
    angle = torch.linalg.vector_norm(rotvecs, dim=-1)
    xyz = rotvecs * _sinc_half(angle)[..., None]
    return torch.cat([xyz, torch.cos(angle / 2)[..., None]], -1)


def quaternion_to_matrix(quats: Tensor) -> Tensor:
    """Unit quaternions ``(..., 4)`` (x, y, z, w) -> rotation matrices ``(..., 3, 3)``."""
    x, y, z, w = quats.unbind(-1)
    rows = [torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)]
    return torch.stack(rows, -2)


def rotvec_to_matrix(rotvecs: Tensor) -> Tensor:
    """Rotation vectors ``(..., 3)`` -> rotation matrices ``(..., 3, 3)``."""
    return quaternion_to_matrix(rotvec_to_quaternion(rotvecs))


def quaternion_to_rotvec(quats: Tensor) -> Tensor:
    """Quaternions ``(..., 4)`` (x, y, z, w) -> rotation vectors with angle in ``[0, pi]``."""
    quats = torch.where(quats[..., 3:] < 0, -quats, quats)
    xyz, w = quats[..., :3], quats[..., 3]
    angle = 2 * torch.atan2(torch.linalg.vector_norm(xyz, dim=-1), w)
    small = angle < 1e-3
    safe = torch.where(small, torch.ones_like(angle), angle)
    scale = torch.where(small, 2 + angle ** 2 / 12 + 7 * angle ** 4 / 2880,
                        safe / torch.sin(safe / 2))
    return xyz * scale[..., None]


def quaternion_multiply(q1: Tensor, q2: Tensor) -> Tensor:
    """Hamilton products ``q1 q2`` of quaternions ``(..., 4)`` in (x, y, z, w) order: the
    rotation ``q2`` followed by ``q1`` (``matrix(q1 q2) = matrix(q1) @ matrix(q2)``)."""
    x1, y1, z1, w1 = q1.unbind(-1)
    x2, y2, z2, w2 = q2.unbind(-1)
    return torch.stack([w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
                        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2], -1)


def markley_quaternion(matrices: Tensor) -> Tensor:
    """Markley's (2008) quaternion of a 3x3 matrix, ``(..., 3, 3)`` -> ``(..., 4)``.

    Exact for rotation matrices. For a non-orthogonal matrix it gives the
    approximation scipy's ``Rotation.from_matrix`` returned before scipy 1.16 and
    that the original img2pose relied on.
    """
    m = matrices
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    decision = torch.stack([m[..., 0, 0], m[..., 1, 1], m[..., 2, 2], trace], -1)
    # One candidate per pivot: the largest diagonal element or the trace.
    candidates = torch.stack([
        torch.stack([1 - trace + 2 * m[..., 0, 0], m[..., 1, 0] + m[..., 0, 1],
                     m[..., 2, 0] + m[..., 0, 2], m[..., 2, 1] - m[..., 1, 2]], -1),
        torch.stack([m[..., 1, 0] + m[..., 0, 1], 1 - trace + 2 * m[..., 1, 1],
                     m[..., 2, 1] + m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0]], -1),
        torch.stack([m[..., 2, 0] + m[..., 0, 2], m[..., 2, 1] + m[..., 1, 2],
                     1 - trace + 2 * m[..., 2, 2], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1], 1 + trace], -1),
    ], -2)
    choice = decision.argmax(-1)[..., None, None].expand(*decision.shape[:-1], 1, 4)
    quat = candidates.gather(-2, choice).squeeze(-2)
    return quat / torch.linalg.vector_norm(quat, dim=-1, keepdim=True)


def polar_rotation(matrices: Tensor, iterations: int = 8) -> Tensor:
    """The rotation nearest to 3x3 matrices of positive determinant, without SVD.

    Newton's iteration for the orthogonal polar factor with determinant scaling,
    ``X <- (g X + (g X)^-T) / 2`` with ``g = |det X|^(-1/3)`` (Higham, 1986), the inverse
    transpose written with cofactors (``X^-T = cof(X) / det X``). It is elementwise
    arithmetic only, so it exports to ONNX, where :func:`orthogonalize`'s SVD cannot. For
    ``det X > 0`` the polar factor is the nearest rotation, the same as
    :func:`orthogonalize`; every matrix a pose transfer produces (a shear with positive
    scales times a rotation) is such a matrix. Convergence is quadratic: near-rotations
    need 3-4 iterations, condition numbers up to ~1e4 about 8.

    Args:
        matrices: ``(..., 3, 3)`` with positive determinants.
        iterations: Newton steps (a fixed count: the graph has no loop).
    """
    # cofactor (i, j) = cross product of rows i+1 and i+2, component j: the rows and
    # components are gathered in cyclic order (few ops: a short graph, a fast export)
    nxt, prv = [1, 2, 0], [2, 0, 1]
    x = matrices
    for _ in range(iterations):
        a, b = x[..., nxt, :], x[..., prv, :]
        cofactors = a[..., nxt] * b[..., prv] - a[..., prv] * b[..., nxt]
        det = (x[..., 0, :] * cofactors[..., 0, :]).sum(-1)[..., None, None]
        scale = det.abs().pow(-1.0 / 3.0)
        x = 0.5 * (scale * x + cofactors / (scale * det))
    return x


def orthogonalize(matrices: Tensor) -> Tensor:
    """The rotation nearest to each matrix in Frobenius norm (polar factor, via SVD).

    While a model is being exported (``torch.export``, ONNX), where SVD has no
    equivalent, this is :func:`polar_rotation`: the same rotation for the positive
    determinants every pose transfer has.
    """
    if torch.compiler.is_exporting():
        return polar_rotation(matrices)
    u, _, vh = torch.linalg.svd(matrices)
    det = torch.linalg.det(u @ vh)
    fix = torch.ones(*det.shape, 3, dtype=matrices.dtype, device=matrices.device)
    fix[..., 2] = det.sign()
    return (u * fix[..., None, :]) @ vh


def matrix_to_rotvec(matrices: Tensor, method: str = 'svd') -> Tensor:
    """Rotation vector of (possibly non-orthogonal) matrices ``(..., 3, 3)``.

    Args:
        method: ``'svd'`` (default) takes the exact nearest rotation (the polar
            factor, what scipy >= 1.16 ``Rotation.from_matrix`` does); it makes
            global -> local -> global exact. ``'markley'`` applies Markley's quaternion
            formula to the sheared matrix directly, as scipy < 1.16 did and the
            original img2pose relied on: use it to reproduce numbers of the original
            weights. Both agree on rotation matrices.
    """
    if method == 'svd':
        matrices = orthogonalize(matrices)
    elif method != 'markley':
        raise ValueError(f'rotation method must be one of {ROTATION_METHODS}, got {method!r}')
    return quaternion_to_rotvec(markley_quaternion(matrices))


# --------------------------------------------------------------------------
# points
# --------------------------------------------------------------------------
def transform_points(points: Tensor, poses: Tensor) -> Tensor:
    """Move reference points into the camera frame: ``P @ R.T + t``.

    Args:
        points: ``(M, 3)`` shared by all poses, or ``(N, M, 3)``.
        poses: ``(N, 6)``.

    Returns:
        ``(N, M, 3)``.
    """
    rot = rotvec_to_matrix(poses[..., :3])
    return points @ rot.transpose(-1, -2) + poses[..., None, 3:]


def project_points(points_cam: Tensor, intrinsics: Tensor) -> Tensor:
    """Pinhole projection ``(K X)[:2] / (K X)[2]``; ``(N, M, 3)`` -> ``(N, M, 2)``.

    ``intrinsics`` is ``(3, 3)`` or ``(N, 3, 3)``.
    """
    if intrinsics.dim() == 2:
        homog = points_cam @ intrinsics.T
    else:
        homog = points_cam @ intrinsics.transpose(-1, -2)
    return homog[..., :2] / homog[..., 2:]


def project_pose_points(points: Tensor, poses: Tensor, img_shape: ShapeLike) -> Tensor:
    """Project reference points ``(M, 3)`` with global ``poses`` ``(N, 6)`` into the image."""
    return project_points(transform_points(points, poses), image_intrinsics(img_shape, poses))


# --------------------------------------------------------------------------
# changes of camera: global <-> box-local, crop, resize, rescale
# --------------------------------------------------------------------------
def transfer_pose(poses: Tensor, src_intrinsics: Tensor, dst_intrinsics: Tensor,
                  pixel_map: Tensor | None = None, method: str = 'svd') -> Tensor:
    """Re-express poses seen by one camera in another camera.

    Pixels of the source image move to ``pixel_map @ [u, v, 1]`` in the target image
    (identity by default; a crop is a translation, a resize a diagonal). With
    ``B = inv(K_dst) @ pixel_map @ K_src`` normalised so its x/y scales multiply to 1,
    the translation maps exactly (its projection lands where the source projection
    moved) and the rotation becomes the rotation nearest to ``B' @ R`` where ``B'`` is
    ``B`` with its depth scale removed. For ``K_dst`` = the box camera this is exactly
    img2pose's global -> local rule.

    Args:
        poses: ``(N, 6)``.
        src_intrinsics, dst_intrinsics: ``(3, 3)`` or ``(N, 3, 3)``.
        pixel_map: ``(3, 3)`` or ``(N, 3, 3)`` affine pixel transform, optional.
        method: see :func:`matrix_to_rotvec`.
    """
    bridge = invert_intrinsics(dst_intrinsics)
    if pixel_map is not None:
        bridge = bridge @ pixel_map
    bridge = bridge @ src_intrinsics
    bridge = bridge / torch.sqrt(bridge[..., 0, 0] * bridge[..., 1, 1])[..., None, None]
    bridge = bridge.expand(*poses.shape[:-1], 3, 3)
    trans = (bridge @ poses[..., 3:, None])[..., 0]
    shear = bridge.clone()
    shear[..., 2, 2] = 1
    rot = matrix_to_rotvec(shear @ rotvec_to_matrix(poses[..., :3]), method)
    return torch.cat([rot, trans], -1)


def _box_size(bboxes: Tensor) -> Tensor:
    return (bboxes[..., 2] - bboxes[..., 0]) + (bboxes[..., 3] - bboxes[..., 1])


def global_to_local(poses: Tensor, bboxes: Tensor, img_shape: ShapeLike,
                    method: str = 'svd') -> Tensor:
    """Global poses ``(N, 6)`` -> poses local to ``bboxes`` ``(N, 4)``.

    ``t_l = K_b^-1 K t_g`` with ``t_l.z`` divided by ``f / (bw + bh)``;
    ``R_l = nearest_rotation(K_b^-1 K R_g)``.
    """
    K = image_intrinsics(img_shape, poses)
    local = transfer_pose(poses, K, box_intrinsics(bboxes, img_shape), method=method)
    depth_scale = _box_size(bboxes) / K[..., 0, 0]
    return torch.cat([local[..., :5], local[..., 5:] * depth_scale[..., None]], -1)


def local_to_global(poses: Tensor, bboxes: Tensor, img_shape: ShapeLike,
                    method: str = 'svd', integer_centre: bool = False) -> Tensor:
    """Inverse of :func:`global_to_local`.

    ``integer_centre`` truncates the box centre to an integer, as the original's
    inference does (see :func:`box_intrinsics`).
    """
    K = image_intrinsics(img_shape, poses)
    depth_scale = K[..., 0, 0] / _box_size(bboxes)
    poses = torch.cat([poses[..., :5], poses[..., 5:] * depth_scale[..., None]], -1)
    return transfer_pose(poses, box_intrinsics(bboxes, img_shape, integer_centre), K,
                         method=method)


def warp_pose(poses: Tensor, src_shape: ShapeLike, dst_shape: ShapeLike,
              pixel_map: Tensor, method: str = 'svd') -> Tensor:
    """Poses of an image after an affine pixel map (crop, resize, both).

    Args:
        src_shape, dst_shape: ``(h, w)`` of the image before and after.
        pixel_map: ``(3, 3)`` with ``[u', v', 1] = pixel_map @ [u, v, 1]``.
    """
    pixel_map = torch.as_tensor(pixel_map, dtype=poses.dtype, device=poses.device)
    return transfer_pose(poses, image_intrinsics(src_shape, poses),
                         image_intrinsics(dst_shape, poses), pixel_map, method)


def scale_translate_map(scale: Sequence[float] | Tensor = (1., 1.),
                        offset: Sequence[float] | Tensor = (0., 0.),
                        like: Tensor | None = None) -> Tensor:
    """Pixel map ``u' = sx * u + ox, v' = sy * v + oy`` as a ``(3, 3)`` matrix."""
    like = torch.empty(0, dtype=torch.float64) if like is None else like
    sx, sy = torch.as_tensor(scale, dtype=like.dtype, device=like.device).unbind(-1)
    ox, oy = torch.as_tensor(offset, dtype=like.dtype, device=like.device).unbind(-1)
    zero, one = torch.zeros_like(sx), torch.ones_like(sx)
    return torch.stack([torch.stack([sx, zero, ox]), torch.stack([zero, sy, oy]),
                        torch.stack([zero, zero, one])])


def flip_pose(poses: Tensor, img_shape: ShapeLike) -> Tensor:
    """Poses after a horizontal image flip (``u -> w - u``).

    ``ry``, ``rz`` and ``tx`` change sign; for odd widths ``tx`` also gets the
    ``(w - 2 * (w // 2)) / f * tz`` shift that keeps the projection exact. Applying
    it twice is the identity.
    """
    h, w = _as_hw(img_shape, poses)
    shift = (w - 2 * torch.div(w, 2, rounding_mode='floor')) / (w + h)
    sign = poses.new_tensor([1., -1., -1., -1., 1., 1.])
    flipped = poses * sign
    return torch.cat([flipped[..., :3], flipped[..., 3:4] + shift[..., None] * poses[..., 5:6],
                      flipped[..., 4:]], -1)


# --------------------------------------------------------------------------
# boxes and angles
# --------------------------------------------------------------------------
def points_to_bbox(points_2d: Tensor, roll: Tensor, img_shape: ShapeLike | None = None,
                   x_factor: float = 1.1, y_factor: float = 1.1,
                   expand_forehead: float = 0.3) -> Tensor:
    """img2pose's face box from projected reference points ``(N, M, 2)``.

    The box is the points' extent scaled by ``x_factor``/``y_factor`` (sizes
    truncated to whole pixels) around its centre, then grown by
    ``expand_forehead`` times the extent towards the top of the head, which the
    roll ``rz`` of the global pose locates: bottom if ``|rz| > 2.5``, right if
    ``rz > 1``, left if ``rz < -1``, top otherwise. Corners are truncated to
    integers and clipped to the image when ``img_shape`` is given.
    """
    lo, hi = points_2d.min(-2).values, points_2d.max(-2).values
    extent = hi - lo
    centre = (lo + hi) / 2
    size = torch.trunc(extent * extent.new_tensor([x_factor, y_factor]))
    x1, y1 = (centre - size / 2).unbind(-1)
    x2, y2 = (centre + size / 2).unbind(-1)
    grow_x, grow_y = (extent * expand_forehead).unbind(-1)
    down = roll.abs() > 2.5
    right = ~down & (roll > 1)
    left = ~down & (roll < -1)
    up = ~(down | right | left)
    x1 = x1 - torch.where(left, grow_x, torch.zeros_like(grow_x))
    x2 = x2 + torch.where(right, grow_x, torch.zeros_like(grow_x))
    y1 = y1 - torch.where(up, grow_y, torch.zeros_like(grow_y))
    y2 = y2 + torch.where(down, grow_y, torch.zeros_like(grow_y))
    boxes = torch.trunc(torch.stack([x1, y1, x2, y2], -1))
    if img_shape is not None:
        h, w = _as_hw(img_shape, boxes)
        upper = torch.stack([w, h, w, h], -1)
        boxes = torch.minimum(boxes.clamp(min=0), upper)
    return boxes


def pose_to_bbox(poses: Tensor, points: Tensor, img_shape: ShapeLike,
                 x_factor: float = 1.1, y_factor: float = 1.1,
                 expand_forehead: float = 0.3, clip: bool = True) -> Tensor:
    """Face boxes ``(N, 4)`` of global poses ``(N, 6)``: project ``points`` and box them."""
    projected = project_pose_points(points.to(poses), poses, img_shape)
    return points_to_bbox(projected, poses[..., 2], img_shape if clip else None,
                          x_factor, y_factor, expand_forehead)


def rotation_angle_between(rotvecs_a: Tensor, rotvecs_b: Tensor) -> Tensor:
    """Geodesic angle (radians) between two batches of rotations."""
    rel = rotvec_to_matrix(rotvecs_a).transpose(-1, -2) @ rotvec_to_matrix(rotvecs_b)
    return torch.linalg.vector_norm(quaternion_to_rotvec(markley_quaternion(rel)), dim=-1)


__all__ = [
    'ROTATION_METHODS', 'intrinsics_matrix', 'image_intrinsics', 'box_intrinsics',
    'local_intrinsics', 'invert_intrinsics', 'rotvec_to_quaternion', 'quaternion_to_matrix',
    'rotvec_to_matrix', 'quaternion_to_rotvec', 'markley_quaternion', 'orthogonalize',
    'polar_rotation',
    'matrix_to_rotvec', 'transform_points', 'project_points', 'project_pose_points',
    'transfer_pose', 'global_to_local', 'local_to_global', 'warp_pose',
    'scale_translate_map', 'flip_pose', 'points_to_bbox', 'pose_to_bbox',
    'quaternion_multiply', 'rotation_angle_between',
]
