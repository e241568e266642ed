# img2pose with a ResNet-101 FPN backbone.
_base_ = './img2pose_r18.py'

model = dict(
    backbone=dict(depth=101),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
