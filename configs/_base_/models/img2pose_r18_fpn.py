# img2pose (CVPR 2021): ResNet-18 + FPN (P2-P6), RPN, and a RoI head with a class branch
# and a 6DoF pose branch. Boxes are projected from the predicted poses. Numbers: docs/reference.md §2.
# pose statistics of box-local GT poses over the training set (paths to .npy files or
# 6 numbers); the dataset converter writes them next to the LMDB.
pose_mean = None
pose_stddev = None
# The face model (img2pose_mm.structures.FaceModel): the 3D reference points and the
# pose <-> box rules. dict() = the packaged face with img2pose's rules (box x1.1/y1.1 plus
# 0.3 forehead, 'svd' nearest rotation, fractional box centre). Checkpoints carry the
# face they were trained with and it wins over this one; a config that names any field,
# e.g. face_model = dict(reference_points='ref68.npy', reference_points_5='ref5.npy'),
# declares a face and gets a warning when a checkpoint brings another.
face_model = dict()

model = dict(
    type='TwoStageDetector',
    data_preprocessor=dict(
        # mmdet's DetDataPreprocessor; the batch is channels-last on the CPU (oneDNN's
        # fast layout; same values)
        type='ChannelsLastDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        # mmdet's ResNet (same weights) with its frozen BatchNorms folded into the convs
        type='FoldedBNResNet',
        depth=18,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=1,                      # stem + stage 1 (torchvision trainable_layers=3)
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,                       # frozen BatchNorm
        style='pytorch',
        init_cfg=None),                       # no ImageNet weights can be fetched offline
    neck=dict(
        # mmdet's FPN (same weights); the P2 output conv reads C2 and P3 directly, with
        # the lateral conv and the 2x upsampling folded into its kernels
        type='FoldedFPN',
        in_channels=[64, 128, 256, 512],
        out_channels=256,
        num_outs=5),                          # P2-P5 + max-pooled P6
    rpn_head=dict(
        type='Img2PoseRPNHead',           # mmdet's RPNHead, float32 box work under AMP
        in_channels=256,
        feat_channels=256,
        anchor_generator=dict(
            type='Img2PoseAnchorGenerator',
            strides=[4, 8, 16, 32, 64],
            base_sizes=[16, 32, 64, 128, 256],
            scales=[1.0],
            ratios=[0.5, 1.0, 2.0],
            center_offset=0.0),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0.0, 0.0, 0.0, 0.0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0),
        init_cfg=dict(type='Normal', layer='Conv2d', std=0.01)),
    roi_head=dict(
        type='DoFRoIHead',
        bbox_roi_extractor=dict(
            # mmdet's SingleRoIExtractor; on the CPU its RoIAlign is a weighted gather
            # (the same numbers, several times faster; mmcv's kernel elsewhere)
            type='GatherRoIExtractor',
            # torchvision's MultiScaleRoIAlign: aligned=False, canonical scale 224 on P4
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2, aligned=False),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32],
            finest_scale=56),
        bbox_head=dict(
            type='DoFBBoxHead',
            num_classes=1,
            in_channels=256,
            roi_feat_size=7,
            fc_out_channels=1024,
            bbox_coder=dict(
                type='PoseBBoxCoder',
                face_model=face_model,
                pose_mean=pose_mean,
                pose_stddev=pose_stddev),
            pose_predictor_cfg=dict(type='DoFPredictor', hidden_channels=256),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_dof=dict(type='DoFLoss', loss_weight=1.0),
            loss_points=dict(type='PosePointsLoss', loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.3,
                min_pos_iou=1e-6,             # low-quality matches allowed (any overlap)
                match_low_quality=True,
                # anchors mostly inside an ignored face (e.g. cut by a crop) are not negatives
                ignore_iof_thr=0.5),
            sampler=dict(
                type='RandomSampler',
                num=256,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(
            nms_pre=6000,
            max_per_img=2000,
            nms=dict(type='nms', iou_threshold=0.4),
            min_bbox_size=1e-3),
        rcnn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                match_low_quality=False,
                ignore_iof_thr=0.5),
            sampler=dict(
                type='RandomSampler',
                num=512,
                pos_fraction=0.25,
                neg_pos_ub=-1,
                add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(
            nms_pre=6000,
            max_per_img=1000,
            nms=dict(type='nms', iou_threshold=0.4),
            min_bbox_size=1e-3),
        rcnn=dict(
            score_thr=0.05,
            min_bbox_size=1e-2,
            nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=-1)))                 # the original applies no per-image cap
