# Test weights converted from the original img2pose release:
#   python tools/model_converters/img2pose_to_mmdet.py --release-dir img2pose_release/ \
#       img2pose_v1_mmdet.pth
#   python tools/test.py configs/img2pose_r18_original.py img2pose_v1_mmdet.pth
# A converted checkpoint carries the original's face model (its reference points, the
# integer box centre of its decode, the chosen nearest-rotation method) and its pose
# statistics, so nothing here names a file: the checkpoint decodes itself.
_base_ = './img2pose_r18.py'

model = dict(
    roi_head=dict(bbox_head=dict(bbox_coder=dict(pose_mean=None, pose_stddev=None))))
