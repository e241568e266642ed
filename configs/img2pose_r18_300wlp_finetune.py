# img2pose R-18 fine-tuned on 300W-LP: the paper's recipe behind its head-pose numbers
# (AFLW2000-3D MAE 3.913, BIWI 3.79; the WIDER FACE model alone gives about 6.15 on
# AFLW2000-3D). Data, then training from a WIDER FACE checkpoint:
#   python tools/dataset_converters/300wlp_to_json.py data/300W_LP data/300W_LP.json
#   python tools/dataset_converters/json_to_lmdb.py data/300W_LP.json data/ --name 300W_LP \
#       --image-root data/300W_LP --labelling pose_para
#   python tools/train.py configs/img2pose_r18_300wlp_finetune.py \
#       --cfg-options load_from=work_dirs/img2pose_r18/best_loss_epoch_N.pth
# The author's settings: start from the WIDER FACE model, learning rate 0.001 (constant),
# 2 epochs, 2 RPN samples per image (the RPN sampler's num), at most 4 detections per image
# (the RoI head's test max_per_img). Everything else is the WIDER FACE recipe
# (img2pose_r18.py: SGD, clipping, augmentations, multi-scale training); the author did
# not say which augmentations the fine-tuning used.
# * Pose statistics: the WIDER FACE model's, which its checkpoint carries (pose_mean /
#   pose_stddev stay None here, load_from restores them); the released fine-tuned model is
#   evaluated with the WIDER FACE statistics, so it was trained with them. The LMDB's own
#   statistics (json_to_lmdb.py --train) are not used.
# * Label the LMDB with the checkpoint's face: for weights converted from the original
#   release give json_to_lmdb.py the original's --reference-points-68/-5, and set
#   model.backbone.norm_cfg.eps=0 (frozen BatchNorm as torchvision 0.8, see
#   img2pose_r18_original.py).
# * Validation: the AFLW2000-3D protocol of img2pose_r18_aflw2000.py after each epoch
#   (data/AFLW2000/); the checkpoint with the lowest MAE is kept as best_aflw2000_mae_*.
#   BIWI: python tools/test.py configs/img2pose_r18_biwi.py work_dirs/.../best_*.pth
_base_ = './img2pose_r18_aflw2000.py'

load_from = 'checkpoints/img2pose_r18_wider.pth'     # the WIDER FACE model to fine-tune

w300lp_root = 'data/'
w300lp_ann_file = '300W_LP.lmdb'

model = dict(
    train_cfg=dict(rpn=dict(sampler=dict(num=2))),    # 2 RPN samples per image
    test_cfg=dict(rcnn=dict(max_per_img=4)))          # at most 4 detections per image

train_dataloader = dict(dataset=dict(data_root=w300lp_root, ann_file=w300lp_ann_file))

max_epochs = 2
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')                      # the AFLW2000-3D metric, no val loss
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = []                                # a constant learning rate
custom_hooks = []                                   # no early stopping in 2 epochs
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2,
                                     save_best='aflw2000/mae', rule='less'))
