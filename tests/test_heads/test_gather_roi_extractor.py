"""GatherRoIExtractor / roi_align_gather: mmcv's RoIAlign as a weighted gather."""
import pytest
import torch
from mmcv.ops import roi_align
from mmdet.registry import MODELS

import img2pose_mm  # noqa: F401
from img2pose_mm.heads import roi_align_gather

ROI_LAYER = dict(type='RoIAlign', output_size=7, sampling_ratio=2, aligned=False)


def random_rois(n: int, img_h: int, img_w: int, num_imgs: int = 2) -> torch.Tensor:
    """RoIs of every kind: inside, partly or wholly outside the image, tiny, huge."""
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([img_w * 1.4, img_h * 1.4]) \
        - torch.tensor([img_w * 0.2, img_h * 0.2])
    wh = torch.rand(n, 2, generator=g) ** 3 * torch.tensor([img_w, img_h])
    inds = torch.randint(0, num_imgs, (n, 1), generator=g).float()
    return torch.cat([inds, xy, xy + wh], 1)


def assert_close_rel(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-6) -> None:
    assert (a - b).abs().max() <= rel * max(b.abs().max().item(), 1.0)


@pytest.mark.parametrize('aligned', [False, True])
@pytest.mark.parametrize('channels_last', [False, True])
def test_gather_equals_mmcv_roi_align_forward_and_backward(aligned, channels_last):
    torch.manual_seed(0)
    feat = torch.randn(2, 16, 12, 18)
    if channels_last:
        feat = feat.contiguous(memory_format=torch.channels_last)
    rois = random_rois(60, 48, 72)
    rois[0] = torch.tensor([1., -30., -20., -5., -4.])         # wholly outside the map
    ref_feat = feat.detach().contiguous().requires_grad_()
    feat = feat.detach().requires_grad_()
    ref = roi_align(ref_feat, rois, 7, 0.25, 2, 'avg', aligned)
    out = roi_align_gather(feat, rois, 0.25, 7, 2, aligned).permute(0, 3, 1, 2)
    assert_close_rel(out, ref)
    grad_out = torch.randn_like(ref)
    ref_grad, = torch.autograd.grad(ref, ref_feat, grad_out)
    grad, = torch.autograd.grad(out, feat, grad_out)
    assert_close_rel(grad, ref_grad)


def build(kind: str, **kwargs):
    return MODELS.build(dict(type=kind, roi_layer=ROI_LAYER, out_channels=16,
                             featmap_strides=[4, 8, 16, 32], finest_scale=56, **kwargs))


@pytest.mark.parametrize('channels_last', [False, True])
def test_extractor_equals_single_roi_extractor(channels_last):
    """Same level mapping and outputs over all levels, unused levels in the graph, and
    the mmcv fallback correct on channels-last levels."""
    torch.manual_seed(0)
    feats = [torch.randn(2, 16, 128 // s, 192 // s) for s in (4, 8, 16, 32)]
    if channels_last:
        feats = [f.contiguous(memory_format=torch.channels_last) for f in feats]
    rois = random_rois(40, 128, 192)
    single, gather = build('SingleRoIExtractor'), build('GatherRoIExtractor')
    fallback = build('GatherRoIExtractor', fast_devices=())
    assert gather.uses_gather(feats) and not fallback.uses_gather(feats)
    ref_feats = [f.detach().contiguous().requires_grad_() for f in feats]
    ref = single(ref_feats, rois)
    grad_out = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, ref_feats, grad_out)
    for extractor in (gather, fallback):
        leaves = [f.detach().requires_grad_() for f in feats]
        out = extractor(leaves, rois)
        assert out.shape == ref.shape
        assert_close_rel(out, ref)
        for grad, ref_grad in zip(torch.autograd.grad(out, leaves, grad_out), ref_grads):
            assert_close_rel(grad, ref_grad)
    # one level only (all RoIs small): the other levels still get a (zero) gradient
    leaves = [f.detach().requires_grad_() for f in feats]
    small = torch.tensor([[0., 10., 10., 30., 40.], [1., 50., 60., 70., 90.]])
    grads = torch.autograd.grad(gather(leaves, small).sum(), leaves)
    assert all(g is not None for g in grads) and grads[1].abs().sum() == 0
    # two levels used (P2, P3), two not: the same, and the used ones match mmcv's
    two = torch.tensor([[0., 10., 10., 30., 40.], [1., 4., 4., 124., 124.],
                        [0., 5., 5., 25., 30.]])
    leaves = [f.detach().requires_grad_() for f in feats]
    out = gather(leaves, two)
    torch.testing.assert_close(out, single([f.contiguous() for f in feats], two),
                               rtol=1e-5, atol=1e-6)
    grads = torch.autograd.grad(out.sum(), leaves)
    assert all(g is not None for g in grads)
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0
    assert grads[2].abs().sum() == 0 and grads[3].abs().sum() == 0
    with torch.no_grad():
        assert gather(feats, rois[:0]).shape == (0, 16, 7, 7)


def test_fallback_when_the_gather_does_not_apply():
    extractor = MODELS.build(dict(type='GatherRoIExtractor',
                                  roi_layer=dict(ROI_LAYER, sampling_ratio=0), out_channels=16,
                                  featmap_strides=[4, 8, 16, 32]))
    feats = [torch.randn(1, 16, 32 // s, 32 // s) for s in (4, 8, 16, 32)]
    assert not extractor.uses_gather(feats)
    assert not extractor.uses_gather([f.double() for f in feats])
    assert extractor(feats, torch.tensor([[0., 1., 2., 20., 24.]])).shape == (1, 16, 7, 7)


def test_extractor_under_autocast_and_off_its_devices(monkeypatch):
    """The gather computes in float32 under any autocast (``embedding_bag`` is not
    autocast): the same features as SingleRoIExtractor's. On a device outside
    ``fast_devices`` (simulated CUDA) SingleRoIExtractor's forward, bit for bit."""
    from img2pose_mm.utils import device_gate, record_paths
    torch.manual_seed(0)
    feats = [torch.randn(2, 16, 128 // s, 192 // s) for s in (4, 8, 16, 32)]
    rois = random_rois(40, 128, 192)
    single, gather = build('SingleRoIExtractor'), build('GatherRoIExtractor')
    ref = single(feats, rois)
    for dtype in (torch.bfloat16, torch.float16):
        with record_paths() as taken, torch.autocast('cpu', dtype=dtype):
            out = gather(feats, rois)
        assert taken == {'GatherRoIExtractor': {'fast'}} and out.dtype == torch.float32
        assert_close_rel(out, ref)
    monkeypatch.setattr(device_gate, 'device_type_of', lambda x: 'cuda')
    with record_paths() as taken:
        out = gather(feats, rois)
    assert taken == {'GatherRoIExtractor': {'stock'}}
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
