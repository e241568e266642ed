"""One training batch in both models' formats: the same images and the same faces."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

Faces = Tuple[np.ndarray, np.ndarray]     # global poses (N, 6), boxes (N, 4), float32


def synthetic_faces(img_shape: Tuple[int, int], count: int = 3) -> Faces:
    """``count`` frontal-ish global poses spread over an image and their boxes (the
    packaged face's box rule): ground truth for a training step."""
    from img2pose_mm.structures import FaceModel
    h, w = img_shape
    f = float(w + h)
    size = min(h, w) / 4.0
    poses = []
    for i in range(count):
        cx, cy = w * (i + 1) / (count + 1), h * (0.4 + 0.2 * (i % 2))
        tz = f * 2.0 / size
        poses.append([0.1 * (i - 1), 0.2 * (1 - i), 0.05 * i,
                      (cx - w // 2) * tz / f, (cy - h // 2) * tz / f, tz])
    poses = torch.tensor(poses, dtype=torch.float32)
    boxes = FaceModel().pose_to_bbox(poses, (h, w))
    return poses.numpy(), boxes.numpy()


def _faces(batch: Sequence[np.ndarray], faces: Optional[Sequence[Faces]]) -> List[Faces]:
    return list(faces) if faces is not None else [synthetic_faces(rgb.shape[:2]) for rgb in batch]


def original_batch(batch: Sequence[np.ndarray], faces: Optional[Sequence[Faces]] = None
                   ) -> Tuple[List[torch.Tensor], List[Dict[str, torch.Tensor]]]:
    """The original's ``model(images, targets)`` arguments: RGB float tensors in [0, 1]
    (``to_tensor``) and ``boxes`` / ``dofs`` / ``labels`` (1 = face) per image."""
    from torchvision.transforms.functional import to_tensor
    targets = [dict(boxes=torch.from_numpy(boxes).float(), dofs=torch.from_numpy(poses).float(),
                    labels=torch.ones(len(boxes), dtype=torch.int64))
               for poses, boxes in _faces(batch, faces)]
    return [to_tensor(rgb) for rgb in batch], targets


def ours_batch(batch: Sequence[np.ndarray], faces: Optional[Sequence[Faces]] = None
               ) -> Dict[str, list]:
    """img2pose_mm's ``data_preprocessor`` input: BGR uint8 ``(3, H, W)`` tensors and data
    samples with ``bboxes``, ``labels`` (0 = face) and ``poses`` (scale factor 1)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from img2pose_mm.structures import FacePoses
    inputs, samples = [], []
    for rgb, (poses, boxes) in zip(batch, _faces(batch, faces)):
        h, w = rgb.shape[:2]
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.from_numpy(boxes).float(),
            labels=torch.zeros(len(boxes), dtype=torch.long),
            poses=FacePoses(torch.from_numpy(poses).float(), img_shape=(h, w)))
        samples.append(sample)
        inputs.append(torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1])).permute(2, 0, 1))
    return dict(inputs=inputs, data_samples=samples)
