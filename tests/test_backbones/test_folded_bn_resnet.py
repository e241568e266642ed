"""FoldedBNResNet and ChannelsLastDataPreprocessor: faster layouts, the same numbers."""
import pytest
import torch
from mmdet.registry import MODELS

import img2pose_mm  # noqa: F401
from img2pose_mm.utils import record_paths

RESNET = dict(depth=18, base_channels=8, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
              norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True, style='pytorch')


def pair(**kwargs):
    torch.manual_seed(0)
    ref = MODELS.build(dict(RESNET, type='ResNet', **kwargs))
    for module in ref.modules():                    # non-trivial frozen statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.5)
    folded = MODELS.build(dict(RESNET, type='FoldedBNResNet', **kwargs))
    folded.load_state_dict(ref.state_dict())
    assert folded.state_dict().keys() == ref.state_dict().keys()
    return ref, folded


@pytest.mark.parametrize('depth', [18, 50])
def test_folded_resnet_equals_resnet(depth):
    ref, folded = pair(depth=depth)
    x = torch.randn(2, 3, 64, 96)
    ref.eval(), folded.eval()
    with torch.no_grad():
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            for a, b in zip(ref(inp), folded(inp)):
                torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    # training with frozen BatchNorm: same losses' gradients for the trainable convs; the
    # frozen stem and stage run channels-last and every output returns NCHW
    ref.train(), folded.train()
    grads = []
    for model in (ref, folded):
        model.zero_grad()
        outs = model(x)
        assert all(o.is_contiguous() for o in outs)
        sum((o * o).mean() for o in outs).backward()
        grads.append({k: p.grad for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for key, grad in grads[0].items():
        torch.testing.assert_close(grads[1][key], grad, rtol=1e-4, atol=1e-5)


def test_autocast_float16_runs_resnet_stock_and_bfloat16_folds():
    """float16 autocast (a folded ``weight / sqrt(var + eps)`` could overflow in half
    precision, e.g. with img2pose_r18_original's eps = 0): ResNet's own forward, bit for
    bit. bfloat16 (float32's range) folds, equal up to bfloat16 rounding. Off the
    ``fast_devices`` (here: none) ResNet's forward too."""
    norm_cfg = dict(type='BN', requires_grad=False, eps=0.0)
    ref, folded = pair(norm_cfg=norm_cfg)
    stock = MODELS.build(dict(RESNET, type='FoldedBNResNet', norm_cfg=norm_cfg, fast_devices=()))
    stock.load_state_dict(ref.state_dict())
    ref.eval(), folded.eval(), stock.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        with torch.autocast('cpu', dtype=torch.float16):
            with record_paths() as taken:
                got = folded(x)
            expected = ref(x)
        assert taken == {'FoldedBNResNet': {'stock'}}
        for a, b in zip(expected, got):
            assert b.dtype == torch.float16
            torch.testing.assert_close(b, a, rtol=0, atol=0)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            with record_paths() as taken:
                got = folded(x)
            expected = ref(x)
        assert taken == {'FoldedBNResNet': {'fast'}}
        for a, b in zip(expected, got):
            assert (b.float() - a.float()).abs().max() <= 5e-2 * a.float().abs().max()
        with record_paths() as taken:
            got = stock(x)
        assert taken == {'FoldedBNResNet': {'stock'}}
        for a, b in zip(ref(x), got):
            torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_batchnorm_in_training_mode_is_not_folded():
    ref, folded = pair(norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False,
                       frozen_stages=-1)
    ref.train(), folded.train()
    x = torch.randn(2, 3, 64, 64)
    for a, b in zip(ref(x), folded(x)):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_channels_last_preprocessor_at_test_time_only():
    pre = MODELS.build(dict(type='ChannelsLastDataPreprocessor', mean=[1., 2., 3.],
                            std=[2., 2., 2.], bgr_to_rgb=True, pad_size_divisor=32))
    ref = MODELS.build(dict(type='DetDataPreprocessor', mean=[1., 2., 3.], std=[2., 2., 2.],
                            bgr_to_rgb=True, pad_size_divisor=32))
    data = dict(inputs=[torch.randint(0, 255, (3, 40, 50), dtype=torch.uint8)])
    test, expected = pre(data, False)['inputs'], ref(data, False)['inputs']
    assert test.is_contiguous(memory_format=torch.channels_last) and not test.is_contiguous()
    torch.testing.assert_close(test, expected, rtol=0, atol=0)
    assert pre(data, True)['inputs'].is_contiguous()
    off = MODELS.build(dict(type='ChannelsLastDataPreprocessor', fast_devices=()))
    assert off(data, False)['inputs'].is_contiguous()
