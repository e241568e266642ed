"""The img2pose model assembled from mmdet components: losses, gradients, learning, predict."""
import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from img2pose_mm.structures import global_to_local, load_reference_points, project_pose_points
from img2pose_mm.task_modules import PoseBBoxCoder

from .utils import build_model, make_batch, make_sample

POSES = torch.tensor([[0.1, 0.2, 0.0, 0.1, 0.0, 6.0],
                      [0.0, -0.3, 0.1, -0.8, 0.2, 8.0]])


def _images(n, h=128, w=160, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


def test_train_step_losses_and_gradients():
    torch.manual_seed(0)
    model = build_model()
    model.train()
    samples = [make_sample(POSES), make_sample(POSES[:1])]
    losses = model(**make_batch(model, _images(2), samples), mode='loss')
    for name in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_dof', 'loss_points'):
        assert name in losses, name
    total, log_vars = model.parse_losses(losses)
    assert all(np.isfinite(float(v.detach())) for v in log_vars.values())
    total.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == []
    # frozen stem / stage 1 and frozen BatchNorm, as torchvision trainable_layers=3
    assert not model.backbone.conv1.weight.requires_grad
    assert not model.backbone.layer1[0].conv1.weight.requires_grad
    assert model.backbone.layer2[0].conv1.weight.requires_grad
    assert not model.backbone.layer2[0].bn1.weight.requires_grad


def test_pose_branch_sees_only_positive_rois(monkeypatch):
    """The pose branch runs on exactly the sampled positives, counted here by hand: the
    proposals (and the GT boxes, added as proposals) overlapping a GT face by IoU >=
    ``pos_iou_thr``, at most ``num * pos_fraction`` of them."""
    from torchvision.ops import box_iou
    model = build_model()
    model.train()
    seen = {}
    head = model.roi_head.bbox_head
    original_pose, original_loss = head.forward_pose, model.roi_head.loss

    def spy(x):
        seen['pose'] = x.shape[0]
        return original_pose(x)

    def record(x, rpn_results_list, batch_data_samples):
        seen['proposals'] = rpn_results_list[0].bboxes.detach().clone()
        return original_loss(x, rpn_results_list, batch_data_samples)

    monkeypatch.setattr(head, 'forward_pose', spy)
    monkeypatch.setattr(model.roi_head, 'loss', record)
    batch = make_batch(model, _images(1), [make_sample(POSES)])
    model(**batch, mode='loss')
    cfg = model.roi_head.train_cfg
    gt = batch['data_samples'][0].gt_instances.bboxes
    candidates = seen['proposals']
    if cfg.sampler.add_gt_as_proposals:
        candidates = torch.cat([gt, candidates])
    overlapping = int((box_iou(candidates, gt).max(1).values >= cfg.assigner.pos_iou_thr).sum())
    expected = min(overlapping, int(cfg.sampler.num * cfg.sampler.pos_fraction))
    assert expected >= len(POSES) and seen['pose'] == expected


def test_overfitting_one_image_lowers_loss_dof():
    torch.manual_seed(0)
    # pose statistics as the dataset converter would compute them (GT-box-local poses)
    boxes = make_sample(POSES).gt_instances.bboxes.double()
    local = global_to_local(POSES.double(), boxes, (128, 160))
    model = build_model(**{
        'model.roi_head.bbox_head.bbox_coder.pose_mean': local.mean(0).tolist(),
        'model.roi_head.bbox_head.bbox_coder.pose_stddev': [0.3] * 5 + [1.0]})
    model.train()
    batch = make_batch(model, _images(1), [make_sample(POSES)])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.002, momentum=0.9)
    history = []
    for _ in range(60):
        losses = model(**batch, mode='loss')
        total, log_vars = model.parse_losses(losses)
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 10)
        opt.step()
        history.append(float(log_vars['loss_dof'].detach()))
    # positives are re-sampled every step, so compare averages
    first, last = np.mean(history[:3]), np.mean(history[-10:])
    assert last < 0.2 * first, (first, last, history)


def test_predict_outputs_poses_in_original_frame_for_non_isotropic_scale():
    torch.manual_seed(0)
    model = build_model()
    model.eval()
    # a resized input of 128x160 that came from a 200x400 original (sx=0.4, sy=0.64)
    sample = make_sample(POSES, img_shape=(128, 160), ori_shape=(200, 400),
                         scale_factor=(0.4, 0.64))
    with torch.no_grad():
        out = model(**make_batch(model, _images(1), [sample], training=False), mode='predict')
    pred = out[0].pred_instances
    assert set(pred.keys()) >= {'bboxes', 'scores', 'labels', 'poses'}
    assert pred.poses.shape == (len(pred), 6)
    # decode the same raw outputs without rescale and compare projections
    with torch.no_grad():
        batch = make_batch(model, _images(1), [sample], training=False)
        raw = model.predict(batch['inputs'], batch['data_samples'], rescale=False)[0]
        raw = raw.pred_instances
    if len(pred) == 0:
        pytest.skip('random model kept no detection')
    points = torch.from_numpy(load_reference_points()).double()
    ok = raw.poses[:, 5] > 0.5
    small = project_pose_points(points, raw.poses[ok].double(), (128, 160))
    big = project_pose_points(points, pred.poses[ok].double(), (200, 400))
    centre_small = small.mean(1) / small.new_tensor([0.4, 0.64])
    torch.testing.assert_close(big.mean(1), centre_small, atol=1.0, rtol=1e-3)
    torch.testing.assert_close(pred.bboxes, raw.bboxes / raw.bboxes.new_tensor([0.4, 0.64] * 2))


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def test_decode_has_no_python_loop_over_proposals():
    coder = PoseBBoxCoder(pose_mean=[0.1] * 6, pose_stddev=[0.5] * 6)
    counts = []
    for n in (10, 1000):
        boxes = torch.rand(n, 4) * 100
        boxes[:, 2:] += boxes[:, :2] + 10
        preds = torch.randn(n, 6) * 0.1
        with _OpCounter() as counter:
            poses, bboxes = coder.decode(boxes, preds, (480, 640))
        assert poses.shape == (n, 6) and bboxes.shape == (n, 4)
        counts.append(counter.count)
    assert counts[0] == counts[1]
