# The CPU demo recipe (`make demo`) on the embedded synthetic dataset, for any model:
# training from scratch in minutes without pretrained weights (none can be fetched
# offline). Derived from img2pose's recipe (the bases below) for a short schedule:
# * smaller images (256 px);
# * AdamW (fused) with a cosine schedule, bfloat16 autocast (BF16OptimWrapper: float32 on
#   CPUs without native bfloat16, where it is emulated and 30x slower), and only
#   horizontal flips: crops, noise and contrast slow a 7-epoch run down more than
#   they help it (the full augmentation is in face_pose_lmdb.py).
# The demo configs add the model: img2pose_r18_demo.py, retina_img2pose_r18_demo.py.
_base_ = [
    './datasets/face_pose_lmdb.py',
    './schedules/img2pose_plateau.py',
    './default_runtime.py',
]

train_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(type='LoadFacePoseAnnotations'),
    dict(type='BlackOutFacesWithoutPose'),
    dict(type='PoseRandomFlip', prob=0.5),
    dict(type='PoseResize', scale=(400, 256), keep_ratio=True),
    dict(type='PoseToBBox'),
    dict(type='PackFacePoseInputs'),
]
test_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(type='PoseResize', scale=(400, 256), keep_ratio=True),
    dict(type='LoadFacePoseAnnotations'),
    dict(type='PackFacePoseInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                    'instances')),
]
# test-time augmentation (`tools/test.py --tta`; the demo reports the single pass and
# this): each image at three scales, each with and without a horizontal flip; the merge
# un-flips boxes and poses and votes (IoU 0.6, poses by weighted quaternion mean)
tta_model = dict(
    type='PoseDetTTAModel',
    tta_cfg=dict(iou_thr=0.6, score_mode='vote', offset=1, max_per_img=-1))
tta_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='PoseResize', scale=(400, 256), keep_ratio=True),
             dict(type='PoseResize', scale=(500, 320), keep_ratio=True),
             dict(type='PoseResize', scale=(600, 384), keep_ratio=True)],
            [dict(type='PoseRandomFlip', prob=0.0),
             dict(type='PoseRandomFlip', prob=1.0, direction='horizontal')],
            [dict(type='LoadFacePoseAnnotations')],
            [dict(type='PackFacePoseInputs',
                  meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                             'flip', 'flip_direction', 'instances'))],
        ])
]
train_dataloader = dict(batch_size=4, num_workers=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, num_workers=2, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 7
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    type='BF16OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=5e-4, weight_decay=0.05, fused=True),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
custom_hooks = []
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=max_epochs, save_best=None, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=4)
# one seed for the weights, the sampler and the data workers: a second run on the same
# machine and thread count gives the same numbers (mmengine draws a new seed otherwise)
randomness = dict(seed=0)
