"""Euler angles of rotation vectors, with named conventions (``'aflw'`` and scipy's twelve
Tait-Bryan orders; docs/conventions.md, "Euler angles: named conventions").
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch import Tensor

from .pose import quaternion_multiply, quaternion_to_rotvec, rotvec_to_matrix

#: Tait-Bryan orders: lowercase extrinsic, uppercase intrinsic (scipy's notation).
TAIT_BRYAN_ORDERS = ('xyz', 'xzy', 'yxz', 'yzx', 'zxy', 'zyx',
                     'XYZ', 'XZY', 'YXZ', 'YZX', 'ZXY', 'ZYX')
#: Every accepted ``convention``.
EULER_CONVENTIONS = ('aflw',) + TAIT_BRYAN_ORDERS
#: The head-pose name of the angle about each camera axis (x right, y down, z forward).
AXIS_NAMES: Dict[str, str] = {'x': 'pitch', 'y': 'yaw', 'z': 'roll'}


def check_convention(convention: str) -> str:
    """``convention`` itself, or a ``ValueError`` naming the accepted ones."""
    if convention not in EULER_CONVENTIONS:
        raise ValueError(f'unknown Euler convention {convention!r}: use one of '
                         f'{EULER_CONVENTIONS}')
    return convention


def euler_names(convention: str = 'aflw') -> Tuple[str, str, str]:
    """Names of the three angles of ``convention`` in their order.

    ``'aflw'`` gives ``('pitch', 'yaw', 'roll')``; a Tait-Bryan order names each angle
    after its axis (x: pitch, y: yaw, z: roll), e.g. ``'ZYX'`` gives
    ``('roll', 'yaw', 'pitch')``.
    """
    if check_convention(convention) == 'aflw':
        return ('pitch', 'yaw', 'roll')
    return tuple(AXIS_NAMES[axis] for axis in convention.lower())


def _extrinsic_angles(m: Tensor, order: str) -> Tensor:
    """Angles ``(a, b, c)`` (radians) with ``m = R_k(c) R_j(b) R_i(a)``, order ``'ijk'``.

    At gimbal lock (``cos b`` below ``sqrt(eps)``) ``c`` is set to zero.
    """
    i, j, k = ('xyz'.index(a) for a in order.lower())
    sign = 1.0 if (j - i) % 3 == 1 else -1.0   # the sign of the axis permutation
    cos_b = torch.hypot(m[..., i, i], m[..., j, i])
    b = torch.atan2(-sign * m[..., k, i], cos_b)
    a = torch.atan2(sign * m[..., k, j], m[..., k, k])
    c = torch.atan2(sign * m[..., j, i], m[..., i, i])
    locked = cos_b < torch.finfo(m.dtype).eps ** 0.5
    a = torch.where(locked, torch.atan2(-sign * m[..., j, k], m[..., j, j]), a)
    c = torch.where(locked, torch.zeros_like(c), c)
    return torch.stack([a, b, c], -1)


def _axis_quaternions(angles: Tensor, axis: int) -> Tensor:
    """Quaternions (x, y, z, w) of rotations by ``angles`` (radians) about ``axis``."""
    half = angles / 2
    quat = torch.zeros(*angles.shape, 4, dtype=angles.dtype, device=angles.device)
    quat[..., axis] = torch.sin(half)
    quat[..., 3] = torch.cos(half)
    return quat


def rotvec_to_euler(rotvecs: Tensor, convention: str = 'aflw', degrees: bool = True) -> Tensor:
    """Euler angles ``(..., 3)`` of rotation vectors ``(..., 3)``.

    The first and third angles lie in ``[-180, 180]``, the middle one in ``[-90, 90]``; at
    gimbal lock the third one is 0, as in scipy.

    Args:
        rotvecs: rotation vectors in radians (a pose's ``[..., :3]``).
        convention: ``'aflw'`` (pitch, yaw, roll) or a Tait-Bryan order such as ``'XYZ'``.
        degrees: degrees (default) or radians.
    """
    check_convention(convention)
    if rotvecs.shape[-1] != 3:
        raise ValueError(f'rotation vectors must be (..., 3), got {tuple(rotvecs.shape)}')
    m = rotvec_to_matrix(rotvecs)
    if convention == 'aflw':
        angles = _extrinsic_angles(m.transpose(-1, -2), 'xyz') * m.new_tensor([1., -1., -1.])
    elif convention.islower():
        angles = _extrinsic_angles(m, convention)
    else:   # intrinsic IJK of R = minus the extrinsic ijk angles of R^T
        angles = 0.0 - _extrinsic_angles(m.transpose(-1, -2), convention.lower())
    return torch.rad2deg(angles) if degrees else angles


def euler_to_rotvec(angles: Tensor, convention: str = 'aflw', degrees: bool = True) -> Tensor:
    """Inverse of :func:`rotvec_to_euler`: angles ``(..., 3)`` -> rotation vectors.

    The rotation is composed from the three axis rotations as quaternions, so the round
    trip angles -> rotation vector -> angles is exact to rounding wherever the angles
    lie in the ranges of the convention away from gimbal lock.
    """
    check_convention(convention)
    if angles.shape[-1] != 3:
        raise ValueError(f'Euler angles must be (..., 3), got {tuple(angles.shape)}')
    if not torch.is_floating_point(angles):
        angles = angles.double()
    angles = torch.deg2rad(angles) if degrees else angles
    if convention == 'aflw':
        # R^T = R_z(-roll) R_y(-yaw) R_x(pitch), so R = R_x(-pitch) R_y(yaw) R_z(roll)
        pitch, yaw, roll = angles.unbind(-1)
        parts = [(-pitch, 0), (yaw, 1), (roll, 2)]
    else:
        axes = ['xyz'.index(a) for a in convention.lower()]
        parts = list(zip(angles.unbind(-1), axes))
        if convention.islower():     # extrinsic: the first rotation acts first
            parts = parts[::-1]
    quat = _axis_quaternions(*parts[0])
    for angle, axis in parts[1:]:
        quat = quaternion_multiply(quat, _axis_quaternions(angle, axis))
    return quaternion_to_rotvec(quat)


def pose_to_euler(poses: Tensor) -> Tensor:
    """(pitch, yaw, roll) degrees of poses ``(..., 6)`` or rotation vectors ``(..., 3)``:
    :func:`rotvec_to_euler` with the ``'aflw'`` convention."""
    return rotvec_to_euler(poses[..., :3], 'aflw')


__all__ = ['EULER_CONVENTIONS', 'TAIT_BRYAN_ORDERS', 'AXIS_NAMES', 'check_convention',
           'euler_names', 'rotvec_to_euler', 'euler_to_rotvec', 'pose_to_euler']
