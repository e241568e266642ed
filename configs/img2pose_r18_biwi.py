# BIWI Kinect Head Pose evaluation with the original img2pose protocol
# (docs/reference.md §7):
#   python tools/test.py configs/img2pose_r18_biwi.py img2pose_v1_ft_300w_lp_mmdet.pth
# * the image resized to a short side of 700 (long side at most 1400);
# * the RPN keeps 500 boxes per level before NMS and 10 after it (_base_/head_pose_protocol.py);
# * ground truth: the AFLW Euler angles of each frame's 3x3 rotation as written;
# * the answering detection: score > 0.9 with the box centre closest to the image centre,
#   else the first (most confident) detection; only frames without any detection are
#   failures (reported as misses, not averaged);
# * angle errors without wrap-around. BIWI's millimetre translations live in another
#   camera and unit: no translation errors.
# The project's stricter variant: HeadPoseMetric(wrap_angles=True, fallback=None).
# `data_root` holds the hpdb sequences (<seq>/frame_XXXXX_rgb.png + _pose.txt); give the
# original's frame list as `ann_file` (BIWI_annotations.txt) to evaluate the same frames.
_base_ = './_base_/head_pose_protocol.py'

biwi_root = 'data/BIWI/'

biwi_test_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(type='PoseResize', scale=(1400, 700), keep_ratio=True),
    # every face counts, with or without a pose in img2pose's camera
    dict(type='LoadFacePoseAnnotations', ignore_without_pose=False),
    dict(type='PackFacePoseInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                    'gt_euler')),
]
test_dataloader = dict(
    dataset=dict(type='BIWIDataset', data_root=biwi_root, pipeline=biwi_test_pipeline))
test_evaluator = dict(selection='center', score_thr=0.9, fallback='first', prefix='biwi')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
