# One-stage demo: the model of retina_img2pose_r18_fpn.py trained from scratch with the
# CPU demo recipe (_base_/synthetic_demo.py) on the embedded synthetic dataset:
#   python tools/demo_pipeline.py --config configs/retina_img2pose_r18_demo.py \
#       --work-dir work_dirs/demo_retina
# Without pretrained weights the backbone's BatchNorm trains.
_base_ = [
    './_base_/models/retina_img2pose_r18_fpn.py',
    './_base_/synthetic_demo.py',
]

data_root = 'data/synthetic/'
pose_mean = data_root + 'train_pose_mean.npy'
pose_stddev = data_root + 'train_pose_stddev.npy'

model = dict(
    backbone=dict(frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False),
    bbox_head=dict(bbox_coder=dict(pose_mean=pose_mean, pose_stddev=pose_stddev)))
