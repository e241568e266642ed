"""Img2PoseRPNHead: RPNHead's proposals, with an NMS that stops at the proposals it keeps."""
import pytest
import torch
from mmcv.ops import batched_nms
from mmdet.models.dense_heads import RPNHead
from mmdet.registry import MODELS
from mmengine.config import ConfigDict

import img2pose_mm  # noqa: F401
from img2pose_mm.dense_heads.leading_nms import leading_levelwise_nms


def clustered_boxes(n, levels=3, seed=0):
    """Boxes in clusters (many overlaps, like RPN candidates around faces), distinct
    scores, a level id each."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(40, 2, generator=g) * 500
    pick = torch.randint(0, 40, (n, ), generator=g)
    xy = centres[pick] + torch.randn(n, 2, generator=g) * 12
    wh = 20 + torch.rand(n, 2, generator=g) * 60
    boxes = torch.cat([xy - wh / 2, xy + wh / 2], 1)
    scores = torch.randperm(n, generator=g).float() / n
    return boxes, scores, torch.randint(0, levels, (n, ), generator=g)


@pytest.mark.parametrize('max_num', [-1, 1, 50, 300, 1000, 5000])
def test_leading_nms_equals_nms_over_every_box(max_num):
    boxes, scores, levels = clustered_boxes(12000)
    # mmcv's batched NMS (per level above split_thr) over all boxes, then the best max_num
    _, expected = batched_nms(boxes, scores, levels, dict(type='nms', iou_threshold=0.4))
    if max_num > 0:
        expected = expected[:max_num]
    got = leading_levelwise_nms(boxes, scores, levels, 0.4, max_num)
    assert got.tolist() == expected.tolist()


def test_leading_nms_with_few_or_no_boxes():
    boxes, scores, levels = clustered_boxes(30)
    _, expected = batched_nms(boxes, scores, levels, dict(type='nms', iou_threshold=0.7))
    assert leading_levelwise_nms(boxes, scores, levels, 0.7, 1000).tolist() == expected.tolist()
    empty = leading_levelwise_nms(boxes[:0], scores[:0], levels[:0], 0.7, 1000)
    assert empty.numel() == 0


def test_rpn_head_proposals_equal_rpnhead():
    cfg = dict(in_channels=8, feat_channels=8,
               anchor_generator=dict(type='AnchorGenerator', strides=[4, 8], scales=[4],
                                     ratios=[0.5, 1.0, 2.0]),
               bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                               target_stds=[1.0] * 4))
    test_cfg = ConfigDict(nms_pre=500, max_per_img=150, nms=dict(type='nms', iou_threshold=0.4),
                          min_bbox_size=1e-3)
    torch.manual_seed(0)
    ours = MODELS.build(dict(cfg, type='Img2PoseRPNHead', test_cfg=test_cfg))
    ref = RPNHead(**cfg, test_cfg=test_cfg)
    for p in ours.parameters():
        torch.nn.init.normal_(p, std=0.3)
    ref.load_state_dict(ours.state_dict())
    feats = (torch.randn(2, 8, 32, 48), torch.randn(2, 8, 16, 24))
    metas = [dict(img_shape=(128, 192), scale_factor=(0.5, 0.5))] * 2
    # forward: in-place ReLU, the 1x1 convs as one matrix product on NCHW maps (float64:
    # equal up to rounding), oneDNN's convs on channels-last maps; gradients too
    ours64, ref64 = ours.double(), RPNHead(**cfg).double()
    ref64.load_state_dict(ours64.state_dict())
    for layout in (torch.contiguous_format, torch.channels_last):
        grads = []
        for head in (ref64, ours64):
            head.zero_grad()
            x = tuple(f.double().contiguous(memory_format=layout).requires_grad_()
                      for f in feats)
            outs = head(x)
            sum((o * torch.linspace(-1, 1, o.shape[1], dtype=o.dtype)[:, None, None]).sum()
                for level in outs for o in level).backward()
            grads.append([outs, [p.grad for p in head.parameters()] + [f.grad for f in x]])
        for a, b in zip(grads[0][0], grads[1][0]):
            for x, y in zip(a, b):
                torch.testing.assert_close(y, x, rtol=1e-12, atol=1e-12)
        for a, b in zip(grads[0][1], grads[1][1]):
            torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    ours.float()
    with torch.no_grad():
        # post-processing: the same proposals from the same head outputs
        outputs = ours(feats)
        for rescale in (False, True):
            expected = ref.predict_by_feat(*outputs, batch_img_metas=metas, rescale=rescale)
            got = ours.predict_by_feat(*outputs, batch_img_metas=metas, rescale=rescale)
            for e, g in zip(expected, got):
                assert len(g) == len(e) == 150
                torch.testing.assert_close(g.bboxes, e.bboxes, rtol=0, atol=0)
                torch.testing.assert_close(g.scores, e.scores, rtol=0, atol=0)
                assert g.labels.tolist() == e.labels.tolist()
    # soft-NMS rescores: RPNHead's post-processing
    soft = ConfigDict(test_cfg, nms=dict(type='soft_nms', iou_threshold=0.4))
    with torch.no_grad():
        expected = ref.predict_by_feat(*outputs, batch_img_metas=metas, cfg=soft)
        got = ours.predict_by_feat(*outputs, batch_img_metas=metas, cfg=soft)
    torch.testing.assert_close(got[0].scores, expected[0].scores)


@pytest.mark.parametrize('where', ['cuda', 'no_fast_devices', 'float16_autocast'])
def test_rpn_head_off_its_devices_is_rpnhead(where, monkeypatch):
    """Off ``fast_devices`` (a simulated CUDA device, ``fast_devices=()``) and under
    float16 autocast the head runs RPNHead's forward, NMS and autograd's backward, bit
    for bit."""
    from img2pose_mm.dense_heads import img2pose_rpn_head
    from img2pose_mm.utils import device_gate, record_paths
    cfg = dict(in_channels=8, feat_channels=8,
               anchor_generator=dict(type='AnchorGenerator', strides=[4, 8], scales=[4],
                                     ratios=[0.5, 1.0, 2.0]),
               bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                               target_stds=[1.0] * 4),
               test_cfg=ConfigDict(nms_pre=500, max_per_img=150, min_bbox_size=1e-3,
                                   nms=dict(type='nms', iou_threshold=0.4)))
    torch.manual_seed(0)
    extra = dict(fast_devices=()) if where == 'no_fast_devices' else dict()
    ours = MODELS.build(dict(cfg, type='Img2PoseRPNHead', **extra))
    ref = RPNHead(**cfg)
    for p in ours.parameters():
        torch.nn.init.normal_(p, std=0.3)
    ref.load_state_dict(ours.state_dict())
    if where == 'cuda':
        monkeypatch.setattr(device_gate, 'device_type_of', lambda x: 'cuda')
    # the CPU branches are never called
    for name in ('conv_relu_pointwise', 'pointwise_convs'):
        monkeypatch.setattr(img2pose_rpn_head, name, None)
    monkeypatch.setattr(img2pose_rpn_head, 'leading_levelwise_nms', None)
    feats = (torch.randn(2, 8, 32, 48), torch.randn(2, 8, 16, 24))
    metas = [dict(img_shape=(128, 192), scale_factor=(0.5, 0.5))] * 2
    with record_paths() as taken, torch.autocast('cpu', dtype=torch.float16,
                                                 enabled=where == 'float16_autocast'):
        x = tuple(f.clone().requires_grad_() for f in feats)
        got = ours(x)
        sum(o.float().sum() for level in got for o in level).backward()
        expected = ref(feats)
        with torch.no_grad():
            got_props = ours.predict_by_feat(*got, batch_img_metas=metas)
            expected_props = ref.predict_by_feat(
                *[[o.float() for o in level] for level in expected], batch_img_metas=metas)
    assert taken == {'Img2PoseRPNHead': {'stock'}}
    for a, b in zip(expected, got):
        for x_, y in zip(a, b):
            torch.testing.assert_close(y, x_, rtol=0, atol=0)
    for e, g in zip(expected_props, got_props):
        assert len(g) == len(e) > 0
        torch.testing.assert_close(g.bboxes, e.bboxes, rtol=0, atol=0)
        torch.testing.assert_close(g.scores, e.scores, rtol=0, atol=0)
