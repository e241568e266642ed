"""WIDER FACE files: the ground-truth ``.mat`` files of ``eval_tools`` and the submission
layout (``<event>/<name>.txt``: file name, count, ``x y w h score`` lines)."""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from .wider_face import WIDER_SETTINGS, ImageKey, WIDERImageGT, xyxy_to_xywh


def _cell_elements(value, what: str, path: str) -> list:
    """Elements of a MATLAB cell array loaded by scipy, in MATLAB (column-major) order."""
    # a cell wrapped into further 1x1 cells collapses to the innermost cell array
    while (isinstance(value, np.ndarray) and value.dtype == object and value.size == 1
           and isinstance(value.flat[0], np.ndarray) and value.flat[0].dtype == object):
        value = value.flat[0]
    if not isinstance(value, np.ndarray) or value.dtype != object:
        kind = getattr(value, 'dtype', type(value).__name__)
        raise ValueError(f'{path}: `{what}` must be a cell array, got {kind}')
    return list(value.ravel(order='F'))


def _unwrap(value):
    """Strip 1x1 cell wrappers around a MATLAB value."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.flat[0]
    return value


def _mat_string(value, what: str, path: str) -> str:
    value = _unwrap(value)
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind == 'U':
        if value.size == 0:
            return ''
        if value.size == 1:
            return str(value.flat[0])
        return ''.join(value.ravel(order='F').tolist())
    raise ValueError(f'{path}: `{what}` must hold strings, got {type(value).__name__}')


def _mat_boxes(value, what: str, path: str) -> np.ndarray:
    value = np.asarray(_unwrap(value), dtype=np.float64)
    if value.size == 0:
        return np.zeros((0, 4))
    if value.ndim != 2 or value.shape[1] != 4:
        raise ValueError(f'{path}: `{what}` must be K x 4 boxes, got shape {value.shape}')
    return value


def _mat_indices(value, num_faces: int, what: str, path: str) -> np.ndarray:
    value = np.asarray(_unwrap(value))
    if value.size == 0:
        return np.zeros(0, dtype=np.int64)
    idx = value.astype(np.int64).ravel() - 1
    if idx.min() < 0 or idx.max() >= num_faces:
        raise ValueError(f'{path}: `{what}` holds face indices outside 1..{num_faces}: '
                         f'{(idx + 1).tolist()}')
    return idx


def _loadmat(path: str, keys: Sequence[str]) -> dict:
    from scipy.io import loadmat
    if not osp.isfile(path):
        raise FileNotFoundError(f'WIDER FACE ground-truth file not found: {path}')
    mat = loadmat(path)
    missing = [k for k in keys if k not in mat]
    if missing:
        raise ValueError(f'{path}: missing variables {missing} (found '
                         f'{sorted(k for k in mat if not k.startswith("__"))})')
    return mat


def load_wider_ground_truth(gt_dir: str, settings: Sequence[str] = WIDER_SETTINGS,
                            split: str = 'val') -> List[WIDERImageGT]:
    """Read the official ground truth: ``wider_face_<split>.mat`` + setting files.

    Args:
        gt_dir: folder holding ``wider_face_val.mat`` and ``wider_<setting>_val.mat``
            (``eval_tools/ground_truth`` of the official tool).
        settings: settings to load (``wider_<setting>_<split>.mat`` each).
        split: ``'val'`` for the public files.

    Returns:
        One :class:`WIDERImageGT` per image in the order of the .mat files.
    """
    face_path = osp.join(gt_dir, f'wider_face_{split}.mat')
    mat = _loadmat(face_path, ('event_list', 'file_list', 'face_bbx_list'))
    events = [_mat_string(e, f'event_list{{{i + 1}}}', face_path)
              for i, e in enumerate(_cell_elements(mat['event_list'], 'event_list', face_path))]
    file_cells = _cell_elements(mat['file_list'], 'file_list', face_path)
    box_cells = _cell_elements(mat['face_bbx_list'], 'face_bbx_list', face_path)
    if not len(events) == len(file_cells) == len(box_cells):
        raise ValueError(f'{face_path}: event_list, file_list and face_bbx_list have '
                         f'{len(events)}, {len(file_cells)} and {len(box_cells)} events')
    images: List[WIDERImageGT] = []
    layout: List[int] = []
    for i, (event, files, boxes) in enumerate(zip(events, file_cells, box_cells)):
        files = _cell_elements(files, f'file_list{{{i + 1}}}', face_path)
        boxes = _cell_elements(boxes, f'face_bbx_list{{{i + 1}}}', face_path)
        if len(files) != len(boxes):
            raise ValueError(f'{face_path}: event {event!r} lists {len(files)} files but '
                             f'{len(boxes)} box sets')
        layout.append(len(files))
        for j, (name, bbx) in enumerate(zip(files, boxes)):
            images.append(WIDERImageGT(
                event=event,
                name=_mat_string(name, f'file_list{{{i + 1}}}{{{j + 1}}}', face_path),
                boxes=_mat_boxes(bbx, f'face_bbx_list{{{i + 1}}}{{{j + 1}}}', face_path)))
    for setting in settings:
        path = osp.join(gt_dir, f'wider_{setting}_{split}.mat')
        gt_cells = _cell_elements(_loadmat(path, ('gt_list',))['gt_list'], 'gt_list', path)
        if len(gt_cells) != len(layout):
            raise ValueError(f'{path}: gt_list has {len(gt_cells)} events, '
                             f'{face_path} has {len(layout)}')
        cursor = 0
        for i, (cell, num_images) in enumerate(zip(gt_cells, layout)):
            entries = _cell_elements(cell, f'gt_list{{{i + 1}}}', path)
            if len(entries) != num_images:
                raise ValueError(f'{path}: event {events[i]!r} has {len(entries)} entries, '
                                 f'{face_path} lists {num_images} images')
            for j, entry in enumerate(entries):
                image = images[cursor]
                idx = _mat_indices(entry, len(image.boxes),
                                   f'gt_list{{{i + 1}}}{{{j + 1}}}', path)
                keep = np.zeros(len(image.boxes), dtype=bool)
                keep[idx] = True
                image.keep[setting] = keep
                cursor += 1
    return images


def write_wider_submission(out_dir: str, event: str, name: str, dets: np.ndarray,
                           file_name: Optional[str] = None) -> str:
    """Write ``<out_dir>/<event>/<name>.txt``: file name, count, ``x y w h score`` lines.

    Args:
        dets: ``(N, 5)`` ``x1, y1, x2, y2, score``.
        file_name: first line (default ``name``), e.g. the image file name.

    Returns:
        The written path.
    """
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5)
    xywh = xyxy_to_xywh(dets[:, :4])
    folder = osp.join(out_dir, event)
    os.makedirs(folder, exist_ok=True)
    path = osp.join(folder, f'{name}.txt')
    lines = [file_name or name, str(len(dets))]
    lines += [f'{x:.2f} {y:.2f} {w:.2f} {h:.2f} {s:.6f}'
              for (x, y, w, h), s in zip(xywh, dets[:, 4])]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def read_wider_submission(pred_dir: str) -> Dict[ImageKey, np.ndarray]:
    """Read a submission folder into ``(event, name) -> (N, 5) x, y, w, h, score``."""
    if not osp.isdir(pred_dir):
        raise FileNotFoundError(f'WIDER FACE prediction folder not found: {pred_dir}')
    preds: Dict[ImageKey, np.ndarray] = {}
    for event in sorted(os.listdir(pred_dir)):
        event_dir = osp.join(pred_dir, event)
        if not osp.isdir(event_dir):
            continue
        for fname in sorted(os.listdir(event_dir)):
            if not fname.endswith('.txt'):
                continue
            path = osp.join(event_dir, fname)
            with open(path) as f:
                lines = [line.strip() for line in f]
            while lines and not lines[-1]:
                lines.pop()
            if len(lines) < 2:
                raise ValueError(f'{path}: expected a name line and a count line')
            try:
                count = int(float(lines[1]))
            except ValueError:
                raise ValueError(
                    f'{path}:2: face count must be a number, got {lines[1]!r}') from None
            if len(lines) - 2 < count:
                raise ValueError(f'{path}: announces {count} faces but has {len(lines) - 2} '
                                 'box lines')
            rows = []
            for n, line in enumerate(lines[2:2 + count], start=3):
                values = line.split()
                try:
                    rows.append([float(v) for v in values[:5]])
                except ValueError:
                    raise ValueError(f'{path}:{n}: not numbers: {line!r}') from None
                if len(values) < 5:
                    raise ValueError(f'{path}:{n}: expected `x y w h score`, got {line!r}')
            preds[(event, fname[:-4])] = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    return preds


__all__ = ['load_wider_ground_truth', 'write_wider_submission', 'read_wider_submission']
