"""AFLW2000-3D: one face per image, ground-truth Euler angles and 68 3D landmarks.

Layout (the official release)::

    <data_root>/<img prefix>/image00002.jpg
    <data_root>/<img prefix>/image00002.mat   # Pose_Para (1x7), pt3d_68 (3x68), ...

``Pose_Para`` = ``[pitch, yaw, roll, tx, ty, tz, scale]`` (angles in radians; the
translation/scale belong to 3DDFA's weak-perspective model and are not used).
``pt3d_68`` rows are x, y (pixels) and z of the 68 landmarks.

Ground truth per image (SPEC §7, img2pose's AFLW2000-3D evaluation):

* rotation = ``euler_to_rotvec`` of ``Pose_Para[:3]`` in degrees, so ground truth and
  predictions go through the one Euler convention of :mod:`img2pose_mm.structures`;
* translation = EPnP of the reference face's 68 points against the x, y of
  ``pt3d_68`` with the image camera (how img2pose labels faces; the original reports
  its translation error against this pose); NaN when EPnP fails;
* box = the landmark extent expanded by img2pose's box rule
  (:func:`~img2pose_mm.structures.points_to_bbox`: width and height x1.1 about the
  centre, then +0.3 of the extent towards the top of the head, located by the roll of
  the EPnP pose), clipped to the image: the box the original matches detections to;
* images with any ``|Pose_Para[:3]|`` above ``max_angle`` (99) degrees are skipped
  (the standard 1969-image protocol); the count is logged and kept in
  ``skipped_images``.
"""
from __future__ import annotations

import logging
import os
import os.path as osp
from typing import List, Optional

import cv2
import numpy as np
import torch
from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from img2pose_mm.structures import (
    euler_to_rotvec,
    load_reference_points,
    points_to_bbox,
    pose_from_landmarks,
)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


def read_aflw2000_mat(path: str) -> dict:
    """``Pose_Para`` ``(7,)`` and the 68 landmarks ``(68, 2)`` of one AFLW2000-3D .mat."""
    from scipy.io import loadmat
    if not osp.isfile(path):
        raise FileNotFoundError(f'AFLW2000-3D annotation not found: {path}')
    try:
        mat = loadmat(path)
    except Exception as err:  # scipy raises several types on a corrupt file
        raise ValueError(f'{path}: cannot read .mat file ({err})') from None
    for key in ('Pose_Para', 'pt3d_68'):
        if key not in mat:
            raise ValueError(f'{path}: missing variable {key!r}')
    pose_para = np.asarray(mat['Pose_Para'], dtype=np.float64).ravel()
    if pose_para.size < 3:
        raise ValueError(f'{path}: Pose_Para must hold at least pitch, yaw, roll, got '
                         f'{pose_para.size} values')
    pts = np.asarray(mat['pt3d_68'], dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 68 or pts.shape[0] not in (2, 3):
        raise ValueError(f'{path}: pt3d_68 must be 3 x 68 (or 2 x 68), got {pts.shape}')
    if not (np.isfinite(pose_para[:3]).all() and np.isfinite(pts[:2]).all()):
        raise ValueError(f'{path}: Pose_Para or pt3d_68 contains NaN or inf')
    return dict(pose_para=pose_para, landmarks=np.ascontiguousarray(pts[:2].T))


@DATASETS.register_module()
class AFLW2000Dataset(BaseDetDataset):
    """AFLW2000-3D for head-pose evaluation (see the module docstring).

    ``data_info``::

        dict(img_id='image00002', img_path=..., mat_path=..., height=H, width=W,
             instances=[dict(bbox=[x1, y1, x2, y2], bbox_label=0, ignore_flag=0,
                             pose=array(6), pose_valid=True, landmarks=array(68, 2),
                             pose_para=array(7), landmark_pose=array(6))])

    Args:
        ann_file: optional list of images (one per line, first column a file name
            relative to ``data_prefix['img']``, with or without extension); empty:
            every ``.mat`` of the image folder that has an image beside it.
        data_prefix: ``dict(img='AFLW2000/')``.
        max_angle: skip images with an ``|angle|`` above it (degrees); None keeps all.
        reference_points: ``.npy`` 68 reference points for EPnP (default: the packaged
            face; pass the original ``reference_3d_68_points_trans.npy`` when
            evaluating converted original weights).
    """

    METAINFO = {'classes': ('face',), 'palette': [(0, 255, 0)]}

    def __init__(self, *args, max_angle: Optional[float] = 99.0,
                 reference_points: Optional[str] = None, **kwargs) -> None:
        self.max_angle = max_angle
        self.reference_points = reference_points
        self.skipped_images: List[str] = []
        kwargs.setdefault('data_prefix', dict(img=''))
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
        points = load_reference_points(self.reference_points, 68)
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
            pnp, solved = pose_from_landmarks(landmarks[None], points, (height, width))
            pnp = pnp[0]
            rotvec = euler_to_rotvec(torch.from_numpy(angles))
            roll = pnp[2] if bool(solved[0]) else rotvec[2]
            bbox = points_to_bbox(torch.from_numpy(landmarks)[None], roll[None],
                                  (height, width))[0]
            pose = torch.cat([rotvec, pnp[3:]]).numpy()
            data_list.append(dict(
                img_id=stem, img_path=img_path, mat_path=stem_path + '.mat', height=height,
                width=width,
                instances=[dict(bbox=bbox.tolist(), bbox_label=0, ignore_flag=0, pose=pose,
                                pose_valid=True, landmarks=landmarks.astype(np.float32),
                                pose_para=ann['pose_para'], landmark_pose=pnp.numpy())]))
        if self.skipped_images:
            print_log(f'AFLW2000-3D: skipped {len(self.skipped_images)} images with an angle '
                      f'above {self.max_angle} degrees; {len(data_list)} remain',
                      logger='current', level=logging.INFO)
        return data_list


__all__ = ['read_aflw2000_mat', 'AFLW2000Dataset']
