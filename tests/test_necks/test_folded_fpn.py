"""FoldedFPN: the finest FPN output with the lateral conv and upsampling folded into the
output conv equals mmdet's FPN (forward and backward) with the same parameters."""
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

import img2pose_mm  # noqa: F401
from img2pose_mm.necks import FoldedFPN, add_phases, nearest_upsampling_phase_kernels
from img2pose_mm.utils import record_paths


def test_phase_kernels_equal_a_conv_over_the_upsampled_map():
    torch.manual_seed(0)
    weight = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    coarse = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    expected = F.conv2d(F.interpolate(coarse, scale_factor=2, mode='nearest'), weight, padding=1)
    phases = F.conv2d(coarse, nearest_upsampling_phase_kernels(weight), padding=1)
    assert phases.shape == (2, 4 * 5, 5, 7)
    # the documented indexing, element by element
    for py in range(2):
        for px in range(2):
            block = phases[:, (2 * py + px) * 5:(2 * py + px + 1) * 5, py:py + 4, px:px + 6]
            torch.testing.assert_close(block, expected[:, :, py::2, px::2])
    out = torch.zeros_like(expected)
    torch.testing.assert_close(add_phases(out, phases), expected)
    # any memory layout of both tensors
    out = torch.zeros_like(expected).contiguous(memory_format=torch.channels_last)
    add_phases(out, phases.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected)
    # recorded by autograd: a new tensor (an in-place add on a view would copy the whole
    # gradient in the backward)
    leaf = torch.zeros_like(expected, requires_grad=True)
    torch.testing.assert_close(add_phases(leaf, phases), expected)
    assert leaf.detach().abs().sum() == 0
    with pytest.raises(ValueError, match='3, 3'):
        nearest_upsampling_phase_kernels(torch.zeros(4, 4, 1, 1))


def build_pair(**kwargs):
    cfg = dict(in_channels=[8, 16, 24, 32], out_channels=32, num_outs=5)
    cfg.update(kwargs)
    torch.manual_seed(0)
    ref = MODELS.build(dict(cfg, type='FPN'))
    for p in ref.parameters():                       # non-zero biases too
        torch.nn.init.normal_(p, std=0.2)
    folded = MODELS.build(dict(cfg, type='FoldedFPN'))
    folded.load_state_dict(ref.state_dict())
    assert folded.state_dict().keys() == ref.state_dict().keys()
    return ref, folded


def pyramid(channels=(8, 16, 24, 32), size=(32, 48), batch=2, start=0):
    h, w = size
    return tuple(torch.randn(batch, c, h >> i, w >> i) for i, c in enumerate(channels))


@pytest.mark.parametrize('kwargs', [
    dict(),                                                       # P2-P5 + max-pooled P6
    dict(start_level=1, in_channels=[64, 8, 24, 32], add_extra_convs='on_input'),
    dict(add_extra_convs='on_output', relu_before_extra_convs=True, num_outs=6),
    dict(add_extra_convs='on_lateral', upsample_cfg=dict(mode='nearest', scale_factor=2)),
])
def test_folded_fpn_equals_fpn(kwargs):
    ref, folded = build_pair(**kwargs)
    assert folded.folds_finest
    inputs = pyramid(ref.in_channels)
    with torch.no_grad():
        for x in (inputs, tuple(t.contiguous(memory_format=torch.channels_last) for t in inputs)):
            expected, got = ref(x), folded(x)
            assert len(got) == len(expected) == ref.num_outs
            for a, b in zip(expected, got):
                torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
            # the input's layout is kept (a channels-last P2 would slow the training
            # backward of every convolution after it)
            fmt = torch.channels_last if x[0].is_contiguous(
                memory_format=torch.channels_last) else torch.contiguous_format
            assert got[0].is_contiguous(memory_format=fmt)
    # gradients of every parameter and of the inputs (float64: exact up to rounding)
    grads = []
    for model in (ref.double(), folded.double()):
        model.zero_grad()
        x = tuple(t.double().requires_grad_() for t in inputs)
        sum((o * torch.linspace(-1, 1, o.shape[-1], dtype=o.dtype)).sum() for o in model(x)).backward()
        grads.append([p.grad for p in model.parameters()] + [t.grad for t in x])
    for a, b in zip(*grads):
        if a is None:
            assert b is None
            continue
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


def test_fold_only_where_it_saves_work_or_applies():
    # ResNet-50's 256-channel C2 would cost more folded
    assert not build_pair(in_channels=[256, 16, 24, 32], out_channels=256)[1].folds_finest
    assert not build_pair(upsample_cfg=dict(mode='bilinear'))[1].folds_finest
    assert not build_pair(norm_cfg=dict(type='BN'))[1].folds_finest
    # a finest map that is not exactly twice the next (odd sizes) runs FPN's forward
    ref, folded = build_pair()
    inputs = list(pyramid(ref.in_channels, size=(32, 48)))
    inputs[0] = torch.randn(2, 8, 31, 47)
    inputs[1] = torch.randn(2, 16, 16, 24)
    assert not folded._can_fold(inputs)
    with torch.no_grad():
        for a, b in zip(ref(tuple(inputs)), folded(tuple(inputs))):
            torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert isinstance(folded, FoldedFPN)


def test_fold_off_its_devices_and_under_float16_autocast_runs_fpn():
    """``fast_devices=()`` and float16 autocast run FPN's forward (bit for bit); bfloat16
    autocast folds, equal up to bfloat16 rounding."""
    ref, folded = build_pair()
    stock = MODELS.build(dict(type='FoldedFPN', in_channels=[8, 16, 24, 32], out_channels=32,
                              num_outs=5, fast_devices=()))
    stock.load_state_dict(ref.state_dict())
    inputs = pyramid(ref.in_channels)
    with torch.no_grad():
        with record_paths() as taken:
            got = stock(inputs)
        assert taken == {'FoldedFPN': {'stock'}}
        for a, b in zip(ref(inputs), got):
            torch.testing.assert_close(b, a, rtol=0, atol=0)
        with torch.autocast('cpu', dtype=torch.float16):
            with record_paths() as taken:
                got = folded(inputs)
            expected = ref(inputs)
        assert taken == {'FoldedFPN': {'stock'}}
        for a, b in zip(expected, got):
            torch.testing.assert_close(b, a, rtol=0, atol=0)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            with record_paths() as taken:
                got = folded(inputs)
            expected = ref(inputs)
        assert taken == {'FoldedFPN': {'fast'}}
        for a, b in zip(expected, got):
            assert (b.float() - a.float()).abs().max() <= 5e-2 * a.float().abs().max()


def test_exported_graph_folds_with_slices():
    """torch.export (the ONNX exporter's front end) traces the fold with slices and stacks
    instead of a strided view, for any input size that is a multiple of the strides."""
    ref, folded = build_pair()
    folded.eval()

    class Wrapper(torch.nn.Module):
        def __init__(self, neck):
            super().__init__()
            self.neck = neck

        def forward(self, c2, c3, c4, c5):
            return self.neck((c2, c3, c4, c5))

    inputs = pyramid(ref.in_channels, size=(32, 48), batch=1)
    k = torch.export.Dim('k', min=1, max=64)
    dims = [{2: (16 >> i) * k, 3: (24 >> i) * k} for i in range(4)]     # (32, 48) at k = 2
    program = torch.export.export(Wrapper(folded), inputs, dynamic_shapes=dims)
    graph = str(program.graph)
    assert 'as_strided' not in graph and 'stack' in graph
    for size in ((32, 48), (64, 96)):
        x = pyramid(ref.in_channels, size=size, batch=1)
        with torch.no_grad():
            # the folded kernels sum the same products in another order: float32
            # rounding, about 1e-5 at outputs of order 1 (1.05e-5 seen with one thread)
            for a, b in zip(ref(x), program.module()(*x)):
                torch.testing.assert_close(b, a, rtol=1e-5, atol=3e-5)
