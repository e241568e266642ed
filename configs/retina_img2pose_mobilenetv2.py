# One-stage img2pose with a MobileNetV2 FPN backbone (the FPN reads strides 8, 16, 32
# from stages 3, 5, 7; P6/P7 by strided convs).
_base_ = './retina_img2pose_r18_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        out_indices=(1, 2, 4, 7),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        init_cfg=None),
    neck=dict(in_channels=[24, 32, 96, 1280]))
