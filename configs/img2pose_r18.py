# img2pose with a ResNet-18 FPN backbone: the original model and training recipe.
#   tools/dist_train.sh configs/img2pose_r18.py 4
# The pose statistics are the ones the LMDB converter writes next to the training LMDB.
_base_ = [
    './_base_/models/img2pose_r18_fpn.py',
    './_base_/datasets/face_pose_lmdb.py',
    './_base_/schedules/img2pose_plateau.py',
    './_base_/default_runtime.py',
]

data_root = 'data/synthetic/'
pose_mean = data_root + 'train_pose_mean.npy'
pose_stddev = data_root + 'train_pose_stddev.npy'

model = dict(
    roi_head=dict(
        bbox_head=dict(bbox_coder=dict(pose_mean=pose_mean, pose_stddev=pose_stddev))))
