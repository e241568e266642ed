"""Small builders shared by the model tests."""
from __future__ import annotations

from pathlib import Path

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import img2pose_mm  # noqa: F401
from img2pose_mm.structures import FacePoses, load_reference_points, pose_to_bbox

REPO = Path(__file__).resolve().parents[2]
MODEL_CFG = REPO / 'configs' / '_base_' / 'models' / 'img2pose_r18_fpn.py'


def build_model(cfg_path: Path = MODEL_CFG, **overrides):
    init_default_scope('mmdet')
    cfg = Config.fromfile(str(cfg_path))
    if overrides:
        cfg.merge_from_dict(overrides)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def make_sample(poses: torch.Tensor, img_shape=(128, 160), ori_shape=None, scale_factor=(1., 1.)):
    """A DetDataSample whose GT boxes come from the poses (docs/reference.md §3 rule)."""
    h, w = img_shape
    ori_shape = ori_shape or img_shape
    points = torch.from_numpy(load_reference_points()).to(poses)
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=ori_shape, pad_shape=(h, w),
                                         batch_input_shape=(h, w), scale_factor=scale_factor))
    sample.gt_instances = InstanceData(
        bboxes=pose_to_bbox(poses, points, img_shape).float(),
        labels=torch.zeros(len(poses), dtype=torch.long),
        poses=FacePoses(poses.float(), img_shape=img_shape))
    return sample


def make_batch(model, images, samples, training=True):
    return model.data_preprocessor(dict(inputs=list(images), data_samples=samples), training)
