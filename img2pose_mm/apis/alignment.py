"""Face alignment: 5 keypoints -> least-squares similarity (Umeyama) -> template crop.

The templates and how they are derived: docs/conventions.md, "Face alignment".
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from img2pose_mm.structures import (
    FIVE_POINT_NAMES,
    FaceModel,
    FaceModelLike,
    load_reference_points,
    rotvec_to_matrix,
)

#: Side of the canonical templates, pixels.
TEMPLATE_SIZE = 112
#: The standard frontal 112 x 112 five-point template (left eye, right eye, nose,
#: left and right mouth corners).
FRONTAL_TEMPLATE = np.array([[39.730, 51.138], [72.270, 51.138], [56.000, 68.493],
                             [42.463, 87.010], [69.537, 87.010]], dtype=np.float64)
#: Template names, in the order of :func:`alignment_templates`.
TEMPLATE_NAMES = ('left_profile', 'left', 'frontal', 'right', 'right_profile')
#: Head turn (degrees about the camera's vertical axis) of each template; positive
#: turns move the nose to the left of the image.
TEMPLATE_YAWS = (60.0, 30.0, 0.0, -30.0, -60.0)

SizeLike = Union[int, Sequence[int]]

_CV2_HINT = ('face alignment needs OpenCV (cv2), a requirement of img2pose_mm that is not '
             'installed: pip install opencv-python')


def require_cv2():
    """Import OpenCV, or raise an ImportError that says how to install it."""
    try:
        import cv2
    except ImportError as err:
        raise ImportError(_CV2_HINT) from err
    if cv2 is None:   # a module set to None in sys.modules
        raise ImportError(_CV2_HINT)
    return cv2


# --------------------------------------------------------------------------
# Umeyama
# --------------------------------------------------------------------------
def umeyama(src: np.ndarray, dst: np.ndarray,
            estimate_scale: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s R src + t`` (Umeyama 1991), batched.

    Args:
        src, dst: points ``(..., P, D)``; leading dimensions broadcast against each
            other (e.g. ``(N, 1, P, D)`` keypoints against ``(K, P, D)`` templates).
        estimate_scale: fit the scale ``s`` (else ``s = 1``, a rigid transform).

    Returns:
        ``transforms`` ``(..., D + 1, D + 1)`` homogeneous matrices mapping ``src`` to
        ``dst`` (no reflections), and ``residuals`` ``(...)``: the root mean square
        distance between the mapped ``src`` and ``dst``. Degenerate ``src`` (all points
        equal) gives NaN.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src, dst = np.broadcast_arrays(src, dst)
    num, dim = src.shape[-2:]
    src_mean = src.mean(-2, keepdims=True)
    dst_mean = dst.mean(-2, keepdims=True)
    src_c = src - src_mean
    dst_c = dst - dst_mean
    cov = np.swapaxes(dst_c, -1, -2) @ src_c / num                    # (..., D, D)
    src_var = (src_c ** 2).sum((-2, -1)) / num                         # (...)
    u, sing, vt = np.linalg.svd(cov)
    # no reflection: flip the weakest direction when det(U V^T) < 0
    sign = np.ones_like(sing)
    sign[..., -1] = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    rot = u @ (sign[..., :, None] * vt)
    if estimate_scale:
        with np.errstate(divide='ignore', invalid='ignore'):
            scale = np.where(src_var > 0, (sing * sign).sum(-1) / np.where(src_var > 0, src_var, 1),
                             np.nan)
    else:
        scale = np.ones(src_var.shape)
    linear = scale[..., None, None] * rot
    trans = dst_mean[..., 0, :] - (linear @ src_mean[..., 0, :, None])[..., 0]
    transforms = np.zeros(src.shape[:-2] + (dim + 1, dim + 1))
    transforms[..., :dim, :dim] = linear
    transforms[..., :dim, dim] = trans
    transforms[..., dim, dim] = 1.0
    mapped = src @ np.swapaxes(linear, -1, -2) + trans[..., None, :]
    residuals = np.sqrt(((mapped - dst) ** 2).sum(-1).mean(-1))
    return transforms, residuals


# --------------------------------------------------------------------------
# templates
# --------------------------------------------------------------------------
def _rotation(axis: int, degrees: np.ndarray) -> torch.Tensor:
    """Rotation matrices ``(N, 3, 3)`` about a camera axis (via the rotation vector)."""
    rotvecs = torch.zeros(len(degrees), 3, dtype=torch.float64)
    rotvecs[:, axis] = torch.deg2rad(torch.as_tensor(degrees, dtype=torch.float64))
    return rotvec_to_matrix(rotvecs)


def _orthographic(points: torch.Tensor, rotations: torch.Tensor) -> np.ndarray:
    """Orthographic views ``(N, P, 2)`` of ``points`` ``(P, 3)`` rotated by ``(N, 3, 3)``."""
    return (points[None] @ rotations.transpose(-1, -2))[..., :2].numpy()


def derive_templates(reference_points: Optional[str] = None,
                     yaws: Sequence[float] = TEMPLATE_YAWS,
                     pitch_range: Tuple[float, float] = (-45.0, 45.0),
                     pitch_step: float = 0.05) -> Tuple[np.ndarray, float]:
    """Multi-pose 112 x 112 templates ``(len(yaws), 5, 2)`` and the fitted base pitch.

    See docs/conventions.md, "Face alignment". ``yaw == 0`` returns :data:`FRONTAL_TEMPLATE` itself.

    Args:
        reference_points: 5-point ``.npy`` (``None``: the packaged reference face).
        yaws: head turns in degrees (positive: nose to the image's left).
        pitch_range, pitch_step: grid of the base-pitch search, degrees.
    """
    points = torch.as_tensor(load_reference_points(reference_points, num_points=5),
                             dtype=torch.float64)
    # base pitch: weak-perspective fit of the reference face to the frontal template
    pitches = np.round(np.arange(pitch_range[0], pitch_range[1] + pitch_step / 2, pitch_step), 6)
    views = _orthographic(points, _rotation(0, pitches))
    _, residuals = umeyama(views, FRONTAL_TEMPLATE)
    best = int(np.nanargmin(residuals))
    pitch = float(pitches[best])
    similarity, _ = umeyama(views[best], FRONTAL_TEMPLATE)
    # turn the pitched head about the camera's vertical axis
    base = _rotation(0, np.array([pitch]))
    turned = _orthographic(points, _rotation(1, np.asarray(yaws, np.float64)) @ base)
    templates = turned @ similarity[:2, :2].T + similarity[:2, 2]
    templates[..., 0] += FRONTAL_TEMPLATE[:, 0].mean() - templates[..., 0].mean(-1, keepdims=True)
    templates[np.asarray(yaws) == 0] = FRONTAL_TEMPLATE
    return templates, pitch


@lru_cache(maxsize=1)
def _canonical_templates() -> np.ndarray:
    templates, _ = derive_templates()
    templates.flags.writeable = False
    return templates


def _output_wh(output_size: SizeLike) -> Tuple[int, int]:
    if isinstance(output_size, (int, np.integer)):
        width = height = int(output_size)
    else:
        size = tuple(int(s) for s in output_size)
        if len(size) != 2:
            raise ValueError(f'output_size must be an int or (width, height), got {output_size!r}')
        width, height = size
    if width < 1 or height < 1:
        raise ValueError(f'output_size must be positive, got {output_size!r}')
    return width, height


def alignment_templates(output_size: SizeLike = TEMPLATE_SIZE) -> np.ndarray:
    """The five templates ``(5, 5, 2)`` (order :data:`TEMPLATE_NAMES`) for an output size.

    Args:
        output_size: side of a square crop, or ``(width, height)``.
    """
    width, height = _output_wh(output_size)
    scale = min(width, height) / TEMPLATE_SIZE
    offset = np.array([(width - TEMPLATE_SIZE * scale) / 2, (height - TEMPLATE_SIZE * scale) / 2])
    return _canonical_templates() * scale + offset


# --------------------------------------------------------------------------
# keypoints
# --------------------------------------------------------------------------
def pose_keypoints(poses: Union[np.ndarray, torch.Tensor], img_shape: Sequence[int],
                   face_model: FaceModelLike = None) -> np.ndarray:
    """The 5 reference points projected with global poses ``(N, 6)``: ``(N, 5, 2)``
    (:meth:`FaceModel.project <img2pose_mm.structures.FaceModel.project>` in float64).

    Args:
        poses: global poses of an image of ``img_shape`` ``(h, w)``.
        face_model: the face whose points are projected (default: the packaged face).
    """
    poses = torch.as_tensor(np.asarray(poses, dtype=np.float64)).reshape(-1, 6)
    if len(poses) == 0:
        return np.zeros((0, 5, 2))
    return FaceModel.build(face_model).project(poses, tuple(img_shape[:2]), 5).numpy()


def keypoints_to_dict(keypoints: np.ndarray) -> dict:
    """``(5, 2)`` -> ``{'left_eye': [x, y], ...}`` (:data:`FIVE_POINT_NAMES`)."""
    return {name: [float(x), float(y)] for name, (x, y) in zip(FIVE_POINT_NAMES, keypoints)}


def keypoints_from_faces(faces, img_shape: Optional[Sequence[int]] = None,
                         face_model: FaceModelLike = None) -> np.ndarray:
    """Keypoints ``(N, 5, 2)`` of faces given in any of the accepted forms.

    ``faces`` is an array ``(N, 5, 2)`` / ``(5, 2)``, one face dict, or a list of face
    dicts each with ``'keypoints'`` (a dict keyed by :data:`FIVE_POINT_NAMES`, or a
    ``(5, 2)`` array) or else ``'pose'`` (the 5 points of ``face_model`` projected in an
    image of ``img_shape``).
    """
    if isinstance(faces, dict):
        faces = [faces]
    if isinstance(faces, (np.ndarray, torch.Tensor)):
        points = np.asarray(faces, dtype=np.float64)
        if points.shape == (5, 2):
            points = points[None]
        if points.ndim != 3 or points.shape[1:] != (5, 2):
            raise ValueError(f'keypoints must be (N, 5, 2), got {points.shape}')
        return points
    result = []
    for index, face in enumerate(faces):
        if not isinstance(face, dict):
            raise TypeError(f'faces[{index}] must be a dict with keypoints or pose, '
                            f'got {type(face).__name__}')
        if face.get('keypoints') is not None:
            kps = face['keypoints']
            if isinstance(kps, dict):
                missing = [n for n in FIVE_POINT_NAMES if n not in kps]
                if missing:
                    raise ValueError(f'faces[{index}] keypoints lack {missing}')
                kps = [kps[n] for n in FIVE_POINT_NAMES]
            kps = np.asarray(kps, dtype=np.float64)
            if kps.shape != (5, 2):
                raise ValueError(f'faces[{index}] keypoints must be 5 (x, y) points, got '
                                 f'shape {kps.shape}')
        elif face.get('pose') is not None:
            if img_shape is None:
                raise ValueError(f'faces[{index}] has a pose but no keypoints and the image '
                                 'shape is unknown')
            kps = pose_keypoints(face['pose'], img_shape, face_model)[0]
        else:
            raise ValueError(f"faces[{index}] has neither 'keypoints' nor 'pose'")
        result.append(kps)
    return np.stack(result) if result else np.zeros((0, 5, 2))


# --------------------------------------------------------------------------
# transforms and warping
# --------------------------------------------------------------------------
class Alignment(NamedTuple):
    """Per face: ``matrices`` ``(N, 2, 3)`` (image -> crop pixels, for
    ``cv2.warpAffine``), ``templates`` ``(N,)`` index into :data:`TEMPLATE_NAMES`,
    ``residuals`` ``(N,)`` root mean square keypoint error in crop pixels and
    ``target`` ``(N, 5, 2)``: the chosen template points in the crop."""
    matrices: np.ndarray
    templates: np.ndarray
    residuals: np.ndarray
    target: np.ndarray


def estimate_alignment(keypoints: np.ndarray, output_size: SizeLike = TEMPLATE_SIZE,
                       template: Union[str, int] = 'auto') -> Alignment:
    """Similarity transforms that take each face's keypoints to its best template.

    Args:
        keypoints: ``(N, 5, 2)`` image pixels.
        output_size: crop side or ``(width, height)``.
        template: ``'auto'`` (lowest residual of the five), or one name of
            :data:`TEMPLATE_NAMES` / its index for every face.

    Raises:
        ValueError: keypoints that are not finite or all coincide (named by index).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (5, 2):
        raise ValueError(f'keypoints must be (N, 5, 2), got {keypoints.shape}')
    bad = ~np.isfinite(keypoints).all((1, 2)) | (np.ptp(keypoints, axis=1).max(-1) <= 0)
    if bad.any():
        raise ValueError(f'faces {np.flatnonzero(bad).tolist()}: keypoints are not finite or '
                         'coincide, cannot align')
    templates = alignment_templates(output_size)
    if template == 'auto':
        candidates = np.arange(len(templates))
    else:
        if isinstance(template, str):
            if template not in TEMPLATE_NAMES:
                raise ValueError(f"template must be 'auto' or one of {TEMPLATE_NAMES}, "
                                 f'got {template!r}')
            template = TEMPLATE_NAMES.index(template)
        if not 0 <= int(template) < len(templates):
            raise ValueError(f'template index out of range: {template}')
        candidates = np.array([int(template)])
    transforms, residuals = umeyama(keypoints[:, None], templates[candidates][None])  # (N, K, ...)
    best = residuals.argmin(1) if len(keypoints) else np.zeros(0, np.int64)
    rows = np.arange(len(keypoints))
    chosen = candidates[best]
    return Alignment(matrices=transforms[rows, best, :2], templates=chosen,
                     residuals=residuals[rows, best], target=templates[chosen])


def warp_faces(image: np.ndarray, matrices: np.ndarray, output_size: SizeLike = TEMPLATE_SIZE,
               border_value: float = 0.0) -> np.ndarray:
    """Warp ``image`` (``(H, W)`` or ``(H, W, C)``, any cv2 dtype) by each ``(2, 3)``
    matrix into crops ``(N, h, w[, C])`` (bilinear, constant border)."""
    cv2 = require_cv2()
    width, height = _output_wh(output_size)
    matrices = np.asarray(matrices, dtype=np.float64).reshape(-1, 2, 3)
    image = np.ascontiguousarray(image)
    crops = np.zeros((len(matrices), height, width) + image.shape[2:], dtype=image.dtype)
    for i, matrix in enumerate(matrices):
        warped = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)
        crops[i] = warped.reshape(crops.shape[1:])
    return crops


def align_faces(image: np.ndarray, keypoints, output_size: SizeLike = 224,
                template: Union[str, int] = 'auto', return_alignment: bool = False
                ) -> Union[np.ndarray, Tuple[np.ndarray, Alignment]]:
    """Aligned face crops ``(N, S, S, C)`` of an image array.

    Args:
        image: ``(H, W, C)`` array (RGB uint8 for the public API).
        keypoints: ``(N, 5, 2)`` or face dicts (see :func:`keypoints_from_faces`).
        output_size: crop side or ``(width, height)``.
        template: ``'auto'`` or a fixed template (see :func:`estimate_alignment`).
        return_alignment: also return the :class:`Alignment`.
    """
    require_cv2()
    image = np.asarray(image)
    keypoints = keypoints_from_faces(keypoints, image.shape[:2])
    alignment = estimate_alignment(keypoints, output_size, template)
    crops = warp_faces(image, alignment.matrices, output_size)
    return (crops, alignment) if return_alignment else crops


__all__ = ['TEMPLATE_SIZE', 'FRONTAL_TEMPLATE', 'TEMPLATE_NAMES', 'TEMPLATE_YAWS', 'Alignment',
           'require_cv2', 'umeyama', 'derive_templates', 'alignment_templates', 'pose_keypoints',
           'keypoints_to_dict', 'keypoints_from_faces', 'estimate_alignment', 'warp_faces',
           'align_faces']
