"""BIWI Kinect Head Pose: RGB frames with a per-frame head rotation and translation
(layout and ground truth: docs/datasets.md, "The releases").
"""
from __future__ import annotations

import os
import os.path as osp
import re
from typing import List, Tuple

import numpy as np
import torch
from mmdet.registry import DATASETS

from img2pose_mm.structures import FacePoses, matrix_to_rotvec, rotvec_to_euler

from .face_pose_dataset import BaseFacePoseDataset
from .image_files import image_shape_from_header

FRAME_PATTERN = re.compile(r'^(frame_\d+)_rgb\.(png|jpg)$')


def read_biwi_pose(path: str, tol: float = 1e-2) -> Tuple[np.ndarray, np.ndarray]:
    """Rotation ``(3, 3)`` and translation ``(3,)`` of a ``frame_*_pose.txt``.

    Raises:
        FileNotFoundError / ValueError naming the file when it is missing, malformed or
        the matrix is not a rotation (within ``tol``).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'BIWI pose file not found: {path}')
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append([float(v) for v in line.split()])
            except ValueError:
                raise ValueError(f'{path}:{n}: not numbers: {line.strip()!r}') from None
    if len(rows) < 4 or any(len(r) != 3 for r in rows[:4]):
        raise ValueError(f'{path}: expected 3 rotation rows and 1 translation row of 3 '
                         f'numbers, got rows of lengths {[len(r) for r in rows]}')
    rot = np.asarray(rows[:3], dtype=np.float64)
    trans = np.asarray(rows[3], dtype=np.float64)
    if (np.abs(rot @ rot.T - np.eye(3)).max() > tol or np.linalg.det(rot) <= 0
            or not np.isfinite(trans).all()):
        raise ValueError(f'{path}: the 3x3 block is not a rotation matrix: {rot.tolist()}')
    return rot, trans


@DATASETS.register_module()
class BIWIDataset(BaseFacePoseDataset):
    """BIWI Kinect Head Pose frames for head-pose evaluation (docs/datasets.md).

    ``data_info``::

        dict(img_id='01/frame_00003', img_path=..., pose_path=..., sequence='01',
             frame='frame_00003',
             instances=[dict(bbox=[nan] * 4, bbox_label=0, ignore_flag=0)],
             poses=FacePoses(1) (invalid: no translation in img2pose's camera),
             gt_euler=array(1, 3), rotation_matrices=array(1, 3, 3),
             translations_mm=array(1, 3))

    ``gt_euler`` holds the ground-truth (pitch, yaw, roll) in degrees that
    :class:`~img2pose_mm.evaluation.HeadPoseMetric` compares with (pack it as a meta key).

    Args:
        ann_file: optional frame list, one per line, first column the RGB image path
            (relative to ``data_prefix['img']`` or absolute), e.g.
            ``01/frame_00003_rgb.png`` (img2pose's ``BIWI_annotations.txt`` works:
            extra columns are ignored); empty: every ``frame_*_rgb.png`` of every
            sequence folder.
        data_prefix: ``dict(img='hpdb/')``.
    """

    def _frames(self, root: str) -> List[str]:
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'BIWI frame list not found: {self.ann_file}')
            with open(self.ann_file) as f:
                entries = [line.split()[0] for line in f if line.strip()]
            return [e if osp.isabs(e) else osp.join(root, e) for e in entries]
        if not osp.isdir(root):
            raise FileNotFoundError(f'BIWI folder not found: {root}')
        frames = []
        for seq in sorted(os.listdir(root)):
            seq_dir = osp.join(root, seq)
            if osp.isdir(seq_dir):
                frames += [osp.join(seq_dir, f) for f in sorted(os.listdir(seq_dir))
                           if FRAME_PATTERN.match(f)]
        if not frames:
            raise FileNotFoundError(f'no <seq>/frame_XXXXX_rgb.png frames under {root}')
        return frames

    def load_data_list(self) -> List[dict]:
        """Read every frame's pose file."""
        root = self.data_prefix.get('img', self.data_prefix.get('img_path', ''))
        data_list = []
        for img_path in self._frames(root):
            match = FRAME_PATTERN.match(osp.basename(img_path))
            if match is None:
                raise ValueError(f'BIWI frame name must look like frame_XXXXX_rgb.png: '
                                 f'{img_path}')
            frame = match.group(1)
            seq = osp.basename(osp.dirname(img_path))
            pose_path = osp.join(osp.dirname(img_path), f'{frame}_pose.txt')
            rot, trans = read_biwi_pose(pose_path)
            rotvec = matrix_to_rotvec(torch.from_numpy(rot))
            data_list.append(dict(
                img_id=f'{seq}/{frame}', img_path=img_path, pose_path=pose_path, sequence=seq,
                frame=frame, instances=[dict(bbox=[np.nan] * 4, bbox_label=0, ignore_flag=0)],
                poses=FacePoses(np.zeros((1, 6)), np.zeros(1, dtype=bool),
                                image_shape_from_header(img_path)),
                gt_euler=rotvec_to_euler(rotvec[None], 'aflw').numpy(),
                rotation_matrices=rot[None],
                translations_mm=trans[None]))
        return data_list


__all__ = ['read_biwi_pose', 'BIWIDataset']
