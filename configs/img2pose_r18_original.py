# Evaluate weights converted from the original img2pose release with its numbers:
#   python tools/model_converters/img2pose_to_mmdet.py img2pose_v1.pth img2pose_v1_mmdet.pth
#   python tools/test.py configs/img2pose_r18_original.py img2pose_v1_mmdet.pth
# Markley's rotation (scipy < 1.16, as the original used) and the original pose
# statistics and reference points from the img2pose release folder.
_base_ = './img2pose_r18.py'

img2pose_release = 'data/img2pose_release/'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            bbox_coder=dict(
                pose_mean=img2pose_release + 'WIDER_train_pose_mean_v1.npy',
                pose_stddev=img2pose_release + 'WIDER_train_pose_stddev_v1.npy',
                reference_points=img2pose_release + 'pose_references/reference_3d_68_points_trans.npy',
                reference_points_5=img2pose_release + 'pose_references/reference_3d_5_points_trans.npy',
                rotation_method='markley'))))
