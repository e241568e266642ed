"""The speed branches run only on their ``fast_devices`` (``device_gate``): off them the
default configs run mmdet's own parts, and on the CPU the default model and the
all-stock one (``configs/img2pose_r18_stock.py``) give the same detections, losses and
gradients.

Tolerances (random weights, a 128 x 160 image with two faces):

* float32: detections paired one to one, boxes 1e-2 px, scores 1e-4, poses 1e-4; losses
  1e-4 relative; each parameter's gradient within 1e-3 of its largest entry plus 1e-5 of
  the model's largest gradient entry (the rounding noise of gradients that are zero in
  exact arithmetic, e.g. the bias of a Linear before a training-mode BatchNorm).
* bfloat16 autocast (both models round to bfloat16, at different places): losses 5e-2
  relative; gradients: cosine similarity of all of them together 0.99, of each tensor
  0.98 (those with an entry above 1e-2 of the largest), every entry within 0.25 of the
  largest; detections: the same count within 10%, 90% of them paired with boxes within
  2 px, scores 2e-2, rotations 2e-2 rad and translations 2e-2 relative.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from img2pose_mm.apis.model_config import pose_coder_cfgs
from img2pose_mm.utils import device_gate, record_paths, takes_fast_path
from tools.fidelity.compare import match_detections

from .utils import REPO, make_batch, make_sample

#: every part with a speed branch in the default two-stage config
GATED = ('ChannelsLastDataPreprocessor', 'FoldedBNResNet', 'FoldedFPN', 'Img2PoseRPNHead',
         'GatherRoIExtractor')
#: mmdet's own class of each (the all-stock model's code)
STOCK_TYPES = dict(data_preprocessor='DetDataPreprocessor', backbone='ResNet', neck='FPN',
                   rpn_head='RPNHead')
POSES = torch.tensor([[0.1, 0.2, 0.0, 0.1, 0.0, 6.0], [0.0, -0.3, 0.1, -0.8, 0.2, 8.0]])
STATS = dict(pose_mean=[0.0, 0.0, 0.0, 0.0, 0.0, 5.0], pose_stddev=[0.2, 0.4, 0.2, 0.3, 0.3, 1.0])
TWO_STAGE = REPO / 'configs' / 'img2pose_r18.py'
STOCK = REPO / 'configs' / 'img2pose_r18_stock.py'
ONE_STAGE = REPO / 'configs' / 'retina_img2pose_r18_fpn.py'


def model_cfg(path, **overrides):
    """The config's model with numeric pose statistics and every detection kept."""
    cfg = Config.fromfile(str(path))
    for _, coder in pose_coder_cfgs(cfg.model):
        coder.update(STATS)
    cfg.merge_from_dict(overrides)
    test_cfg = cfg.model.test_cfg
    (test_cfg.rcnn if 'rcnn' in test_cfg else test_cfg).score_thr = 0.0
    return cfg.model


def build(cfg, state=None):
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    if state is not None:
        model.load_state_dict(state)
    return model


def pure_mmdet(cfg):
    """The two-stage config with mmdet's own classes for every gated part."""
    cfg = copy.deepcopy(cfg)
    for key, stock_type in STOCK_TYPES.items():
        cfg[key].type = stock_type
        cfg[key].pop('fast_devices', None)
        cfg[key].pop('sparse_backward', None)
    cfg.roi_head.bbox_roi_extractor.type = 'SingleRoIExtractor'
    cfg.roi_head.bbox_roi_extractor.pop('fast_devices', None)
    return cfg


def images(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 128, 160), generator=g, dtype=torch.uint8)


def run(model, autocast_dtype=None):
    """Detections of one image, then the losses and gradients of a two-image batch."""
    enabled = autocast_dtype is not None
    model.eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=autocast_dtype or torch.bfloat16,
                                         enabled=enabled):
        pred = model(**make_batch(model, images(1), [make_sample(POSES)], False),
                     mode='predict')[0].pred_instances
    model.train()
    model.zero_grad()
    torch.manual_seed(1)                          # the same sampled anchors and RoIs
    batch = make_batch(model, images(2, seed=1), [make_sample(POSES), make_sample(POSES[:1])])
    with torch.autocast('cpu', dtype=autocast_dtype or torch.bfloat16, enabled=enabled):
        losses = model(**batch, mode='loss')
    total, log_vars = model.parse_losses(losses)
    total.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    dets = dict(boxes=pred.bboxes.numpy(), scores=pred.scores.numpy(), poses=pred.poses.numpy())
    return dets, {k: float(v.detach()) for k, v in log_vars.items()}, grads


@pytest.fixture
def simulated_cuda(monkeypatch):
    """The device check sees every tensor on 'cuda' (the tensors stay on the CPU)."""
    monkeypatch.setattr(device_gate, 'device_type_of', lambda x: 'cuda')


def test_takes_fast_path_device_gate_decisions(monkeypatch):
    x = torch.zeros(2)
    assert takes_fast_path(x, ('cpu', )) and not takes_fast_path(x, ())
    assert not takes_fast_path('cuda:0', ('cpu', )) and takes_fast_path('cuda', ('cuda', ))
    # float16 (inputs or autocast): the stock branch; bfloat16: the branch
    assert not takes_fast_path(x.half(), ('cpu', )) and takes_fast_path(x.bfloat16(), ('cpu', ))
    assert takes_fast_path(x.half(), ('cpu', ), dtypes=None)
    with torch.autocast('cpu', dtype=torch.float16):
        assert not takes_fast_path(x, ('cpu', ))
        assert takes_fast_path(x, ('cpu', ), autocast_dtypes=None)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert takes_fast_path(x, ('cpu', ))
    with record_paths() as outer:
        takes_fast_path(x, ('cpu', ), 'A')
        with record_paths() as inner:
            takes_fast_path(x, (), 'B')
        monkeypatch.setattr(device_gate, 'device_type_of', lambda x: 'cuda')
        takes_fast_path(x, ('cpu', ), 'A')
    assert inner == {'B': {'stock'}}
    assert outer == {'A': {'fast', 'stock'}, 'B': {'stock'}}


@pytest.mark.parametrize('device', ['cpu', 'cuda'])
def test_default_configs_take_stock_branch_off_the_cpu_device_gate(device, request):
    """Built from the default configs, every gated part takes its CPU branch on the CPU
    and its stock branch on another device; there the two-stage model computes exactly
    what the same model made of mmdet's own classes computes."""
    cfg = model_cfg(TWO_STAGE)
    model = build(cfg)
    state = copy.deepcopy(model.state_dict())    # before training updates BatchNorm1d
    if device == 'cuda':
        request.getfixturevalue('simulated_cuda')
    with record_paths() as taken:
        dets, losses, grads = run(model)
    want = {'cpu': 'fast', 'cuda': 'stock'}[device]
    assert taken == {part: {want} for part in GATED}
    if device == 'cuda':
        ref_dets, ref_losses, ref_grads = run(build(pure_mmdet(cfg), state))
        assert losses == ref_losses
        for key in ('boxes', 'scores', 'poses'):
            np.testing.assert_array_equal(dets[key], ref_dets[key])
        assert grads.keys() == ref_grads.keys()
        for key, grad in ref_grads.items():
            torch.testing.assert_close(grads[key], grad, rtol=0, atol=0)

    # the one-stage default is mmdet's RetinaNet parts throughout: nothing to gate
    one_stage = build(model_cfg(ONE_STAGE)).eval()
    with record_paths() as taken, torch.no_grad():
        one_stage(**make_batch(one_stage, images(1), [make_sample(POSES)], False),
                  mode='predict')
    assert all(paths == {'stock'} for paths in taken.values())


def assert_same_detections(dets, ref, tolerances, share):
    match = match_detections(ref, dets, tolerances)
    assert match['num_ref'] > 0
    assert abs(match['num_ours'] - match['num_ref']) <= (1 - share) * match['num_ref'], match
    assert match['share_within'] >= share, {k: match[k] for k in ('within', 'max')}


def test_stock_config_equals_default_in_float32():
    default = build(model_cfg(TWO_STAGE))
    stock = build(model_cfg(STOCK), default.state_dict())
    with record_paths() as taken:
        ref_dets, ref_losses, ref_grads = run(stock)
    assert taken == {part: {'stock'} for part in GATED}
    dets, losses, grads = run(default)
    assert_same_detections(dets, ref_dets, dict(box=1e-2, score=1e-4, rotation=1e-4,
                                                translation=1e-4), share=1.0)
    assert losses.keys() == ref_losses.keys()
    for key, value in ref_losses.items():
        assert losses[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert grads.keys() == ref_grads.keys()
    largest = max(float(g.abs().max()) for g in ref_grads.values())
    for key, grad in ref_grads.items():
        assert (grads[key] - grad).abs().max() <= 1e-3 * grad.abs().max() + 1e-5 * largest, key


def test_stock_config_equals_default_under_bf16_autocast():
    default = build(model_cfg(TWO_STAGE))
    stock = build(model_cfg(STOCK), default.state_dict())
    with record_paths() as taken:
        dets, losses, grads = run(default, torch.bfloat16)
    # under bfloat16 autocast the branches run (shown equal here); the sparse RPN
    # backward steps aside by itself (autograd's backward under autocast)
    assert taken == {part: {'fast'} for part in GATED}
    ref_dets, ref_losses, ref_grads = run(stock, torch.bfloat16)
    assert_same_detections(dets, ref_dets, dict(box=2.0, score=2e-2, rotation=2e-2,
                                                translation=2e-2), share=0.9)
    for key, value in ref_losses.items():
        assert losses[key] == pytest.approx(value, rel=5e-2, abs=1e-3), key
    assert grads.keys() == ref_grads.keys()

    def cosine(a, b):
        return float(torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=0))

    assert cosine(torch.cat([grads[k].flatten() for k in ref_grads]),
                  torch.cat([g.flatten() for g in ref_grads.values()])) >= 0.99
    largest = max(float(g.abs().max()) for g in ref_grads.values())
    for key, grad in ref_grads.items():
        assert (grads[key] - grad).abs().max() <= 0.25 * largest, key
        if grad.abs().max() > 1e-2 * largest:
            assert cosine(grads[key].flatten(), grad.flatten()) >= 0.98, key


def test_float16_autocast_takes_the_stock_branches():
    """float16 autocast (fp16 AMP): every gated part but the layout-only preprocessor
    and the float32-only RoI gather (whose float16 features go to mmcv) runs stock."""
    model = build(model_cfg(TWO_STAGE)).eval()
    x = torch.randn(1, 3, 64, 96)
    with record_paths() as taken, torch.no_grad(), torch.autocast('cpu', dtype=torch.float16):
        feats = model.neck(model.backbone(x))
        model.rpn_head(feats)
    assert taken == {'FoldedBNResNet': {'stock'}, 'FoldedFPN': {'stock'},
                     'Img2PoseRPNHead': {'stock'}}
