# img2pose with a ResNeXt-101 (32x4d) FPN backbone.
_base_ = './img2pose_r18.py'

model = dict(
    backbone=dict(type='ResNeXt', depth=101, groups=32, base_width=4),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
