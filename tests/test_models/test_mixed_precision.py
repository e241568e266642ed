"""Mixed precision: the network may run in bfloat16, the pose geometry never does."""
import logging

import pytest
import torch
from mmengine.optim import build_optim_wrapper

from img2pose_mm.engine.optimizers import bf16_optim_wrapper
from img2pose_mm.task_modules import PoseBBoxCoder
from img2pose_mm.utils import enable_bf16_inference

from .utils import build_model, make_batch, make_sample

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


def test_bf16_train_step_and_inference():
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
