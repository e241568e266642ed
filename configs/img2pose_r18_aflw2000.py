# AFLW2000-3D head-pose evaluation with the original img2pose protocol
# (docs/reference.md §7), e.g. for weights converted from the original release:
#   python tools/test.py configs/img2pose_r18_aflw2000.py img2pose_v1_ft_300w_lp_mmdet.pth
# * the image resized to a short side of 400 (long side at most 1400);
# * the RPN keeps 500 boxes per level before NMS and 10 after it (_base_/head_pose_protocol.py);
# * images with any |Pose_Para| angle above 99 degrees are skipped (1969 images remain);
# * ground truth: the raw Pose_Para angles, the EPnP translation of pt3d_68 in the image
#   camera, and the 1.1-expanded roll-aware box of those points;
# * the answering detection: score > 0 and the highest IoU (+1 pixel convention) with that
#   box; if none overlaps, the last detection (a quirk of the original notebook); images
#   without any detection are failures (reported as misses, not averaged);
# * angle errors without wrap-around.
# The project's stricter variant: HeadPoseMetric(wrap_angles=True, fallback=None).
# The translation errors use the face model's reference points; for converted original
# weights give the original's (face_model = dict(reference_points=..., ...) below) to
# compare translations with the original's numbers.
_base_ = './_base_/head_pose_protocol.py'

aflw_root = 'data/AFLW2000/'
face_model = dict()

aflw_test_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(type='PoseResize', scale=(1400, 400), keep_ratio=True),
    # every face counts, with or without a pose in img2pose's camera
    dict(type='LoadFacePoseAnnotations', ignore_without_pose=False),
    dict(type='PackFacePoseInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                    'gt_euler')),
]
test_dataloader = dict(
    dataset=dict(
        type='AFLW2000Dataset',
        data_root=aflw_root,
        max_angle=99.0,
        face_model=face_model,
        pipeline=aflw_test_pipeline))
test_evaluator = dict(selection='iou', score_thr=0.0, iou_offset=1, fallback='last',
                      prefix='aflw2000')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
