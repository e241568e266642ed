# Cascade R-CNN (3 stages, IoU 0.5 / 0.6 / 0.7) whose stages all carry img2pose's 6DoF
# head; each stage's RoIs are the boxes projected from the previous stage's poses, the
# last stage's poses are reported.
_base_ = './img2pose_r50.py'

pose_coder = dict(
    type='PoseBBoxCoder',
    face_model={{_base_.face_model}},
    pose_mean={{_base_.pose_mean}},
    pose_stddev={{_base_.pose_stddev}})
dof_head = dict(
    type='DoFBBoxHead',
    num_classes=1,
    in_channels=256,
    roi_feat_size=7,
    fc_out_channels=1024,
    bbox_coder=pose_coder,
    pose_predictor_cfg=dict(type='DoFPredictor', hidden_channels=256),
    loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
    loss_dof=dict(type='DoFLoss', loss_weight=1.0),
    loss_points=dict(type='PosePointsLoss', loss_weight=1.0))


rcnn_stage = dict(
    assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5,
                  match_low_quality=False, ignore_iof_thr=0.5),
    sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1,
                 add_gt_as_proposals=True),
    pos_weight=-1,
    debug=False)

model = dict(
    roi_head=dict(
        _delete_=True,
        type='DoFCascadeRoIHead',
        num_stages=3,
        stage_loss_weights=[1, 0.5, 0.25],
        bbox_roi_extractor=dict(
            type='GatherRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2, aligned=False),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32],
            finest_scale=56),
        bbox_head=[dof_head, dof_head, dof_head]),
    train_cfg=dict(rcnn=[
        rcnn_stage,
        dict(rcnn_stage, assigner=dict(rcnn_stage['assigner'], pos_iou_thr=0.6, neg_iou_thr=0.6,
                                       min_pos_iou=0.6)),
        dict(rcnn_stage, assigner=dict(rcnn_stage['assigner'], pos_iou_thr=0.7, neg_iou_thr=0.7,
                                       min_pos_iou=0.7)),
    ]))
