_base_ = './img2pose_r18.py'

# WIDER FACE val in the official layout, evaluated with the official protocol
# (easy / medium / hard AP from the eval_tools .mat files).
#
#   python tools/test.py configs/img2pose_r18_wider_tta.py CKPT          # single scale
#   python tools/test.py configs/img2pose_r18_wider_tta.py CKPT --tta    # img2pose TTA
#
# Add `outfile_dir='work_dirs/wider_val_pred'` to the evaluator to also write the
# submission layout (<event>/<name>.txt).
wider_root = 'data/WIDER_FACE/'
wider_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                   'flip_direction', 'event', 'name')

# single scale: short side 640 unless the long side would pass 1400 (docs/reference.md §2)
wider_test_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(type='PoseResize', scale=(1400, 640), keep_ratio=True),
    dict(type='PackFacePoseInputs', meta_keys=wider_meta_keys),
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        _delete_=True,
        type='WIDERFaceOfficialDataset',
        data_root=wider_root,
        ann_file='wider_face_split/wider_face_val_bbx_gt.txt',
        data_prefix=dict(img='WIDER_val/images/'),
        test_mode=True,
        pipeline=wider_test_pipeline))
test_evaluator = dict(
    _delete_=True,
    type='WIDERFaceMetric',
    gt_dir=wider_root + 'eval_tools/ground_truth/')

# img2pose's WIDER FACE TTA: the short side resized to each min size (no long-side
# limit), each with and without a horizontal flip; the merge un-flips boxes and poses
# and votes (IoU 0.6, weights score/max_score * IoU, poses carried along).
tta_model = dict(
    type='PoseDetTTAModel',
    tta_cfg=dict(iou_thr=0.6, score_mode='vote', offset=1, max_per_img=-1))
tta_min_sizes = (200, 300, 500, 800, 1100, 1400, 1700)
tta_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='PoseResize', scale=(100000, s), keep_ratio=True)
             for s in tta_min_sizes],
            # no annotations are loaded here (the metric reads the .mat files): the
            # flip changes the image only and PoseDetTTAModel un-flips the predicted
            # boxes and poses with the original image shape
            [dict(type='PoseRandomFlip', prob=0.0),
             dict(type='PoseRandomFlip', prob=1.0, direction='horizontal')],
            [dict(type='PackFacePoseInputs', meta_keys=wider_meta_keys)],
        ])
]
