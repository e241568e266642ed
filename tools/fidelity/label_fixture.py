"""A tiny JSON-lines face dataset that exercises the original's labelling rules.

:func:`make_label_dataset` writes four small smooth PNG images and ``faces.jsonl``
(docs/reference.md §6), deterministically; what it contains on purpose:
``tests/data/original/README.md``.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List

import numpy as np

#: ``(image name, (height, width), points per face, faces)``; a face is
#: ``dict(pose=[rx, ry, rz, tx, ty, tz] or None, margins=(left, top, right, bottom))``
#: plus optional ``score``, ``missing`` (landmark indices set to -1) and ``degenerate``
#: (``'x'`` or ``'y'``: the box's corners swapped along that axis).
FACES = (
    ('frontal68', (120, 160), 68, [
        dict(pose=[0.10, -0.20, 0.05, -1.5, 0.0, 14.0], margins=(3.37, 8.61, 2.55, 1.72)),
        dict(pose=[-0.15, 0.30, -0.10, 1.2, -0.3, 17.5], margins=(2.81, 6.25, 4.40, 2.09),
             score=0.98),
    ]),
    ('five_points', (121, 151), 5, [
        dict(pose=[0.05, 0.15, 0.20, -1.0, 0.5, 12.0], margins=(9.3, 11.7, 8.6, 13.45)),
        dict(pose=[0.0, -0.25, 0.0, 1.6, -0.6, 15.0], margins=(10.2, 12.9, 7.75, 12.3),
             missing=(3,)),
        dict(pose=[0.2, 0.1, -0.1, 0.3, 0.9, 16.0], margins=(8.5, 9.5, 8.5, 9.5),
             degenerate='x'),
    ]),
    ('rolled68', (133, 200), 68, [
        dict(pose=[0.05, 0.10, 1.20, -2.7, 0.1, 11.0], margins=(4.6, 3.3, 2.2, 5.9),
             score=0.5),
        dict(pose=[-0.10, -0.40, -0.30, 2.2, 0.4, 13.0], margins=(1.15, 7.85, 3.05, 0.95)),
    ]),
    ('no_pose', (130, 97), 68, [
        dict(pose=[0.0, 0.0, 0.0, 0.0, 0.2, 12.0], margins=(3.0, 7.0, 3.0, 2.0),
             missing=tuple(range(68))),
        dict(pose=[0.1, 0.2, 0.0, 0.5, -0.5, 14.0], margins=(3.0, 7.0, 3.0, 2.0),
             degenerate='y'),
    ]),
)
NOISE_PX = 0.25
SEED = 14


def _smooth_image(img_shape, index: int) -> np.ndarray:
    h, w = img_shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / (9 + index) + index) * np.cos(y / 13)
    g = 40 + 200 * x / max(w - 1, 1)
    b = 40 + 200 * y / max(h - 1, 1)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def label_dataset_entries() -> List[Dict[str, object]]:
    """The JSON-lines entries (``image_path`` relative to the list file) of the dataset."""
    import torch

    from img2pose_mm.structures import load_reference_points, project_pose_points
    rng = np.random.default_rng(SEED)
    entries = []
    for name, img_shape, num_points, faces in FACES:
        points = torch.from_numpy(load_reference_points(None, num_points).astype(np.float64))
        bboxes, landmarks = [], []
        for face in faces:
            # the landmarks: the points under the face's global pose in the image's camera
            lms = project_pose_points(points, torch.tensor([face['pose']], dtype=torch.float64),
                                      tuple(img_shape))[0].numpy()
            lms = lms + rng.normal(0, NOISE_PX, lms.shape)
            lms = np.round(lms, 3)
            left, top, right, bottom = face['margins']
            box = [float(lms[:, 0].min() - left), float(lms[:, 1].min() - top),
                   float(lms[:, 0].max() + right), float(lms[:, 1].max() + bottom)]
            if face.get('degenerate') == 'x':
                box[0], box[2] = box[2], box[0]
            elif face.get('degenerate') == 'y':
                box[1], box[3] = box[3], box[1]
            box = [round(v, 3) for v in box]
            if 'score' in face:
                box.append(float(face['score']))
            for index in face.get('missing', ()):
                lms[index] = -1.0
            bboxes.append(box)
            landmarks.append(lms.tolist())
        entries.append(dict(image_path=f'images/{name}.png', bboxes=bboxes,
                            landmarks=landmarks))
    return entries


def make_label_dataset(out_dir: str) -> str:
    """Write the images and ``faces.jsonl`` under ``out_dir``; returns the list's path."""
    from PIL import Image
    os.makedirs(os.path.join(out_dir, 'images'), exist_ok=True)
    for index, (name, img_shape, _, _) in enumerate(FACES):
        Image.fromarray(_smooth_image(img_shape, index)).save(
            os.path.join(out_dir, 'images', f'{name}.png'), optimize=True)
    path = os.path.join(out_dir, 'faces.jsonl')
    with open(path, 'w') as f:
        for entry in label_dataset_entries():
            f.write(json.dumps(entry) + '\n')
    return path


__all__ = ['FACES', 'label_dataset_entries', 'make_label_dataset']
