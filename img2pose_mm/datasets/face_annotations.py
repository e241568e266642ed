"""The img2pose JSON-list annotation format and the per-image face annotation.

One JSON object per line::

    {"image_path": "images/0001.jpg",
     "bboxes": [[x1, y1, x2, y2(, score)], ...],
     "landmarks": [[[x, y] * 5 or 68], ...]}

A landmark set that contains ``-1`` means "no pose for that face". An optional
``poses`` key (``N x 6``) is kept as ``gt_poses_reference`` and never used for
training.

Shared by the JSON -> LMDB converter and by :class:`FacePoseJSONDataset` so that both
annotate an image the same way: EPnP pose per face with the full-image camera
(:func:`~img2pose_mm.structures.pose_from_landmarks`), the face box built from the
pose (:func:`~img2pose_mm.structures.pose_to_bbox`) and the pose local to that box
(:func:`~img2pose_mm.structures.global_to_local`). Faces without a pose get the
sentinel :data:`POSE_SENTINEL` in every pose field.
"""
from __future__ import annotations

import json
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import torch

from img2pose_mm.structures import (
    global_to_local,
    landmarks_valid,
    load_reference_points,
    pose_from_landmarks,
    pose_to_bbox,
)

#: Value of every pose field (global, local, pose box) of a face without a pose.
POSE_SENTINEL = -9.0
#: Value of every landmark coordinate of a face without usable landmarks.
LANDMARK_MISSING = -1.0
#: Why a face has no pose (codes stored in the ``pose_status`` array).
POSE_STATUS = ('ok', 'landmarks missing (-1)', 'EPnP failed', 'pose behind the camera',
               'pose box outside the image')


class AnnotationError(ValueError):
    """A JSON-list entry (or the image it names) that cannot be used."""


# ----------------------------------------------------------------------------- parsing
def _number_array(value: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise AnnotationError(f'{what} is not a numeric array ({err})') from None
    return arr


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
        arr = _number_array(item, f'landmark set {i}')
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


def parse_annotation(entry: Any) -> Dict[str, Any]:
    """Validate one decoded JSON-list object.

    Returns:
        dict with ``image_path`` (str, as written), ``bboxes`` ``(N, 4)`` float64,
        ``scores`` ``(N,)`` float64 or ``None``, ``landmarks`` ``(N, M, 2)`` float64
        (rows of faces without usable landmarks are all ``-1``), ``num_landmarks``
        ``M`` and ``poses_reference`` ``(N, 6)`` or ``None``.

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
    boxes = _number_array(raw_boxes, '"bboxes"')
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] not in (4, 5):
        raise AnnotationError(f'"bboxes" has shape {boxes.shape}; expected (N, 4) or (N, 5)')
    if not np.isfinite(boxes).all():
        raise AnnotationError('"bboxes" contains NaN or inf')
    scores = boxes[:, 4].copy() if boxes.shape[1] == 5 else None
    landmarks, _ = _parse_landmark_sets(entry['landmarks'], len(boxes))
    poses_reference = None
    if entry.get('poses') is not None:
        ref = _number_array(entry['poses'], '"poses"')
        if ref.shape == (len(boxes), 6):
            poses_reference = ref
    return dict(image_path=image_path, bboxes=np.ascontiguousarray(boxes[:, :4]),
                scores=scores, landmarks=landmarks, num_landmarks=landmarks.shape[1],
                poses_reference=poses_reference)


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


# ----------------------------------------------------------------------------- images
def read_image_bytes(path: str) -> bytes:
    """The file's bytes; :class:`AnnotationError` naming the path if unreadable."""
    if not osp.exists(path):
        raise AnnotationError(f'image not found: {path}')
    if not osp.isfile(path):
        raise AnnotationError(f'image path is not a file: {path}')
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as err:
        raise AnnotationError(f'cannot read image {path}: {err}') from None


def decode_image(img_bytes: bytes, flag: str = 'color', backend: str = 'cv2',
                 check_truncation: bool = False) -> np.ndarray:
    """Decode encoded image bytes with :func:`mmcv.imfrombytes` (what the pipeline uses).

    Raises:
        AnnotationError: empty, undecodable or (``check_truncation``) truncated JPEG data.
    """
    if not img_bytes:
        raise AnnotationError('empty image data')
    if check_truncation and bytes(img_bytes[:2]) == b'\xff\xd8' \
            and b'\xff\xd9' not in bytes(img_bytes[-4096:]):
        raise AnnotationError('truncated JPEG data (no end-of-image marker)')
    try:
        img = mmcv.imfrombytes(img_bytes, flag=flag, backend=backend)
    except Exception as err:  # cv2/PIL raise many types on garbage
        raise AnnotationError(f'cannot decode image data ({err})') from None
    if img is None or img.size == 0:
        raise AnnotationError('cannot decode image data (corrupt or not an image)')
    return img


def image_shape_from_header(path: str) -> Tuple[int, int]:
    """``(h, w)`` of an image file from its header, as the ``'color'`` decoder will see it
    (EXIF orientations 5-8 swap width and height)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise AnnotationError(f'image not found: {path}') from None
    except Exception as err:
        raise AnnotationError(f'cannot read image header of {path}: {err}') from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


# ----------------------------------------------------------------------------- poses
class ReferenceFace:
    """The 68 and 5 reference points used to label faces (packaged ones by default)."""

    def __init__(self, points_68: Optional[str] = None, points_5: Optional[str] = None):
        self.path_68, self.path_5 = points_68, points_5
        self.points_68 = load_reference_points(points_68, 68)
        self.points_5 = load_reference_points(points_5, 5)

    def for_landmarks(self, num_points: int) -> np.ndarray:
        """The reference points matching landmarks of ``num_points`` points."""
        if num_points == 68:
            return self.points_68
        if num_points == 5:
            return self.points_5
        raise ValueError(f'landmarks must have 5 or 68 points, got {num_points}')


def annotate_faces(landmarks: np.ndarray, img_shape: Sequence[int],
                   reference: ReferenceFace) -> Dict[str, np.ndarray]:
    """Poses of the faces of one image from their landmarks.

    Args:
        landmarks: ``(N, M, 2)``, rows with ``-1`` = no pose.
        img_shape: ``(h, w)`` of the image the landmarks live in.
        reference: the reference points.

    Returns:
        dict of float64 arrays ``poses`` ``(N, 6)`` (global), ``pose_bboxes`` ``(N, 4)``
        (:func:`pose_to_bbox`), ``local_poses`` ``(N, 6)`` (w.r.t. the pose boxes),
        bool ``pose_valid`` ``(N,)`` and int8 ``pose_status`` ``(N,)`` (index into
        :data:`POSE_STATUS`). Faces without a pose hold :data:`POSE_SENTINEL`.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    num = len(landmarks)
    img_shape = (int(img_shape[0]), int(img_shape[1]))
    poses = np.full((num, 6), POSE_SENTINEL)
    boxes = np.full((num, 4), POSE_SENTINEL)
    local = np.full((num, 6), POSE_SENTINEL)
    status = np.zeros(num, dtype=np.int8)
    if num == 0:
        return dict(poses=poses, pose_bboxes=boxes, local_poses=local,
                    pose_valid=np.zeros(0, dtype=bool), pose_status=status)
    has_landmarks = landmarks_valid(landmarks)
    status[~has_landmarks] = 1
    est, solved = pose_from_landmarks(landmarks, reference.for_landmarks(landmarks.shape[1]),
                                      img_shape)
    est, solved = est.numpy(), solved.numpy()
    status[has_landmarks & ~solved] = 2
    front = solved & (np.nan_to_num(est[:, 5], nan=-1.0) > 0)
    status[solved & ~front] = 3
    valid = front.copy()
    if valid.any():
        pose_t = torch.from_numpy(est[valid])
        box_t = pose_to_bbox(pose_t, torch.from_numpy(reference.points_68).double(), img_shape)
        box = box_t.numpy()
        inside = (box[:, 2] - box[:, 0] >= 1) & (box[:, 3] - box[:, 1] >= 1)
        idx = np.flatnonzero(valid)
        status[idx[~inside]] = 4
        valid[idx[~inside]] = False
        if inside.any():
            keep = idx[inside]
            poses[keep] = est[keep]
            boxes[keep] = box[inside]
            local[keep] = global_to_local(pose_t[inside], box_t[inside], img_shape).numpy()
    return dict(poses=poses, pose_bboxes=boxes, local_poses=local, pose_valid=valid,
                pose_status=status)


# ----------------------------------------------------------------------------- data_info
def make_data_info(img_id: str, img_path: str, height: int, width: int, bboxes: np.ndarray,
                   poses: np.ndarray, pose_valid: np.ndarray, landmarks: np.ndarray,
                   **extra: Any) -> Dict[str, Any]:
    """An mmdet ``data_info`` dict for one image (shared by the LMDB and folder datasets).

    Each instance has ``bbox`` (the annotated box), ``bbox_label`` 0, ``ignore_flag``
    (1 for faces without a pose), ``pose`` (float64 ``(6,)``, :data:`POSE_SENTINEL`
    when missing), ``pose_valid`` and ``landmarks`` (float32 ``(M, 2)``, -1 when
    missing).
    """
    landmarks = np.asarray(landmarks, dtype=np.float32)
    instances = []
    for i in range(len(bboxes)):
        valid = bool(pose_valid[i])
        instances.append(dict(
            bbox=[float(v) for v in bboxes[i]], bbox_label=0, ignore_flag=int(not valid),
            pose=np.asarray(poses[i], dtype=np.float64) if valid
            else np.full(6, POSE_SENTINEL), pose_valid=valid, landmarks=landmarks[i]))
    info = dict(img_id=img_id, img_path=img_path, height=int(height), width=int(width),
                num_landmarks=int(landmarks.shape[1]) if landmarks.ndim == 3 else 68,
                instances=instances)
    info.update(extra)
    return info


def pose_statistics(local_poses: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (numpy's, ``ddof=0``) of local poses ``(K, 6)``."""
    local_poses = np.asarray(local_poses, dtype=np.float64).reshape(-1, 6)
    if len(local_poses) == 0:
        raise ValueError('no face with a pose: pose statistics are undefined')
    return local_poses.mean(0), local_poses.std(0)


def save_array_atomic(path: str, array: np.ndarray) -> None:
    """``np.save`` through a temporary file renamed into place."""
    tmp = f'{path}.tmp{os.getpid()}.npy'
    np.save(tmp, array)
    os.replace(tmp, path)


__all__ = [
    'POSE_SENTINEL', 'LANDMARK_MISSING', 'POSE_STATUS', 'AnnotationError', 'parse_annotation',
    'parse_json_line', 'iter_json_list', 'resolve_image_path', 'read_image_bytes',
    'decode_image', 'image_shape_from_header', 'ReferenceFace', 'annotate_faces',
    'make_data_info', 'pose_statistics', 'save_array_atomic',
]
