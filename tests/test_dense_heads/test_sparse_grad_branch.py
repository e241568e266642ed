"""conv_relu_pointwise: the convs' outputs and gradients, from the positions that have one."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import nn

import img2pose_mm  # noqa: F401
from img2pose_mm.dense_heads import sparse_grad_branch
from img2pose_mm.dense_heads.sparse_grad_branch import conv_relu_pointwise, supports_sparse_backward


def branch(kernel=3, padding=1, dilation=1, channels=6):
    torch.manual_seed(0)
    conv = nn.Conv2d(channels, channels, kernel, padding=padding, dilation=dilation)
    heads = (nn.Conv2d(channels, 3, 1), nn.Conv2d(channels, 12, 1))
    for m in (conv, ) + heads:
        nn.init.normal_(m.weight, std=0.5)
        nn.init.normal_(m.bias, std=0.5)
    return conv.double(), tuple(h.double() for h in heads)


def sparse_grads(shape, fraction, seed=0):
    """Gradients of the score and box maps that are non-zero at a few positions, the
    four corners (kernel taps fall outside the map) among them."""
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = shape
    mask = torch.rand(b, 1, h, w, generator=g) < fraction
    mask[0, 0, 0, 0] = mask[0, 0, -1, -1] = mask[-1, 0, 0, -1] = mask[-1, 0, -1, 0] = True
    return (torch.randn(b, 3, h, w, generator=g, dtype=torch.float64) * mask,
            torch.randn(b, 12, h, w, generator=g, dtype=torch.float64) * mask)


def forward_backward(fn, modules, x, grads):
    for m in modules:
        m.zero_grad()
    x.grad = None
    outs = fn(x)
    torch.autograd.backward([o for o, g in zip(outs, grads) if g is not None],
                            [g for g in grads if g is not None])
    return [o.detach() for o in outs], x.grad, [p.grad for m in modules for p in m.parameters()]


def assert_same_as_autograd(conv, heads, x, grads, calls=None):
    def reference(x):
        hidden = conv(x).relu()
        return tuple(h(hidden) for h in heads)

    expected = forward_backward(reference, (conv, ) + heads, x, grads)
    got = forward_backward(lambda x: conv_relu_pointwise(x, conv, heads), (conv, ) + heads,
                           x, grads)
    for a, b in zip(expected[0], got[0]):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    if x.requires_grad:
        torch.testing.assert_close(got[1], expected[1], rtol=1e-12, atol=1e-12)
        assert got[1].stride() == x.stride()             # the input's layout kept
    else:
        assert got[1] is None
    for a, b in zip(expected[2], got[2]):
        # a conv whose output is unused gets zeros here, None from autograd
        torch.testing.assert_close(b, torch.zeros_like(b) if a is None else a,
                                   rtol=1e-12, atol=1e-12)


@pytest.fixture
def count_backwards(monkeypatch):
    calls = dict(sparse=0, dense=0)
    for name in ('sparse', 'dense'):
        original = getattr(sparse_grad_branch, f'_{name}_backward')

        def counted(*args, _name=name, _original=original):
            calls[_name] += 1
            return _original(*args)
        monkeypatch.setattr(sparse_grad_branch, f'_{name}_backward', counted)
    return calls


@pytest.mark.parametrize('kernel,padding,dilation', [(3, 1, 1), (3, 2, 2), (5, 2, 1), (1, 0, 1)])
@pytest.mark.parametrize('layout', [torch.contiguous_format, torch.channels_last])
def test_sparse_backward_equals_autograd(kernel, padding, dilation, layout, count_backwards):
    conv, heads = branch(kernel, padding, dilation)
    x = torch.randn(2, 6, 11, 14, dtype=torch.float64).contiguous(memory_format=layout)
    assert_same_as_autograd(conv, heads, x.requires_grad_(), sparse_grads(x.shape, 0.03))
    assert count_backwards == dict(sparse=1, dense=0)


def test_dense_backward_where_most_positions_have_a_gradient(count_backwards):
    conv, heads = branch()
    x = torch.randn(2, 6, 9, 10, dtype=torch.float64, requires_grad=True)
    assert_same_as_autograd(conv, heads, x, sparse_grads(x.shape, 0.5))
    assert count_backwards == dict(sparse=0, dense=1)


def test_one_output_used_no_gradient_anywhere_and_a_constant_input():
    conv, heads = branch()
    x = torch.randn(2, 6, 9, 10, dtype=torch.float64, requires_grad=True)
    cls_grad, _ = sparse_grads(x.shape, 0.05)
    assert_same_as_autograd(conv, heads, x, (cls_grad, None))       # box map unused
    assert_same_as_autograd(conv, heads, x, (torch.zeros_like(cls_grad), None))
    assert_same_as_autograd(conv, heads, x.detach(), sparse_grads(x.shape, 0.05))


def test_which_convs_it_computes():
    conv, heads = branch()
    assert supports_sparse_backward(conv, heads)
    assert not supports_sparse_backward(nn.Conv2d(6, 6, 3, stride=2, padding=1), heads)
    assert not supports_sparse_backward(nn.Conv2d(6, 6, 3, padding=0), heads)  # shrinks
    assert not supports_sparse_backward(nn.Conv2d(6, 6, 3, padding=1, bias=False), heads)
    assert not supports_sparse_backward(conv, (nn.Conv2d(6, 3, 3, padding=1), ))
    assert not supports_sparse_backward(nn.Sequential(conv), heads)


def test_rpn_head_loss_gradients_equal_rpnhead(count_backwards):
    """A real RPN loss: only the sampled anchors' positions carry a gradient, the sparse
    backward runs and every gradient equals autograd's (float64; the head's losses are
    float32, on both sides)."""
    cfg = dict(in_channels=8, feat_channels=8,
               anchor_generator=dict(type='AnchorGenerator', strides=[4, 8], scales=[4],
                                     ratios=[0.5, 1.0, 2.0]),
               bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                               target_stds=[1.0] * 4),
               train_cfg=ConfigDict(
                   assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.3,
                                 min_pos_iou=0.3, match_low_quality=True, ignore_iof_thr=-1),
                   sampler=dict(type='RandomSampler', num=32, pos_fraction=0.5,
                                neg_pos_ub=-1, add_gt_as_proposals=False),
                   allowed_border=-1, pos_weight=-1, debug=False))
    torch.manual_seed(0)
    ours = MODELS.build(dict(cfg, type='Img2PoseRPNHead')).double()
    ref = MODELS.build(dict(cfg, type='Img2PoseRPNHead', sparse_backward=False)).double()
    for p in ours.parameters():
        torch.nn.init.normal_(p, std=0.3)
    ref.load_state_dict(ours.state_dict())
    feats = (torch.randn(2, 8, 32, 48, dtype=torch.float64),
             torch.randn(2, 8, 16, 24, dtype=torch.float64))
    metas = [dict(img_shape=(128, 192), pad_shape=(128, 192))] * 2
    gts = [InstanceData(bboxes=torch.tensor([[20., 30., 60., 80.], [100., 10., 150., 70.]]),
                        labels=torch.zeros(2, dtype=torch.long)),
           InstanceData(bboxes=torch.tensor([[40., 40., 90., 110.]]),
                        labels=torch.zeros(1, dtype=torch.long))]
    results = []
    for head in (ref, ours):
        x = tuple(f.clone().requires_grad_() for f in feats)
        torch.manual_seed(1)                                   # the same sampled anchors
        losses = head.loss_by_feat(*head(x), gts, metas)
        sum(sum(v) if isinstance(v, list) else v for v in losses.values()).backward()
        results.append([p.grad for p in head.parameters()] + [f.grad for f in x])
    assert count_backwards == dict(sparse=2, dense=0)        # both levels, sparse
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    # at test time and under autocast: the plain forward
    with torch.no_grad():
        ours(feats)
    ours.float()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ours(tuple(f.float().requires_grad_() for f in feats))
        assert not ours._sparse_backward_applies(feats[0].float().requires_grad_())
    assert count_backwards == dict(sparse=2, dense=0)


def test_input_gradient_is_the_same_run_to_run_on_two_threads():
    """Overlapping patches add into the same input pixels: the sums come out bitwise equal
    on every run (a thread-timing order of the duplicates' adds would not)."""
    conv, heads = branch(channels=64)
    conv, heads = conv.float(), tuple(h.float() for h in heads)
    x = torch.randn(4, 64, 64, 64, requires_grad=True)
    # 5% of the positions: the sparse backward (below DENSE_FRACTION)
    score_grad, box_grad = (g.float() for g in sparse_grads(x.shape, 0.05))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = [forward_backward(lambda x: conv_relu_pointwise(x, conv, heads),
                                 (conv, ) + heads, x, (score_grad, box_grad))[1].clone()
                for _ in range(8)]
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(runs[0], r) for r in runs[1:])
