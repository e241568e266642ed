"""AFLW2000-3D: one face per image, ground-truth Euler angles and 68 3D landmarks
(layout and ground truth: docs/datasets.md, "The releases").
"""
from __future__ import annotations

import logging
import os
import os.path as osp
from typing import List, Optional

import cv2
import numpy as np
import torch
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from img2pose_mm.structures import (
    FaceModel,
    FaceModelLike,
    FacePoses,
    euler_to_rotvec,
    image_intrinsics,
    solve_pnp,
)

from .face_pose_dataset import BaseFacePoseDataset
from .w300lp import load_mat, mat_pose_para

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


def read_aflw2000_mat(path: str) -> dict:
    """``Pose_Para`` ``(7,)`` and the 68 landmarks ``(68, 2)`` of one AFLW2000-3D .mat."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'AFLW2000-3D annotation not found: {path}')
    mat = load_mat(path, ('Pose_Para', 'pt3d_68'))
    pose_para = mat_pose_para(mat, path)
    pts = np.asarray(mat['pt3d_68'], dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 68 or pts.shape[0] not in (2, 3):
        raise ValueError(f'{path}: pt3d_68 must be 3 x 68 (or 2 x 68), got {pts.shape}')
    if not np.isfinite(pts[:2]).all():
        raise ValueError(f'{path}: pt3d_68 contains NaN or inf')
    return dict(pose_para=pose_para, landmarks=np.ascontiguousarray(pts[:2].T))


@DATASETS.register_module()
class AFLW2000Dataset(BaseFacePoseDataset):
    """AFLW2000-3D for head-pose evaluation (docs/datasets.md).

    ``data_info``::

        dict(img_id='image00002', img_path=..., mat_path=..., height=H, width=W,
             instances=[dict(bbox=[x1, y1, x2, y2], bbox_label=0, ignore_flag=0)],
             poses=FacePoses(1), landmarks=array(1, 68, 2), gt_euler=array(1, 3),
             pose_para=array(1, 7), landmark_poses=array(1, 6))

    ``gt_euler`` holds the ground-truth (pitch, yaw, roll) in degrees that
    :class:`~img2pose_mm.evaluation.HeadPoseMetric` compares with (pack it as a meta key).

    Args:
        ann_file: optional list of images (one per line, first column a file name
            relative to ``data_prefix['img']``, with or without extension); empty:
            every ``.mat`` of the image folder that has an image beside it.
        data_prefix: ``dict(img='AFLW2000/')``.
        max_angle: skip images with an ``|angle|`` above it (degrees); None keeps all.
        face_model: the face model of the EPnP translation and the box rule (default:
            the packaged face; give the original's reference points when evaluating
            the translation of converted original weights).
    """

    def __init__(self, *args, max_angle: Optional[float] = 99.0,
                 face_model: FaceModelLike = None, **kwargs) -> None:
        self.max_angle = max_angle
        self.face_model = FaceModel.build(face_model)
        self.skipped_images: List[str] = []
        super().__init__(*args, **kwargs)

    def _image_stems(self, folder: str) -> List[str]:
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'AFLW2000-3D image list not found: {self.ann_file}')
            with open(self.ann_file) as f:
                names = [line.split()[0] for line in f if line.strip()]
            return [osp.splitext(n)[0] if n.lower().endswith(IMAGE_EXTENSIONS + ('.mat',))
                    else n for n in names]
        if not osp.isdir(folder):
            raise FileNotFoundError(f'AFLW2000-3D folder not found: {folder}')
        return sorted(osp.splitext(f)[0] for f in os.listdir(folder) if f.endswith('.mat'))

    @staticmethod
    def _find_image(stem_path: str) -> str:
        for ext in IMAGE_EXTENSIONS:
            if osp.isfile(stem_path + ext):
                return stem_path + ext
        raise FileNotFoundError(f'AFLW2000-3D image not found for {stem_path}.mat '
                                f'(tried {", ".join(IMAGE_EXTENSIONS)})')

    def load_data_list(self) -> List[dict]:
        """Read every .mat, filter by angle, derive the pose, translation and box."""
        folder = self.data_prefix.get('img', self.data_prefix.get('img_path', ''))
        self.skipped_images = []
        data_list = []
        for stem in self._image_stems(folder):
            stem_path = osp.join(folder, stem)
            ann = read_aflw2000_mat(stem_path + '.mat')
            angles = np.rad2deg(ann['pose_para'][:3])
            if self.max_angle is not None and np.abs(angles).max() > self.max_angle:
                self.skipped_images.append(stem)
                continue
            img_path = self._find_image(stem_path)
            img = cv2.imread(img_path, cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ValueError(f'cannot read image {img_path}')
            height, width = img.shape[:2]
            landmarks = ann['landmarks']
            # EPnP of the 68 points in single precision, as the original notebook
            pnp, solved = solve_pnp(landmarks[None], self.face_model.points_68.cpu().numpy(),
                                    image_intrinsics((height, width)).numpy(),
                                    single_precision=True)
            pnp = pnp[0]
            rotvec = euler_to_rotvec(torch.from_numpy(angles), 'aflw')
            roll = pnp[2] if bool(solved[0]) else rotvec[2]
            bbox = self.face_model.points_to_bbox(torch.from_numpy(landmarks)[None], roll[None],
                                                  (height, width))[0]
            pose = torch.cat([rotvec, pnp[3:]])[None]
            data_list.append(dict(
                img_id=stem, img_path=img_path, mat_path=stem_path + '.mat', height=height,
                width=width, instances=[dict(bbox=bbox.tolist(), bbox_label=0, ignore_flag=0)],
                poses=FacePoses(pose, solved, (height, width)),
                landmarks=landmarks.astype(np.float32)[None], gt_euler=angles[None],
                pose_para=ann['pose_para'][None], landmark_poses=pnp.numpy()[None]))
        if self.skipped_images:
            print_log(f'AFLW2000-3D: skipped {len(self.skipped_images)} images with an angle '
                      f'above {self.max_angle} degrees; {len(data_list)} remain',
                      logger='current', level=logging.INFO)
        return data_list


__all__ = ['read_aflw2000_mat', 'AFLW2000Dataset']
