# The demo (`make demo`): img2pose R-18 trained from scratch on the embedded synthetic
# dataset on a CPU in minutes. Derived from img2pose_r18.py with smaller images, fewer
# proposals and a short schedule. No ImageNet weights can be fetched offline, so the
# BatchNorm layers train (the recipe's frozen BatchNorm assumes pretrained statistics).
_base_ = './img2pose_r18.py'

model = dict(
    backbone=dict(frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=2000, max_per_img=500),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=2000, max_per_img=300)))

train_pipeline = [
    dict(type='LoadFacePoseImage'),
    dict(type='LoadFacePoseAnnotations'),
    dict(type='BlackOutFacesWithoutPose'),
    dict(type='PoseRandomFlip', prob=0.5),
    dict(type='PoseRandomCrop', scale_range=(0.7, 1.0)),
    dict(type='PoseMultiScaleResize', min_size=(224, 256), max_size=352),
    dict(type='RandomContrast', contrast_range=(0.5, 1.5), prob=0.5),
    dict(type='RandomNoise', prob=0.2),
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
train_dataloader = dict(batch_size=4, num_workers=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, num_workers=2, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=0.02))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-4, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
custom_hooks = []
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(interval=max_epochs, save_best=None, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=4)
