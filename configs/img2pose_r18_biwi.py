# BIWI Kinect Head Pose evaluation with the original img2pose protocol
# (docs/reference.md §7):
#   python tools/test.py configs/img2pose_r18_biwi.py img2pose_v1_ft_300w_lp_mmdet.pth
# * the image resized to a short side of 700 (long side at most 1400);
# * the RPN keeps 500 boxes per level before NMS and 10 after it;
# * ground truth: the AFLW Euler angles of each frame's 3x3 rotation as written;
# * the answering detection: score > 0.9 with the box centre closest to the image centre,
#   else the first (most confident) detection; only frames without any detection are
#   failures (reported as misses, not averaged);
# * angle errors without wrap-around. BIWI's millimetre translations live in another
#   camera and unit: no translation errors.
# The project's stricter variant: HeadPoseMetric(wrap_angles=True, fallback=None).
# `data_root` holds the hpdb sequences (<seq>/frame_XXXXX_rgb.png + _pose.txt); give the
# original's frame list as `ann_file` (BIWI_annotations.txt) to evaluate the same frames.
_base_ = './img2pose_r18.py'

biwi_root = 'data/BIWI/'

model = dict(
    roi_head=dict(bbox_head=dict(bbox_coder=dict(pose_mean=None, pose_stddev=None))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=10)))

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
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        _delete_=True,
        type='BIWIDataset',
        data_root=biwi_root,
        data_prefix=dict(img=''),
        test_mode=True,
        pipeline=biwi_test_pipeline))
test_evaluator = dict(
    _delete_=True,
    type='HeadPoseMetric',
    selection='center',
    score_thr=0.9,
    wrap_angles=False,
    fallback='first',
    prefix='biwi')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
