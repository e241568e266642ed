# What the original img2pose head-pose protocols share (docs/reference.md §7); the
# datasets and the answering-detection rules are in img2pose_r18_aflw2000.py and
# img2pose_r18_biwi.py:
# * the RPN keeps 500 boxes per level before NMS and 10 after it;
# * one image per batch (the datasets' test pipelines count every face, with or without
#   a pose in img2pose's camera);
# * angle errors without wrap-around (the project's stricter variant:
#   HeadPoseMetric(wrap_angles=True, fallback=None)).
_base_ = '../img2pose_r18.py'

model = dict(
    roi_head=dict(bbox_head=dict(bbox_coder=dict(pose_mean=None, pose_stddev=None))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=10)))


test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_delete_=True, data_prefix=dict(img=''), test_mode=True))
test_evaluator = dict(_delete_=True, type='HeadPoseMetric', wrap_angles=False)
val_dataloader = test_dataloader
val_evaluator = test_evaluator
