# The demo (`make demo`): img2pose R-18 trained from scratch on the embedded synthetic
# dataset on a CPU in about 15 minutes: the model of img2pose_r18.py with the CPU demo
# recipe (_base_/synthetic_demo.py). Without pretrained weights the BatchNorm trains
# (the recipe's frozen BatchNorm assumes ImageNet statistics), and the short schedule
# uses fewer proposals and RoIs per image.
_base_ = [
    './_base_/models/img2pose_r18_fpn.py',
    './_base_/synthetic_demo.py',
]

data_root = 'data/synthetic/'
pose_mean = data_root + 'train_pose_mean.npy'
pose_stddev = data_root + 'train_pose_stddev.npy'

model = dict(
    backbone=dict(frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False),
    roi_head=dict(
        bbox_head=dict(bbox_coder=dict(pose_mean=pose_mean, pose_stddev=pose_stddev))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300)))
