"""The img2pose JSON-list annotation format and the per-image face annotation.

One JSON object per line::

    {"image_path": "images/0001.jpg",
     "bboxes": [[x1, y1, x2, y2(, score)], ...],
     "landmarks": [[[x, y] * 5 or 68], ...]}

A landmark set that contains ``-1`` means "no pose for that face". An optional
``poses`` key (``N x 6``) is kept as ``gt_poses_reference`` and never used for
training. An optional ``pose_para`` key (``N`` rows of at least pitch, yaw, roll in
radians: the first numbers of 300W-LP's ``Pose_Para``, written by
``tools/dataset_converters/300wlp_to_json.py``) is the ground-truth rotation that the
``'pose_para'`` labelling uses.

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
    box_iou,
    euler_to_rotvec,
    image_intrinsics,
    landmarks_valid,
    local_intrinsics,
    solve_pnp,
)

#: Why a face has no pose (codes stored in the ``pose_status`` array).
POSE_STATUS = ('ok', 'landmarks missing (-1)', 'landmarks not finite (NaN or inf)',
               'EPnP failed', 'pose behind the camera', 'pose box outside the image',
               'pose implausible for its box')
#: Why a face was dropped from an image (codes stored in the ``dropped_reasons`` array).
BOX_PROBLEMS = ('box swapped or empty (x1 >= x2 or y1 >= y2)', 'box outside the image')
#: How faces are labelled: ``'box'`` = the original's (EPnP in the camera of the
#: annotated box cast to integers, box-local poses relative to that box), ``'image'`` =
#: EPnP in the full image's camera, box-local poses relative to the pose's own box,
#: ``'pose_para'`` = the original's 300W-LP labelling (rotation from each face's
#: ``pose_para`` angles, translation from EPnP in the full image's camera, box-local
#: poses relative to the roll-aware box of the landmarks). See :func:`label_faces`.
LABELLING_MODES = ('box', 'image', 'pose_para')
#: Default least IoU between a face's pose box and its annotated box: loose on purpose, it
#: catches poses unrelated to their box (landmarks far off, swapped), not imprecise ones
#: (a box of only the 5 points overlaps the pose box by about 0.15, a full face box by
#: 0.5 - 0.8).
MIN_POSE_BOX_IOU = 0.1


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


def _parse_pose_para(raw: Any, num_faces: int) -> np.ndarray:
    """``N`` rows of at least (pitch, yaw, roll) radians -> ``(N, 3)`` float64."""
    if not isinstance(raw, list):
        raise AnnotationError(f'"pose_para" must be a list, got {type(raw).__name__}')
    if len(raw) != num_faces:
        raise AnnotationError(f'{len(raw)} "pose_para" rows for {num_faces} boxes')
    rows = [_number_array(row, f'"pose_para" row {i}').reshape(-1) for i, row in enumerate(raw)]
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
        ``scores`` ``(N,)`` float64 (NaN for boxes given without one) or ``None`` (no box
        has one), ``landmarks`` ``(N, M, 2)`` float64
        (rows of faces without usable landmarks are all ``-1``), ``num_landmarks``
        ``M``, ``poses_reference`` ``(N, 6)`` or ``None`` and ``pose_para`` ``(N, 3)``
        (pitch, yaw, roll in radians) or ``None``.

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
    rows = [_number_array(box, f'box {i}').reshape(-1) for i, box in enumerate(raw_boxes)]
    bad = [i for i, row in enumerate(rows) if len(row) not in (4, 5)]
    if bad:
        raise AnnotationError(f'box {bad[0]} has {len(rows[bad[0]])} numbers; expected '
                              'x1, y1, x2, y2 and an optional score')
    boxes = np.array([row[:4] for row in rows], dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(boxes).all():
        raise AnnotationError('"bboxes" contains NaN or inf')
    # a score per box where one is given (boxes with and without one may be mixed)
    scores = (np.array([row[4] if len(row) == 5 else np.nan for row in rows])
              if any(len(row) == 5 for row in rows) else None)
    landmarks, _ = _parse_landmark_sets(entry['landmarks'], len(boxes))
    poses_reference = None
    if entry.get('poses') is not None:
        ref = _number_array(entry['poses'], '"poses"')
        if ref.shape == (len(boxes), 6):
            poses_reference = ref
    pose_para = None
    if entry.get('pose_para') is not None:
        pose_para = _parse_pose_para(entry['pose_para'], len(boxes))
    return dict(image_path=image_path, bboxes=np.ascontiguousarray(boxes),
                scores=scores, landmarks=landmarks, num_landmarks=landmarks.shape[1],
                poses_reference=poses_reference, pose_para=pose_para)


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
def check_boxes(boxes: np.ndarray, img_shape: Sequence[int], integer: bool = True
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The annotated boxes made usable, and the faces whose box is not.

    Rule: with ``integer`` the corners are truncated to integers (the original's
    ``astype(int)``). A box whose ``x1 >= x2`` or ``y1 >= y2`` is dropped (swapped or
    empty), and so is a box with no area inside the image. The boxes that are stored
    (ignore regions, the boxes of faces without a pose) are clipped to the image; the
    original's labelling camera is the unclipped box.

    Returns:
        float64 ``(N, 4)`` boxes (integer, unclipped: the labelling boxes), float64
        ``(N, 4)`` boxes clipped to the image, bool ``(N,)`` keep mask, int8 ``(N,)``
        reason codes (index into :data:`BOX_PROBLEMS`, -1 for kept faces).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if integer:
        boxes = np.trunc(boxes)
    h, w = int(img_shape[0]), int(img_shape[1])
    swapped = (boxes[:, 0] >= boxes[:, 2]) | (boxes[:, 1] >= boxes[:, 3])
    clipped = boxes.copy()
    clipped[:, 0::2] = clipped[:, 0::2].clip(0, w)
    clipped[:, 1::2] = clipped[:, 1::2].clip(0, h)
    outside = (clipped[:, 0] >= clipped[:, 2]) | (clipped[:, 1] >= clipped[:, 3])
    reasons = np.full(len(boxes), -1, dtype=np.int8)
    reasons[swapped] = 0
    reasons[outside & ~swapped] = 1
    return boxes, clipped, reasons < 0, reasons


def pose_para_poses(landmarks: np.ndarray, pose_para: np.ndarray, img_shape: Sequence[int],
                    face_model: FaceModelLike = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Global poses of 300W-LP faces (the original's 300W-LP labelling, docs/reference.md §6).

    The rotation is the ``'aflw'`` reading of the ground-truth angles
    (``euler_to_rotvec(pose_para, 'aflw')``, i.e. ``R^T = from_euler('xyz', [pitch, -yaw,
    -roll])``); the translation is EPnP of the face model's points against the landmarks
    in the full image's camera (points in single precision, as the original).

    Args:
        landmarks: ``(N, M, 2)`` (M = 5 or 68, as the face model's points).
        pose_para: ``(N, 3)`` pitch, yaw, roll in radians.
        img_shape: ``(h, w)`` of the image.

    Returns:
        float64 poses ``(N, 6)`` (NaN rows where EPnP gives no translation) and the ``(N,)``
        bool mask of faces EPnP solved.
    """
    face_model = FaceModel.build(face_model)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    pose_para = torch.as_tensor(np.asarray(pose_para, dtype=np.float64)).reshape(-1, 3)
    if len(pose_para) != len(landmarks):
        raise ValueError(f'{len(pose_para)} pose_para rows for {len(landmarks)} faces')
    points = face_model.points(landmarks.shape[1]).detach().cpu().numpy()
    pnp, solved = solve_pnp(landmarks, points,
                            image_intrinsics((int(img_shape[0]), int(img_shape[1]))).numpy(),
                            single_precision=True)
    poses = torch.cat([euler_to_rotvec(pose_para, 'aflw', degrees=False), pnp[:, 3:]], 1)
    poses[~solved] = float('nan')
    return poses, solved


def label_faces(landmarks: np.ndarray, boxes: np.ndarray, img_shape: Sequence[int],
                face_model: FaceModelLike = None, mode: str = 'box',
                min_iou: float = MIN_POSE_BOX_IOU,
                pose_para: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """Poses of the faces of one image from their landmarks and boxes.

    ``mode='box'`` labels as the original img2pose does (docs/reference.md §6): EPnP of
    the landmarks shifted by the integer box corner in the camera of the box,
    ``[[w+h, 0, w//2], [0, w+h, h//2], [0, 0, 1]]`` with the integer box size; that is
    the box-local pose, and the global pose follows from it (the face model's decode).
    ``mode='image'``: EPnP in the full image's camera, box-local poses relative to the
    pose's own box. ``mode='pose_para'`` labels as the original's 300W-LP loader: the
    rotation from ``pose_para`` and the translation from EPnP in the full image's camera
    (:func:`pose_para_poses`), box-local poses relative to the landmarks' box expanded by
    the face model's box rule with the roll of that pose (``points_to_bbox``: x1.1, y1.1,
    +0.3 towards the top of the head, clipped to the image). Either way a face has no pose
    (:data:`POSE_STATUS`) when its landmarks are missing (-1) or not finite, EPnP fails,
    the face is behind the camera, its box is empty (the pose's box; the landmarks' box
    with ``'pose_para'``), or the pose's box overlaps its annotated box by less than
    ``min_iou`` (an implausible pose, e.g. landmarks far outside their box).

    Args:
        landmarks: ``(N, M, 2)`` (M = 5 or 68).
        boxes: ``(N, 4)`` annotated boxes, already checked (:func:`check_boxes`).
        img_shape: ``(h, w)`` of the image.
        pose_para: ``(N, 3)`` pitch, yaw, roll (radians) per face; needed by
            ``mode='pose_para'``, ignored otherwise.

    Returns:
        dict with ``poses`` (:class:`FacePoses`, float64, global), ``local_poses``
        (:class:`FacePoses`, box-local poses of the valid faces), ``label_bboxes``
        (float64 ``(N, 4)``: the boxes the local poses are relative to; meaningful for
        the valid faces) and int8 ``pose_status``.
    """
    if mode not in LABELLING_MODES:
        raise ValueError(f'labelling mode must be one of {LABELLING_MODES}, got {mode!r}')
    if mode == 'pose_para' and pose_para is None:
        raise ValueError("labelling mode 'pose_para' needs the faces' pose_para angles")
    face_model = FaceModel.build(face_model)
    landmarks = np.asarray(landmarks, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    img_shape = (int(img_shape[0]), int(img_shape[1]))
    status = np.zeros(len(landmarks), dtype=np.int8)
    if len(landmarks) == 0:
        empty = FacePoses.empty(img_shape, torch.float64)
        return dict(poses=empty, local_poses=empty.clone(), pose_status=status,
                    label_bboxes=torch.zeros(0, 4, dtype=torch.float64))
    missing = (landmarks == LANDMARK_MISSING).any((1, 2))
    not_finite = ~np.isfinite(landmarks).all((1, 2))
    status[missing] = 1
    status[not_finite & ~missing] = 2
    usable = landmarks_valid(landmarks)
    box_t = torch.from_numpy(boxes)
    if mode == 'box':
        points = face_model.points(landmarks.shape[1]).detach().cpu().numpy()
        shifted = landmarks - boxes[:, None, :2]
        cameras = local_intrinsics(box_t).numpy()
        local, solved = solve_pnp(shifted, points, cameras, single_precision=True)
        glob = torch.full_like(local, float('nan'))
        if solved.any():
            glob[solved] = face_model.decode(local[solved], box_t[solved], img_shape)
    elif mode == 'image':
        glob, solved = face_model.pose_from_landmarks(landmarks, img_shape)
    else:
        glob, solved = pose_para_poses(landmarks, pose_para, img_shape, face_model)
    solved = solved.numpy()
    status[usable & ~solved] = 3
    front = solved & (np.nan_to_num(glob[:, 5].numpy(), nan=-1.0) > 0)
    status[solved & ~front] = 4
    pose_boxes = FacePoses(glob, torch.from_numpy(front), img_shape).to_bboxes(face_model)
    if mode == 'pose_para':
        # the landmarks' box, expanded with the roll of the pose (unusable rows: zeros)
        label_boxes = torch.zeros_like(box_t)
        if front.any():
            label_boxes[front] = face_model.points_to_bbox(
                torch.from_numpy(landmarks[front]), glob[front, 2], img_shape)
    else:
        label_boxes = box_t if mode == 'box' else pose_boxes
    own_boxes = label_boxes if mode == 'pose_para' else pose_boxes
    inside = ((own_boxes[:, 2] - own_boxes[:, 0] >= 1)
              & (own_boxes[:, 3] - own_boxes[:, 1] >= 1)).numpy()
    status[front & ~inside] = 5
    overlap = np.zeros(len(boxes))
    ok = front & inside
    if ok.any():
        h, w = img_shape
        visible = box_t.clone()
        visible[:, 0::2] = visible[:, 0::2].clamp(0, w)
        visible[:, 1::2] = visible[:, 1::2].clamp(0, h)
        overlap[ok] = box_iou(pose_boxes[ok], visible[ok]).diagonal().numpy()
    plausible = overlap >= min_iou
    status[ok & ~plausible] = 6
    valid = torch.from_numpy(ok & plausible)
    if mode != 'box':
        local = torch.full_like(glob, float('nan'))
        if valid.any():
            local[valid] = face_model.encode(glob[valid], label_boxes[valid], img_shape)
    return dict(poses=FacePoses(glob, valid, img_shape),
                local_poses=FacePoses(local, valid, img_shape), pose_status=status,
                label_bboxes=label_boxes.clone())


def annotate_image(ann: Dict[str, Any], img_shape: Sequence[int],
                   face_model: FaceModelLike = None, mode: str = 'box',
                   min_iou: float = MIN_POSE_BOX_IOU) -> Dict[str, Any]:
    """Check the boxes of one parsed JSON-list entry (:func:`parse_annotation`) and label
    the faces that keep theirs (:func:`check_boxes`, :func:`label_faces`).

    With ``mode='pose_para'`` the entry must have ``pose_para`` and 68 landmarks per face,
    and a face with a pose is stored with its labelling box (the roll-aware box of its
    landmarks), as the original's 300W-LP loader stores it.

    Returns:
        dict with the kept faces' ``bboxes`` (clipped to the image; integer corners in
        ``'box'`` and ``'pose_para'`` mode),
        ``landmarks``, ``scores``, ``poses_reference`` and ``pose_para`` (or ``None``),
        their ``poses``, ``local_poses``, ``label_bboxes``, ``pose_status`` and ``faces``
        (their indices in the entry), and ``dropped`` (indices of the other faces) with
        ``dropped_reasons`` (codes into :data:`BOX_PROBLEMS`).

    Raises:
        AnnotationError: ``mode='pose_para'`` on an entry without ``pose_para`` or with
            5 landmarks per face.
    """
    if mode == 'pose_para':
        if ann.get('pose_para') is None:
            raise AnnotationError("labelling 'pose_para' needs a \"pose_para\" key (pitch, "
                                  'yaw, roll in radians per face, e.g. from 300wlp_to_json.py)')
        if len(ann['bboxes']) and ann['num_landmarks'] != 68:
            raise AnnotationError("labelling 'pose_para' needs 68 landmarks per face, got "
                                  f"{ann['num_landmarks']}")
    boxes, clipped, keep, reasons = check_boxes(ann['bboxes'], img_shape,
                                                integer=mode != 'image')

    def kept(value):
        return None if value is None else np.asarray(value)[keep]

    labels = label_faces(ann['landmarks'][keep], boxes[keep], img_shape, face_model, mode,
                         min_iou, pose_para=kept(ann.get('pose_para')))
    stored = clipped[keep]
    if mode == 'pose_para':
        valid = labels['poses'].valid.numpy()
        stored[valid] = labels['label_bboxes'].numpy()[valid]
    return dict(bboxes=stored, landmarks=ann['landmarks'][keep], scores=kept(ann['scores']),
                poses_reference=kept(ann['poses_reference']),
                pose_para=kept(ann.get('pose_para')), faces=np.flatnonzero(keep),
                dropped=np.flatnonzero(~keep), dropped_reasons=reasons[~keep], **labels)


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
    'POSE_STATUS', 'BOX_PROBLEMS', 'LABELLING_MODES', 'MIN_POSE_BOX_IOU', 'AnnotationError',
    'parse_annotation',
    'parse_json_line', 'iter_json_list', 'resolve_image_path', 'read_image_bytes',
    'decode_image', 'image_shape_from_header', 'check_boxes', 'pose_para_poses', 'label_faces',
    'annotate_image',
    'make_data_info', 'pose_statistics', 'save_array_atomic',
]
