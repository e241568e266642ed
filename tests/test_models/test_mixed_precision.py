"""Mixed precision: the network may run in bfloat16, the pose geometry never does."""
import logging
import warnings

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from img2pose_mm.engine.optimizers import bf16_optim_wrapper
from img2pose_mm.task_modules import PoseBBoxCoder
from img2pose_mm.utils import enable_bf16_inference, fast_inference

from .utils import REPO, build_model, make_batch, make_sample

POSES = torch.tensor([[0.1, 0.2, 0.0, 0.1, 0.0, 6.0], [0.0, -0.3, 0.1, -0.8, 0.2, 8.0]])


def test_coder_ignores_autocast():
    coder = PoseBBoxCoder(pose_mean=[0.0, 0.0, 0.0, 0.0, 0.0, 4.0],
                          pose_stddev=[0.3, 0.3, 0.3, 0.1, 0.1, 1.0])
    boxes = torch.tensor([[100.0, 120.0, 180.0, 230.0], [400.0, 50.0, 420.0, 80.0]])
    preds = torch.tensor([[0.5, -0.2, 0.1, 0.3, -0.1, 0.2], [0.0, 0.1, 0.0, 0.0, 0.2, -0.3]])
    ref_poses, ref_boxes = coder.decode(boxes, preds, (480, 640))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        poses, out_boxes = coder.decode(boxes.bfloat16(), preds.bfloat16(), (480, 640))
        targets = coder.encode(boxes, ref_poses, (480, 640))
    assert poses.dtype == torch.float32 and out_boxes.dtype == torch.float32
    # only the bfloat16 rounding of the inputs remains
    torch.testing.assert_close(poses, coder.decode(boxes.bfloat16().float(),
                                                   preds.bfloat16().float(), (480, 640))[0])
    torch.testing.assert_close(targets, preds, atol=1e-5, rtol=1e-5)
    assert (ref_boxes - out_boxes).abs().max() <= 2


def test_bf16_train_step_and_inference(monkeypatch):
    torch.manual_seed(0)
    # random weights: keep every detection, and plausible pose statistics so that the
    # decoded faces lie in front of the camera
    coder = 'model.roi_head.bbox_head.bbox_coder.'
    model = build_model(**{'model.test_cfg.rcnn.score_thr': 0.0,
                           coder + 'pose_mean': [0.0, 0.0, 0.0, 0.0, 0.0, 5.0],
                           coder + 'pose_stddev': [0.2, 0.4, 0.2, 0.3, 0.3, 1.0]})
    model.train()
    # native_only=False: bfloat16 even where the CPU only emulates it
    wrapper = build_optim_wrapper(model, dict(type='BF16OptimWrapper', native_only=False,
                                              optimizer=dict(type='SGD', lr=1e-3)))
    images = torch.randint(0, 256, (2, 3, 128, 160), dtype=torch.uint8)
    batch = make_batch(model, images, [make_sample(POSES), make_sample(POSES[:1])])
    with wrapper.optim_context(model):
        assert torch.is_autocast_enabled('cpu')
        losses = model(**batch, mode='loss')
    total, log_vars = model.parse_losses(losses)
    assert torch.isfinite(total) and {'loss_dof', 'loss_points', 'loss_rpn_cls'} <= set(log_vars)
    wrapper.update_params(total)
    # proposals: float32 anchors and NMS even under autocast
    model.eval()
    with torch.no_grad():
        ref = model(**make_batch(model, images[:1], [make_sample(POSES)], False), mode='predict')
        # the same numbers with native or emulated bfloat16; emulated, it warns
        monkeypatch.setattr(fast_inference, 'native_bf16', lambda device_type: False)
        with pytest.warns(UserWarning, match='emulated and slower than float32'):
            enable_bf16_inference(model)
        out = model(**make_batch(model, images[:1], [make_sample(POSES)], False), mode='predict')
    pred = out[0].pred_instances
    assert pred.poses.dtype == torch.float32 and pred.bboxes.dtype == torch.float32
    assert len(pred) > 0 and len(ref[0].pred_instances) > 0


@pytest.mark.parametrize('native', [True, False])
def test_bf16_wrapper_trains_in_float32_where_bf16_is_emulated(native, monkeypatch):
    monkeypatch.setattr(bf16_optim_wrapper, 'native_bf16', lambda device: native)
    logged = []
    monkeypatch.setattr(bf16_optim_wrapper, 'print_log',
                        lambda msg, **kwargs: logged.append((msg, kwargs.get('level'))))
    layer = torch.nn.Linear(4, 2)
    wrapper = build_optim_wrapper(layer, dict(type='BF16OptimWrapper',
                                              optimizer=dict(type='SGD', lr=1e-3)))
    for _ in range(2):
        with wrapper.optim_context(layer):
            out = layer(torch.ones(3, 4))
    assert out.dtype == (torch.bfloat16 if native else torch.float32)
    warned = [msg for msg, level in logged
              if 'no native bfloat16' in msg and level == logging.WARNING]
    assert len(warned) == (0 if native else 1)      # once, not every iteration


def _record_dtypes(modules, kind):
    """``{name: {output dtypes}}`` of every ``kind`` layer, filled by forward hooks."""
    seen = {}
    for prefix, module in modules:
        for name, layer in module.named_modules(prefix=prefix):
            if isinstance(layer, kind):
                layer.register_forward_hook(
                    lambda mod, args, out, name=name: seen.setdefault(name, set()).add(out.dtype))
    return seen


@pytest.mark.parametrize('stages', ['two', 'one'])
def test_bf16_inference_runs_the_heads_layers_in_bfloat16(stages):
    """``enable_bf16_inference``: every nn.Linear of the RoI head (two-stage) or nn.Conv2d
    of the dense head (one-stage) produces bfloat16, as do the backbone's and the neck's
    convs; the RPN, the outputs and the geometry stay float32; no forward is replaced."""
    torch.manual_seed(0)
    stats = dict(pose_mean=[0.0, 0.0, 0.0, 0.0, 0.0, 5.0],
                 pose_stddev=[0.2, 0.4, 0.2, 0.3, 0.3, 1.0])
    if stages == 'two':
        model = build_model(**{'model.test_cfg.rcnn.score_thr': 0.0,
                               'model.roi_head.bbox_head.bbox_coder': stats})
        heads, kind = [('roi_head', model.roi_head)], nn.Linear
    else:
        model = build_model(REPO / 'configs' / '_base_' / 'models' / 'retina_img2pose_r18_fpn.py',
                            **{'model.test_cfg.score_thr': 0.0,
                               'model.bbox_head.bbox_coder': stats})
        heads, kind = [('bbox_head', model.bbox_head)], nn.Conv2d
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)      # emulated bfloat16 on this CPU
        enable_bf16_inference(model)
    head_dtypes = _record_dtypes(heads, kind)
    feature_dtypes = _record_dtypes([('backbone', model.backbone), ('neck', model.neck)],
                                    nn.Conv2d)
    rpn_dtypes = _record_dtypes([('rpn_head', getattr(model, 'rpn_head', nn.Identity()))],
                                nn.Conv2d)
    images = torch.randint(0, 256, (1, 3, 128, 160), dtype=torch.uint8)
    with torch.no_grad():
        out = model(**make_batch(model, images, [make_sample(POSES)], False), mode='predict')
    expected = {name for prefix, head in heads
                for name, layer in head.named_modules(prefix=prefix) if isinstance(layer, kind)}
    assert set(head_dtypes) == expected and len(expected) >= 4      # every layer ran
    assert all(d == {torch.bfloat16} for d in head_dtypes.values()), head_dtypes
    assert feature_dtypes and all(d == {torch.bfloat16} for d in feature_dtypes.values())
    assert all(d == {torch.float32} for d in rpn_dtypes.values())
    pred = out[0].pred_instances
    assert len(pred) > 0
    assert pred.poses.dtype == pred.bboxes.dtype == pred.scores.dtype == torch.float32
    assert not [name for name, m in model.named_modules() if 'forward' in vars(m)]
    # a second call replaces the hooks instead of adding more
    hooks = len(model.backbone._forward_pre_hooks)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        enable_bf16_inference(model)
    assert len(model.backbone._forward_pre_hooks) == hooks == 1


@pytest.mark.parametrize('caps, onednn, expected', [
    ({'avx512_f': True, 'avx512_bf16': False, 'amx_bf16': False}, True, False),  # emulated
    ({'avx512_f': True, 'avx512_bf16': True}, True, True),
    ({'amx_bf16': True, 'amx_tile': True}, True, True),
    ({'avx2': True}, False, False),
])
def test_native_bf16_tells_bf16_instructions_from_onednn_emulation(caps, onednn, expected,
                                                                   monkeypatch):
    """oneDNN reports bfloat16 support on AVX512 CPUs without AVX512-BF16/AMX (it emulates
    it there); only the CPU's own bfloat16 instructions count as native."""
    from img2pose_mm.utils import precision
    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: dict(caps))
    monkeypatch.setattr(precision.platform, 'machine', lambda: 'x86_64')
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: onednn)
    assert precision.native_bf16('cpu') is expected
