# Test weights converted from the original img2pose release:
#   python tools/model_converters/img2pose_to_mmdet.py --release-dir img2pose_release/ \
#       img2pose_v1_mmdet.pth
#   python tools/test.py configs/img2pose_r18_original.py img2pose_v1_mmdet.pth
# A converted checkpoint carries the original's face model (its reference points, the
# integer box centre of its decode, the chosen nearest-rotation method) and its pose
# statistics, so nothing here names a file: the checkpoint decodes itself.
# The release was trained and evaluated with torchvision 0.8, whose FrozenBatchNorm2d had
# eps = 0 (1e-5 since torchvision 0.9): the frozen BatchNorm here uses the same.
_base_ = './img2pose_r18.py'

model = dict(
    backbone=dict(norm_cfg=dict(type='BN', requires_grad=False, eps=0.0)),
    roi_head=dict(bbox_head=dict(bbox_coder=dict(pose_mean=None, pose_stddev=None))))
