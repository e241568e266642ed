"""The synthetic face scenes of ``make_synthetic_faces.py``: the reference face rendered
(Sim3DR) at random global poses onto scikit-image photos, and the labels of the faces
left visible. Every image depends only on (seed, split, index, :class:`SynthParams`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

import Sim3DR
from img2pose_mm.structures import (
    euler_to_rotvec,
    image_intrinsics,
    load_reference_mesh,
    load_reference_points,
    pose_to_bbox,
    project_pose_points,
    transform_points,
)
from img2pose_mm.visualization.draw import NEAR_PLANE, pose_face_map, render_pose_meshes

SPLIT_IDS = {'train': 0, 'val': 1}
# scikit-image's bundled photos without human faces (astronaut, camera and the LFW
# subset show real, unlabelled faces and are left out).
BACKGROUNDS = ('coffee', 'chelsea', 'rocket', 'hubble_deep_field', 'immunohistochemistry',
               'retina', 'colorwheel', 'coins', 'moon', 'page', 'text', 'brick', 'grass',
               'gravel', 'clock', 'cell', 'checkerboard', 'stereo_motorcycle')
VERSION = 1   # bump when the generator's output for given parameters changes


@dataclass(frozen=True)
class SynthParams:
    """Everything an image depends on besides its split and index."""
    seed: int = 0
    min_size: int = 256           # image sides are drawn from [min_size, max_size]
    max_size: int = 256
    min_faces: int = 1
    max_faces: int = 6
    min_face: float = 24.0        # face box size in pixels (longer side of the pose box)
    max_face_frac: float = 0.5    # ... up to this fraction of the short image side
    max_yaw: float = 90.0
    max_pitch: float = 50.0
    max_roll: float = 40.0
    min_visible: float = 0.2      # a visible face shows at least this share of its area
    ext: str = 'jpg'
    jpeg_quality: int = 92
    version: int = VERSION

    def validate(self) -> None:
        if not 16 <= self.min_size <= self.max_size:
            raise ValueError(f'need 16 <= min_size <= max_size, got {self.min_size}, '
                             f'{self.max_size}')
        if not 1 <= self.min_faces <= self.max_faces:
            raise ValueError(f'need 1 <= min_faces <= max_faces, got {self.min_faces}, '
                             f'{self.max_faces}')
        if not 0 < self.max_face_frac <= 1:
            raise ValueError(f'max_face_frac must be in (0, 1], got {self.max_face_frac}')
        if self.min_face > self.max_face_frac * self.min_size:
            raise ValueError(f'min_face {self.min_face} px exceeds max_face_frac * min_size = '
                             f'{self.max_face_frac * self.min_size} px: use larger images')
        if self.ext not in ('jpg', 'png'):
            raise ValueError(f"ext must be 'jpg' or 'png', got {self.ext!r}")
        if not 0 <= self.min_visible <= 1:
            raise ValueError(f'min_visible must be in [0, 1], got {self.min_visible}')


@lru_cache(maxsize=1)
def reference_face():
    """The reference mesh and 68 points (float64 tensor), loaded once per process."""
    return load_reference_mesh(), torch.as_tensor(load_reference_points(), dtype=torch.float64)


# --------------------------------------------------------------------------
# backgrounds
# --------------------------------------------------------------------------
@lru_cache(maxsize=1)
def load_backgrounds() -> Tuple[np.ndarray, ...]:
    """scikit-image's bundled photos as RGB uint8 arrays (loaded once per process)."""
    try:
        import skimage.data
    except ImportError as err:
        raise ImportError('make_synthetic_faces needs scikit-image for its background photos: '
                          'pip install scikit-image (see requirements/runtime.txt)') from err
    images = []
    for name in BACKGROUNDS:
        image = getattr(skimage.data, name)()
        if isinstance(image, tuple):   # stereo_motorcycle: (left, right, disparity)
            image = image[0]
        image = np.asarray(image)
        if image.dtype != np.uint8:
            image = (image > 0).astype(np.uint8) * 255 if image.dtype == bool else \
                np.clip(image, 0, 255).astype(np.uint8)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, -1)
        images.append(np.ascontiguousarray(image[..., :3]))
    return tuple(images)


def random_background(rng: np.random.Generator, height: int, width: int,
                      backgrounds: Sequence[np.ndarray]) -> np.ndarray:
    """A random crop of a random photo resized to ``(height, width)``, flipped and jittered."""
    source = backgrounds[rng.integers(len(backgrounds))]
    src_h, src_w = source.shape[:2]
    aspect = width / height
    max_crop_h = min(src_h, src_w / aspect)
    crop_h = max_crop_h * rng.uniform(0.35, 1.0)
    crop_w = min(crop_h * aspect, src_w)
    crop_h, crop_w = max(int(crop_h), 8), max(int(crop_w), 8)
    y0 = int(rng.integers(0, src_h - crop_h + 1))
    x0 = int(rng.integers(0, src_w - crop_w + 1))
    crop = source[y0:y0 + crop_h, x0:x0 + crop_w]
    interp = cv2.INTER_AREA if crop_w > width else cv2.INTER_LINEAR
    image = cv2.resize(crop, (width, height), interpolation=interp).astype(np.float32)
    if rng.random() < 0.5:
        image = image[:, ::-1]
    # colour jitter: brightness, contrast, saturation
    image = image * rng.uniform(0.7, 1.3)
    mean = image.mean()
    image = (image - mean) * rng.uniform(0.7, 1.3) + mean
    gray = image.mean(-1, keepdims=True)
    image = (image - gray) * rng.uniform(0.6, 1.4) + gray
    return np.ascontiguousarray(np.clip(image, 0, 255).round().astype(np.uint8))


# --------------------------------------------------------------------------
# poses
# --------------------------------------------------------------------------
def face_size(poses: torch.Tensor, points: torch.Tensor, img_shape: Sequence[int]) -> torch.Tensor:
    """Longer side of each pose's (unclipped) face box, pixels."""
    boxes = pose_to_bbox(poses, points, img_shape, clip=False)
    return torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def sample_pose(rng: np.random.Generator, img_shape: Tuple[int, int], params: SynthParams,
                points: torch.Tensor, mesh_radius: float,
                max_tries: int = 20) -> Optional[torch.Tensor]:
    """A random global pose ``(6,)`` float64 with all 68 landmarks inside the image.

    Angles are uniform in the ranges of ``params``; the face size is log-uniform in
    ``[min_face, max_face_frac * min(h, w)]`` and its position uniform over the
    places where the landmarks fit. ``None`` when no position fits.
    """
    height, width = img_shape
    focal = float(image_intrinsics(img_shape)[0, 0])
    angles = torch.tensor([[rng.uniform(-params.max_pitch, params.max_pitch),
                            rng.uniform(-params.max_yaw, params.max_yaw),
                            rng.uniform(-params.max_roll, params.max_roll)]], dtype=torch.float64)
    rotvec = euler_to_rotvec(angles)
    max_face = params.max_face_frac * min(height, width)
    size = float(np.exp(rng.uniform(np.log(params.min_face), np.log(max_face))))
    # depth for the wanted size: sizes scale as 1 / depth
    probe = torch.cat([rotvec, torch.tensor([[0., 0., 2 * focal / size]], dtype=torch.float64)], 1)
    depth = float(probe[0, 5]) * float(face_size(probe, points, img_shape)[0]) / size
    if depth - mesh_radius <= NEAR_PLANE:
        return None
    centred = torch.cat([rotvec, torch.tensor([[0., 0., depth]], dtype=torch.float64)], 1)
    landmarks = project_pose_points(points, centred, img_shape)[0]
    lo, hi = landmarks.min(0).values.numpy(), landmarks.max(0).values.numpy()
    # pixel shifts of the centred face that keep its landmarks inside, with a margin
    shift_lo = -lo + 1.0
    shift_hi = np.array([width - 1.0, height - 1.0]) - hi - 1.0
    if (shift_lo > shift_hi).any():
        return None
    for _ in range(max_tries):
        shift = rng.uniform(shift_lo, shift_hi)
        trans = torch.tensor([[shift[0] * depth / focal, shift[1] * depth / focal, depth]],
                             dtype=torch.float64)
        pose = torch.cat([rotvec, trans], 1)
        landmarks = project_pose_points(points, pose, img_shape)[0].numpy()
        if (landmarks.min(0) >= 0).all() and (landmarks.max(0) <= [width - 1, height - 1]).all():
            return pose[0]
    return None


def random_light(rng: np.random.Generator) -> Sim3DR.Light:
    """A directional light from the camera side with random Phong weights."""
    direction = (rng.uniform(-0.7, 0.7), rng.uniform(-0.9, 0.3), -1.0)
    tint = 1.0 - rng.uniform(0.0, 0.15, 3)
    return Sim3DR.Light(direction=direction, color=tuple(float(c) for c in tint),
                        ambient=rng.uniform(0.35, 0.6), diffuse=rng.uniform(0.35, 0.7),
                        specular=rng.uniform(0.0, 0.25), shininess=rng.uniform(8.0, 32.0))


# --------------------------------------------------------------------------
# one image
# --------------------------------------------------------------------------
def compose_faces(background: np.ndarray, poses: torch.Tensor,
                  colors: Optional[np.ndarray] = None,
                  light: Sim3DR.Light = Sim3DR.DEFAULT_LIGHT,
                  mesh=None) -> Tuple[np.ndarray, np.ndarray]:
    """Render faces at global ``poses`` ``(N, 6)`` over ``background`` (RGB, not modified).

    Args:
        colors: per-face vertex colours ``(N, V, 3)`` (default: the mesh texture).

    Returns:
        the image and the number of visible pixels of each face ``(N,)``.
    """
    mesh = reference_face()[0] if mesh is None else mesh
    color = 'texture' if colors is None else colors
    image, face_map = render_pose_meshes(background, poses, color=color, alpha=1.0, light=light,
                                         mesh=mesh, return_face_map=True)
    visible = np.bincount(face_map[face_map >= 0], minlength=len(poses))
    return image, visible


def face_labels(poses: torch.Tensor, visible: np.ndarray, img_shape: Tuple[int, int],
                points: torch.Tensor) -> Dict[str, list]:
    """Boxes, landmarks and poses of the faces with visible pixels (annotation lists)."""
    keep = torch.as_tensor(np.flatnonzero(visible > 0))
    poses = poses[keep]
    if len(poses) == 0:
        return {'bboxes': [], 'landmarks': [], 'poses': []}
    bboxes = pose_to_bbox(poses, points, img_shape)
    landmarks = project_pose_points(points, poses, img_shape)
    return {'bboxes': bboxes.tolist(),
            'landmarks': np.round(landmarks.numpy(), 4).tolist(),
            'poses': poses.tolist()}


def place_faces(rng: np.random.Generator, img_shape: Tuple[int, int], params: SynthParams,
                points: torch.Tensor, mesh, max_tries: int = 30) -> torch.Tensor:
    """Random poses ``(N, 6)`` whose faces are each hidden entirely or visible enough.

    A new face is rejected (and re-drawn) when it leaves some face with a visible
    share of its own area in ``(0, min_visible)``.
    """
    mesh_radius = float(np.linalg.norm(mesh.vertices, axis=1).max())
    num_faces = int(rng.integers(params.min_faces, params.max_faces + 1))
    poses: List[torch.Tensor] = []
    areas: List[int] = []
    for _ in range(num_faces):
        for _ in range(max_tries):
            pose = sample_pose(rng, img_shape, params, points, mesh_radius)
            if pose is None:
                continue
            area = int((pose_face_map(pose[None], img_shape, mesh) >= 0).sum())
            if area == 0:
                continue
            candidate = torch.stack(poses + [pose])
            face_map = pose_face_map(candidate, img_shape, mesh)
            visible = np.bincount(face_map[face_map >= 0], minlength=len(candidate))
            share = visible / np.array(areas + [area], np.float64)
            if ((visible > 0) & (share < params.min_visible)).any():
                continue
            poses.append(pose)
            areas.append(area)
            break
    if not poses:
        raise RuntimeError(f'could not place a face in a {img_shape} image: check the size '
                           'parameters')
    return torch.stack(poses)


def generate_sample(split: str, index: int, params: SynthParams) -> Tuple[np.ndarray, dict]:
    """Image ``(H, W, 3)`` RGB and its annotation (without ``image_path``)."""
    rng = np.random.default_rng([params.seed, SPLIT_IDS[split], index, params.version])
    mesh, points = reference_face()
    height = int(rng.integers(params.min_size, params.max_size + 1))
    width = int(rng.integers(params.min_size, params.max_size + 1))
    img_shape = (height, width)
    background = random_background(rng, height, width, load_backgrounds())
    poses = place_faces(rng, img_shape, params, points, mesh)
    # per-face skin tint and brightness
    tints = rng.uniform(0.8, 1.15, (len(poses), 1, 3)) * rng.uniform(0.8, 1.2, (len(poses), 1, 1))
    colors = np.clip(mesh.colors[None].astype(np.float64) / 255 * tints, 0, 1).astype(np.float32)
    image, visible = compose_faces(background, poses, colors, random_light(rng), mesh)
    if rng.random() < 0.25:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.0))
    if rng.random() < 0.2:
        noise = rng.normal(0, rng.uniform(2, 6), image.shape)
        image = np.clip(image + noise, 0, 255).round().astype(np.uint8)
    # faces must be in front of the camera (sample_pose guarantees it; keep it checked)
    depth = transform_points(torch.as_tensor(mesh.vertices, dtype=torch.float64), poses)[..., 2]
    if not bool((depth > NEAR_PLANE).all()):
        raise RuntimeError(f'{split}/{index}: a face crosses the camera plane')
    return np.ascontiguousarray(image), face_labels(poses, visible, img_shape, points)


def encode_image(image: np.ndarray, params: SynthParams) -> bytes:
    """RGB image -> JPEG/PNG bytes."""
    flags = [cv2.IMWRITE_JPEG_QUALITY, params.jpeg_quality] if params.ext == 'jpg' else []
    ok, buf = cv2.imencode(f'.{params.ext}', image[..., ::-1], flags)
    if not ok:
        raise RuntimeError(f'could not encode a {params.ext} image')
    return buf.tobytes()
