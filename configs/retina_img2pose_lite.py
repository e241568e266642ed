# Light one-stage img2pose for real time on a CPU: RetinaNet + DoFRetinaHead (6DoF + score
# per anchor, boxes from poses) on ResNet-18 at a quarter of its width (16-128 channels),
# a 64-channel FPN (P3-P5 from C3-C5, P6/P7 by strided convs) and a 64-channel head with
# two stacked convs per branch: 2.1 GMACs for a 640x480 frame against 16.2 for
# retina_img2pose_r18_fpn.py (docs/deployment.md, "Real time on a CPU").
#   tools/dist_train.sh configs/retina_img2pose_lite.py 4
# The demo recipe trains it on the synthetic set: configs/retina_img2pose_lite_demo.py.
_base_ = './retina_img2pose_r18_fpn.py'

width = 16
channels = 64
model = dict(
    backbone=dict(base_channels=width),
    neck=dict(in_channels=[width, 2 * width, 4 * width, 8 * width], out_channels=channels),
    bbox_head=dict(in_channels=channels, feat_channels=channels,
                   norm_cfg=dict(type='GN', num_groups=16, requires_grad=True)))
