# One-stage img2pose (RetinaNet + DoFRetinaHead) with a ResNet-18 FPN backbone, trained
# with img2pose's recipe and data (docs/extending.md, docs/benchmarks.md).
#   tools/dist_train.sh configs/retina_img2pose_r18_fpn.py 4
_base_ = [
    './_base_/models/retina_img2pose_r18_fpn.py',
    './_base_/datasets/face_pose_lmdb.py',
    './_base_/schedules/img2pose_plateau.py',
    './_base_/default_runtime.py',
]

data_root = 'data/synthetic/'
pose_mean = data_root + 'train_pose_mean.npy'
pose_stddev = data_root + 'train_pose_stddev.npy'

model = dict(bbox_head=dict(bbox_coder=dict(pose_mean=pose_mean, pose_stddev=pose_stddev)))
