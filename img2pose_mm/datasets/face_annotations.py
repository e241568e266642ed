"""The img2pose JSON-list annotation format (docs/datasets.md): parsing one entry, and the
data_info built from it.
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from img2pose_mm.structures import LANDMARK_MISSING, FacePoses, landmarks_valid


class AnnotationError(ValueError):
    """A JSON-list entry (or the image it names) that cannot be used."""


def number_array(value: Any, what: str) -> np.ndarray:
    """``value`` as float64; :class:`AnnotationError` saying ``what`` is not numeric if not."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise AnnotationError(f'{what} is not a numeric array ({err})') from None


def _parse_landmark_sets(raw: Any, num_faces: int) -> Tuple[np.ndarray, np.ndarray]:
    """``N`` landmark sets -> ``(N, M, 2)`` array and a ``(N,)`` "marked missing" mask."""
    if not isinstance(raw, list):
        raise AnnotationError(f'"landmarks" must be a list, got {type(raw).__name__}')
    if len(raw) != num_faces:
        raise AnnotationError(f'{len(raw)} landmark sets for {num_faces} boxes')
    sets: List[Optional[np.ndarray]] = []
    missing = np.zeros(num_faces, dtype=bool)
    num_points = None
    for i, item in enumerate(raw):
        arr = number_array(item, f'landmark set {i}')
        if arr.ndim == 2 and arr.shape[0] in (5, 68) and arr.shape[1] == 2:
            if num_points not in (None, arr.shape[0]):
                raise AnnotationError(f'landmark set {i} has {arr.shape[0]} points, '
                                      f'others have {num_points}')
            num_points = arr.shape[0]
            sets.append(arr)
            missing[i] = (arr == LANDMARK_MISSING).any()
        elif (arr == LANDMARK_MISSING).any():
            sets.append(None)        # e.g. -1 or [-1, -1]: no pose, shape unknown
            missing[i] = True
        else:
            raise AnnotationError(f'landmark set {i} has shape {arr.shape}; expected '
                                  '(5, 2) or (68, 2), or a set containing -1')
    num_points = 68 if num_points is None else num_points
    out = np.full((num_faces, num_points, 2), LANDMARK_MISSING)
    for i, arr in enumerate(sets):
        if arr is not None and not missing[i]:
            out[i] = arr
    unusable = ~landmarks_valid(out)     # -1 anywhere, NaN or inf: the whole set is unusable
    out[unusable] = LANDMARK_MISSING
    return out, missing | unusable


def _parse_pose_para(raw: Any, num_faces: int) -> np.ndarray:
    """``N`` rows of at least (pitch, yaw, roll) radians -> ``(N, 3)`` float64."""
    if not isinstance(raw, list):
        raise AnnotationError(f'"pose_para" must be a list, got {type(raw).__name__}')
    if len(raw) != num_faces:
        raise AnnotationError(f'{len(raw)} "pose_para" rows for {num_faces} boxes')
    rows = [number_array(row, f'"pose_para" row {i}').reshape(-1) for i, row in enumerate(raw)]
    for i, row in enumerate(rows):
        if len(row) < 3:
            raise AnnotationError(f'"pose_para" row {i} has {len(row)} numbers; expected '
                                  'at least pitch, yaw, roll (radians)')
        if not np.isfinite(row[:3]).all():
            raise AnnotationError(f'"pose_para" row {i} contains NaN or inf')
    return np.array([row[:3] for row in rows], dtype=np.float64).reshape(-1, 3)


def parse_annotation(entry: Any) -> Dict[str, Any]:
    """Validate one decoded JSON-list object.

    Returns:
        dict with ``image_path`` (str, as written), ``bboxes`` ``(N, 4)`` float64,
        ``landmarks`` ``(N, M, 2)`` float64 (rows of faces without usable landmarks are
        all ``-1``), ``num_landmarks`` ``M`` and ``pose_para`` ``(N, 3)`` (pitch, yaw,
        roll in radians) or ``None``.

    Raises:
        AnnotationError: the entry does not follow the format.
    """
    if not isinstance(entry, dict):
        raise AnnotationError(f'expected a JSON object, got {type(entry).__name__}')
    for key in ('image_path', 'bboxes', 'landmarks'):
        if key not in entry:
            raise AnnotationError(f'missing key "{key}"')
    image_path = entry['image_path']
    if not isinstance(image_path, str) or not image_path:
        raise AnnotationError('"image_path" must be a non-empty string')
    raw_boxes = entry['bboxes']
    if not isinstance(raw_boxes, list):
        raise AnnotationError('"bboxes" must be a list')
    rows = [number_array(box, f'box {i}').reshape(-1) for i, box in enumerate(raw_boxes)]
    bad = [i for i, row in enumerate(rows) if len(row) not in (4, 5)]
    if bad:
        raise AnnotationError(f'box {bad[0]} has {len(rows[bad[0]])} numbers; expected '
                              'x1, y1, x2, y2 and an optional score')
    boxes = np.array([row[:4] for row in rows], dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(boxes).all():
        raise AnnotationError('"bboxes" contains NaN or inf')
    landmarks, _ = _parse_landmark_sets(entry['landmarks'], len(boxes))
    pose_para = None
    if entry.get('pose_para') is not None:
        pose_para = _parse_pose_para(entry['pose_para'], len(boxes))
    return dict(image_path=image_path, bboxes=np.ascontiguousarray(boxes),
                landmarks=landmarks, num_landmarks=landmarks.shape[1], pose_para=pose_para)


def parse_json_line(line: str) -> Dict[str, Any]:
    """Decode and validate one line of a JSON list (see :func:`parse_annotation`)."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError as err:
        raise AnnotationError(f'malformed JSON ({err})') from None
    return parse_annotation(entry)


def iter_json_list(path: str):
    """Yield ``(line_number, text)`` of the non-blank lines of a JSON list (1-based)."""
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                yield line_no, line


def resolve_image_path(image_path: str, image_root: Optional[str], json_path: str) -> str:
    """Absolute image path: as written if absolute, else under ``image_root`` (default:
    the JSON list's folder)."""
    if osp.isabs(image_path):
        return image_path
    root = image_root if image_root is not None else osp.dirname(osp.abspath(json_path))
    return osp.abspath(osp.join(root, image_path))


def make_data_info(img_id: str, img_path: str, height: int, width: int, bboxes: np.ndarray,
                   poses: FacePoses, landmarks: np.ndarray, **extra: Any) -> Dict[str, Any]:
    """An mmdet ``data_info`` dict for one image (shared by the face-pose datasets).

    ``instances`` hold what mmdet's ``LoadAnnotations`` reads: ``bbox`` (the annotated
    box), ``bbox_label`` 0 and ``ignore_flag`` (1 for faces without a pose). The poses
    stay one :class:`FacePoses` (float32) under ``poses``, the landmarks one float32
    ``(N, M, 2)`` array under ``landmarks``.
    """
    bboxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    if len(poses) != len(bboxes):
        raise ValueError(f'{len(poses)} poses for {len(bboxes)} boxes')
    valid = poses.valid.tolist()
    instances = [dict(bbox=[float(v) for v in box], bbox_label=0, ignore_flag=int(not ok))
                 for box, ok in zip(bboxes, valid)]
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.ndim != 3:
        landmarks = np.full((len(bboxes), 68, 2), LANDMARK_MISSING, dtype=np.float32)
    return dict(img_id=img_id, img_path=img_path, height=int(height), width=int(width),
                instances=instances, poses=poses.to(torch.float32), landmarks=landmarks, **extra)


def check_same_source(previous: Dict[str, Any], current: Dict[str, Any], what: str,
                      hint: str = 'delete it or run without resume') -> None:
    """:class:`ValueError` unless ``what``, to be resumed, was made with ``current`` options."""
    changed = sorted(k for k in current if previous.get(k) != current[k])
    if changed:
        raise ValueError(f'cannot resume {what}: it was made with different '
                         f'{", ".join(changed)}; {hint}')


__all__ = [
    'AnnotationError', 'parse_annotation', 'parse_json_line', 'iter_json_list',
    'resolve_image_path', 'make_data_info', 'check_same_source', 'number_array',
]
