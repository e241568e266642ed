# img2pose_r18.py with every speed branch off: the same classes, weights and checkpoints,
# each part running mmdet's own code (ResNet's and FPN's forward, RPNHead's forward, NMS
# and autograd's backward, mmcv's RoIAlign, an NCHW batch) on every device
# (docs/device_paths.md). On a GPU this is what img2pose_r18.py runs anyway.
#   python tools/test.py configs/img2pose_r18_stock.py CKPT
# or, for any config, the same with
#   --cfg-options model.data_preprocessor.fast_devices=[] model.backbone.fast_devices=[] \
#       model.neck.fast_devices=[] model.rpn_head.fast_devices=[] \
#       model.roi_head.bbox_roi_extractor.fast_devices=[]
_base_ = './img2pose_r18.py'

model = dict(
    data_preprocessor=dict(fast_devices=()),
    backbone=dict(fast_devices=()),
    neck=dict(fast_devices=()),
    rpn_head=dict(fast_devices=()),
    roi_head=dict(bbox_roi_extractor=dict(fast_devices=())))
