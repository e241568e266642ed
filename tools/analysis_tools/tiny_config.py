"""A tiny synthetic face LMDB and the configs that train and test on it in seconds: the
same setup for ``gpu_check.py``'s training checks and the tools' tests
(``tests/test_tools/test_train_test_tools.py``)."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: The two-stage model on the tiny LMDB's pose statistics, with few proposals.
TWO_STAGE_MODEL = """
_base_ = {base!r}
data_root = {data!r}
model = dict(
    roi_head=dict(bbox_head=dict(bbox_coder=dict(
        pose_mean=data_root + 'train_pose_mean.npy',
        pose_stddev=data_root + 'train_pose_stddev.npy'))),
    train_cfg=dict(rpn_proposal=dict(max_per_img=200), rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(rpn=dict(max_per_img=100)))
"""
#: The one-stage model on the tiny LMDB's pose statistics.
ONE_STAGE_MODEL = """
_base_ = {base!r}
data_root = {data!r}
model = dict(bbox_head=dict(bbox_coder=dict(pose_mean=data_root + 'train_pose_mean.npy',
                                            pose_stddev=data_root + 'train_pose_stddev.npy')))
"""
#: 160 x 128 inputs, batches of 2, one epoch at a constant learning rate.
TINY_DATA_AND_SCHEDULE = """
train_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(type='LoadFacePoseAnnotations'),
    dict(type='PoseRandomFlip', prob=0.5),
    dict(type='PoseResize', scale=(160, 128), keep_ratio=True),
    dict(type='PoseToBBox'),
    dict(type='PackFacePoseInputs'),
]
test_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(type='PoseResize', scale=(160, 128), keep_ratio=True),
    dict(type='LoadFacePoseAnnotations'),
    dict(type='PackFacePoseInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'instances')),
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
max_epochs = 1
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1),
                     visualization=dict(draw=False))
"""


def make_tiny_data(folder: Path, num_train: int = 4, num_val: int = 2) -> Path:
    """The tiny synthetic LMDB (``make_synthetic_faces.py``: 128-160 px, 1-3 faces)."""
    converters = str(REPO / 'tools' / 'dataset_converters')
    if converters not in sys.path:
        sys.path.insert(0, converters)
    import make_synthetic_faces as msf
    params = msf.SynthParams(seed=1, min_size=128, max_size=160, min_face=28, max_faces=3)
    with msf.torch_threads(1):
        msf.make_dataset(Path(folder), num_train, num_val, params, lmdb=True, progress=False)
    return Path(folder)


def write_tiny_config(data: Path, path: Path, one_stage: bool = False,
                      base: Path | None = None) -> Path:
    """A config file at ``path`` training ``base`` (default: the demo config of the kind)
    on the tiny LMDB in ``data``."""
    model = ONE_STAGE_MODEL if one_stage else TWO_STAGE_MODEL
    if base is None:
        base = REPO / 'configs' / ('retina_img2pose_r18_demo.py' if one_stage
                                   else 'img2pose_r18_demo.py')
    Path(path).write_text((model + TINY_DATA_AND_SCHEDULE).format(base=str(base),
                                                                  data=f'{data}/'))
    return Path(path)


__all__ = ['TWO_STAGE_MODEL', 'ONE_STAGE_MODEL', 'TINY_DATA_AND_SCHEDULE', 'make_tiny_data',
           'write_tiny_config']
