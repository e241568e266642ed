# One-stage demo: the model of retina_img2pose_r18_fpn.py trained from scratch with the
# CPU demo recipe (_base_/synthetic_demo.py) on the embedded synthetic dataset:
#   python tools/demo_pipeline.py --config configs/retina_img2pose_r18_demo.py \
#       --work-dir work_dirs/demo_retina
# Without pretrained weights the backbone's BatchNorm trains. It has no RPN and no RoI
# stage but an R-18-width backbone, so it trains 16 epochs (6400 iterations on the 1600
# images) where the two-stage demo-scale model trains 6, and takes far longer than
# `make demo` on 2 cores (2026-11-30, EPYC-AVX2, 800 images: 63.5 min; docs/benchmarks.md,
# "One-stage vs two-stage"). The light one-stage model trains with this recipe in about
# half an hour: retina_img2pose_lite_demo.py.
_base_ = [
    './_base_/models/retina_img2pose_r18_fpn.py',
    './_base_/synthetic_demo.py',
]

data_root = 'data/synthetic/'
pose_mean = data_root + 'train_pose_mean.npy'
pose_stddev = data_root + 'train_pose_stddev.npy'

model = dict(
    backbone=dict(frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False),
    bbox_head=dict(bbox_coder=dict(pose_mean=pose_mean, pose_stddev=pose_stddev)))

max_epochs = 16
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
