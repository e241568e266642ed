"""The img2pose JSON-list annotation format and the per-image face annotation.

One JSON object per line::

    {"image_path": "images/0001.jpg",
     "bboxes": [[x1, y1, x2, y2(, score)], ...],
     "landmarks": [[[x, y] * 5 or 68], ...]}

A landmark set that contains ``-1`` means "no pose for that face". An optional
``poses`` key (``N x 6``) is kept as ``gt_poses_reference`` and never used for
training.

Shared by the JSON -> LMDB converter and by :class:`FacePoseJSONDataset` so that both
annotate an image the same way: EPnP pose per face with the full-image camera, the face
box built from the pose and the pose local to that box, all through the
:class:`~img2pose_mm.structures.FaceModel`. Faces without a pose are invalid rows of the
:class:`~img2pose_mm.structures.FacePoses`.
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
    LANDMARK_MISSING,
    FaceModel,
    FaceModelLike,
    FacePoses,
    landmarks_valid,
)

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
def annotate_faces(landmarks: np.ndarray, img_shape: Sequence[int],
                   face_model: FaceModelLike = None) -> Dict[str, Any]:
    """Poses of the faces of one image from their landmarks.

    Args:
        landmarks: ``(N, M, 2)`` (M = 5 or 68), rows with ``-1`` = no pose.
        img_shape: ``(h, w)`` of the image the landmarks live in.
        face_model: the face model (reference points, box rule); default: packaged.

    Returns:
        dict with ``poses`` (:class:`FacePoses`, float64, global EPnP poses in the image
        camera), ``local_poses`` (:class:`FacePoses` w.r.t. each face's pose box, i.e.
        :meth:`FacePoses.to_bboxes`) and int8 ``pose_status`` ``(N,)`` (index into
        :data:`POSE_STATUS`).
    """
    face_model = FaceModel.build(face_model)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    img_shape = (int(img_shape[0]), int(img_shape[1]))
    status = np.zeros(len(landmarks), dtype=np.int8)
    if len(landmarks) == 0:
        empty = FacePoses.empty(img_shape, torch.float64)
        return dict(poses=empty, local_poses=empty.clone(), pose_status=status)
    has_landmarks = landmarks_valid(landmarks)
    status[~has_landmarks] = 1
    poses = FacePoses.from_landmarks(landmarks, img_shape, face_model, torch.float64)
    solved = poses.valid.numpy()
    status[has_landmarks & ~solved] = 2
    front = solved & (np.nan_to_num(poses.tensor[:, 5].numpy(), nan=-1.0) > 0)
    status[solved & ~front] = 3
    boxes = poses.to_bboxes(face_model)
    inside = ((boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)).numpy()
    status[front & ~inside] = 4
    valid = torch.from_numpy(front & inside)
    local = torch.full_like(poses.tensor, float('nan'))
    if valid.any():
        local[valid] = face_model.encode(poses.tensor[valid], boxes[valid], img_shape)
    return dict(poses=FacePoses(poses.tensor, valid, img_shape),
                local_poses=FacePoses(local, valid, img_shape), pose_status=status)


# ----------------------------------------------------------------------------- data_info
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
    info = dict(img_id=img_id, img_path=img_path, height=int(height), width=int(width),
                instances=instances, poses=poses.to(torch.float32), landmarks=landmarks)
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
    'POSE_STATUS', 'AnnotationError', 'parse_annotation',
    'parse_json_line', 'iter_json_list', 'resolve_image_path', 'read_image_bytes',
    'decode_image', 'image_shape_from_header', 'annotate_faces',
    'make_data_info', 'pose_statistics', 'save_array_atomic',
]
