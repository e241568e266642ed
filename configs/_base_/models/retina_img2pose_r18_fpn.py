# One-stage img2pose: ResNet-18 + FPN (P3-P7) and a RetinaNet head whose anchors play the
# part of img2pose's proposals (DoFRetinaHead): per anchor a face score and a 6DoF pose
# relative to the anchor; boxes are projected from the decoded poses and NMS runs on them.
# No RPN and no RoI stage: the CPU real-time path (docs/benchmarks.md).
# pose statistics of box-local GT poses over the training set (paths to .npy files or
# 6 numbers); the dataset converter writes them next to the LMDB.
pose_mean = None
pose_stddev = None
# the face model (img2pose_mm.structures.FaceModel), as in img2pose_r18_fpn.py: dict() =
# the packaged face and img2pose's rules; checkpoints carry theirs and it wins
face_model = dict()

model = dict(
    type='RetinaNet',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='ResNet',
        depth=18,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=None),                       # no ImageNet weights can be fetched offline
    neck=dict(
        type='FPN',
        in_channels=[64, 128, 256, 512],
        out_channels=128,
        start_level=1,                        # P3-P5 from C3-C5: no stride-4 level
        add_extra_convs='on_input',           # P6, P7 by strided convs
        num_outs=5),
    bbox_head=dict(
        type='DoFRetinaHead',
        num_classes=1,
        in_channels=128,
        stacked_convs=2,
        feat_channels=128,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
        # face boxes are taller than wide (forehead): one ratio h/w = 1.4, three scales
        # per octave from 16 px at stride 8 to 406 px at stride 128
        anchor_generator=dict(
            type='AnchorGenerator',
            octave_base_scale=2,
            scales_per_octave=3,
            ratios=[1.4],
            strides=[8, 16, 32, 64, 128]),
        bbox_coder=dict(
            type='PoseBBoxCoder',
            face_model=face_model,
            pose_mean=pose_mean,
            pose_stddev=pose_stddev),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_dof=dict(type='DoFLoss', loss_weight=1.0),
        loss_points=dict(type='PosePointsLoss', loss_weight=1.0)),
    train_cfg=dict(
        assigner=dict(
            type='MaxIoUAssigner',
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0,
            match_low_quality=True,           # every face gets its best anchors
            ignore_iof_thr=0.5),              # anchors mostly inside an ignored face
        sampler=dict(type='PseudoSampler'),   # every anchor counts (focal loss)
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=1000,                         # per level
        score_thr=0.05,
        min_bbox_size=0,
        nms=dict(type='nms', iou_threshold=0.5),
        # every kept face takes the score x IoU weighted mean pose of the anchors NMS
        # suppresses (its box projected from that pose): one anchor's pose is noisier
        # than a RoI's; on the demo's validation split pose MAE 15.8 -> 13.9 deg
        pose_voting=dict(iou_thr=0.5),
        max_per_img=-1))                      # as img2pose: no cap
