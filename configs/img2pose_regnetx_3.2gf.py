# img2pose with a RegNetX-3.2GF FPN backbone.
_base_ = './img2pose_r18.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='RegNet',
        arch='regnetx_3.2gf',
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=None),
    neck=dict(in_channels=[96, 192, 432, 1008]))
