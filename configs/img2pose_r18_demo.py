# The demo (`make demo`): img2pose R-18 trained from scratch on the embedded synthetic
# dataset on a CPU in about 15 minutes. Derived from img2pose_r18.py for a short
# schedule without pretrained weights (none can be fetched offline):
# * BatchNorm trains (the recipe's frozen BatchNorm assumes ImageNet statistics);
# * smaller images (256 px), fewer proposals and RoIs per image;
# * AdamW (fused) with a cosine schedule, bfloat16 autocast (BF16OptimWrapper), and only
#   horizontal flips: crops, noise and contrast slow a 7-epoch run down more than
#   they help it (the full augmentation is in the base config).
_base_ = './img2pose_r18.py'

model = dict(
    backbone=dict(frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=500),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=1000, max_per_img=300)))

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
