"""Labelling the faces of one image: the annotated boxes checked, an EPnP pose per face
(shared by the JSON -> LMDB converter and :class:`FacePoseJSONDataset`; docs/datasets.md).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

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

from .face_annotations import AnnotationError

#: Why a face has no pose (codes stored in the ``pose_status`` array).
POSE_STATUS = ('ok', 'landmarks missing (-1)', 'landmarks not finite (NaN or inf)',
               'EPnP failed', 'pose behind the camera', 'pose box outside the image',
               'pose implausible for its box')
#: Why a face was dropped from an image (codes stored in the ``dropped_reasons`` array).
BOX_PROBLEMS = ('box swapped or empty (x1 >= x2 or y1 >= y2)', 'box outside the image')
#: How faces are labelled (docs/datasets.md, "Labelling"); ``'box'`` is the original's.
LABELLING_MODES = ('box', 'image', 'pose_para')
#: Default least IoU between a face's pose box and its annotated box (loose on purpose).
MIN_POSE_BOX_IOU = 0.1


def clean_annotated_boxes(boxes: np.ndarray, img_shape: Sequence[int], integer: bool = True
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The annotated boxes made usable, and the faces whose box is not (swapped, empty or
    outside the image; docs/datasets.md, "Labelling").

    Args:
        boxes: ``(N, 4)`` annotated boxes.
        img_shape: ``(h, w)`` of the image.
        integer: truncate the corners to integers (the original's ``astype(int)``).

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
    """Global poses of 300W-LP faces (the original's 300W-LP labelling, docs/reference.md §6):
    rotation from the angles (``'aflw'``), translation from EPnP in the full image's camera.

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
    """Poses of the faces of one image from their landmarks and boxes (the labellings
    and why a face gets no pose: docs/datasets.md, "Labelling").

    Args:
        landmarks: ``(N, M, 2)`` (M = 5 or 68).
        boxes: ``(N, 4)`` annotated boxes, already checked (:func:`clean_annotated_boxes`).
        img_shape: ``(h, w)`` of the image.
        face_model: the face model (default: the packaged face).
        mode: one of :data:`LABELLING_MODES`.
        min_iou: least IoU of a pose's box with its annotated box (else no pose).
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
    the faces that keep theirs (:func:`clean_annotated_boxes`, :func:`label_faces`).

    With ``mode='pose_para'`` the entry must have ``pose_para`` and 68 landmarks per face,
    and a face with a pose is stored with its labelling box (the roll-aware box of its
    landmarks), as the original's 300W-LP loader stores it.

    Returns:
        dict with the kept faces' ``bboxes`` (clipped to the image; integer corners in
        ``'box'`` and ``'pose_para'`` mode),
        ``landmarks`` and ``pose_para`` (or ``None``),
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
    boxes, clipped, keep, reasons = clean_annotated_boxes(ann['bboxes'], img_shape,
                                                          integer=mode != 'image')

    def kept(value):
        return None if value is None else np.asarray(value)[keep]

    labels = label_faces(ann['landmarks'][keep], boxes[keep], img_shape, face_model, mode,
                         min_iou, pose_para=kept(ann.get('pose_para')))
    stored = clipped[keep]
    if mode == 'pose_para':
        valid = labels['poses'].valid.numpy()
        stored[valid] = labels['label_bboxes'].numpy()[valid]
    return dict(bboxes=stored, landmarks=ann['landmarks'][keep],
                pose_para=kept(ann.get('pose_para')), faces=np.flatnonzero(keep),
                dropped=np.flatnonzero(~keep), dropped_reasons=reasons[~keep], **labels)


__all__ = [
    'POSE_STATUS', 'BOX_PROBLEMS', 'LABELLING_MODES', 'MIN_POSE_BOX_IOU',
    'clean_annotated_boxes', 'pose_para_poses', 'label_faces', 'annotate_image',
]
