# Face-pose LMDB (tools/dataset_converters/json_to_lmdb.py) with img2pose's augmentations
# (docs/reference.md §5) and multi-scale training (docs/reference.md §2). The default data root is the embedded
# synthetic dataset (tools/dataset_converters/make_synthetic_faces.py); point data_root,
# the ann_files and the pose statistics at e.g. WIDER_train.lmdb for the real recipe.
dataset_type = 'FacePoseLMDBDataset'
data_root = 'data/synthetic/'
train_ann_file = 'train.lmdb'
val_ann_file = 'val.lmdb'

train_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(type='LoadFacePoseAnnotations'),
    dict(type='BlackOutFacesWithoutPose'),
    dict(type='PoseRandomFlip', prob=0.5),
    dict(type='PoseRandomCrop', scale_range=(0.7, 1.0)),
    dict(type='PoseMultiScaleResize', min_size=(640, 672, 704, 736, 768, 800), max_size=1400),
    dict(type='RandomContrast', contrast_range=(0.5, 1.5), prob=0.5),
    dict(type='RandomNoise', prob=0.2),
    dict(type='PoseToBBox'),
    dict(type='PackFacePoseInputs'),
]
# annotations are loaded after the resize: GT stays in the original image frame, as the
# metrics expect (ValLossLoop maps it to the network frame for the validation loss)
test_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(type='PoseResize', scale=(1400, 640), keep_ratio=True),
    dict(type='LoadFacePoseAnnotations'),
    dict(type='PackFacePoseInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                    'instances')),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=train_ann_file,
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=val_ann_file,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# face detection AP (WIDER protocol, all faces count) and head-pose errors
val_evaluator = [
    dict(type='WIDERFaceMetric', gt_dir=None, prefix='face'),
    dict(type='HeadPoseMetric', selection='iou', prefix='pose'),
]
test_evaluator = val_evaluator
