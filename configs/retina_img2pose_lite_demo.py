# The light one-stage model (retina_img2pose_lite.py) trained from scratch with the CPU
# demo recipe (_base_/synthetic_demo.py) on the embedded synthetic dataset:
#   python tools/demo_pipeline.py --config configs/retina_img2pose_lite_demo.py \
#       --work-dir work_dirs/demo_lite
_base_ = ['./retina_img2pose_r18_demo.py']

width = 16
channels = 64
model = dict(
    backbone=dict(base_channels=width),
    neck=dict(in_channels=[width, 2 * width, 4 * width, 8 * width], out_channels=channels),
    bbox_head=dict(in_channels=channels, feat_channels=channels,
                   norm_cfg=dict(type='GN', num_groups=16, requires_grad=True)))
