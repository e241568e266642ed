"""The verified stack: mmcv with compiled ops, mmdet configs through `mmdet::`, resume."""
import textwrap

import mmcv
import mmdet
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import HOOKS, init_default_scope
from mmengine.runner import Runner
from mmengine.structures import InstanceData

import img2pose_mm


def test_versions_and_compiled_ops():
    assert mmcv.__version__ == '2.1.0'
    assert mmdet.__version__ == '3.3.0'
    from mmcv.ops import RoIAlign, nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]
    feat = torch.arange(16.).view(1, 1, 4, 4)
    out = RoIAlign((1, 1), spatial_scale=1.0, sampling_ratio=1, aligned=False)(
        feat, torch.tensor([[0., 1., 1., 2., 2.]]))
    # one sample at the centre (1.5, 1.5) of the bin: bilinear of 5, 6, 9, 10
    assert out.item() == pytest.approx(7.5)


def test_mmdet_faster_rcnn_r18_from_config_predicts_on_cpu(tmp_path):
    """A config inheriting mmdet's own through `mmdet::` (pkg_resources, setuptools<70)."""
    cfg_file = tmp_path / 'faster_rcnn_r18.py'
    cfg_file.write_text(textwrap.dedent("""
        _base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
        model = dict(backbone=dict(depth=18, init_cfg=None),
                     neck=dict(in_channels=[64, 128, 256, 512]))
    """))
    cfg = Config.fromfile(str(cfg_file))
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    model = MODELS.build(cfg.model).eval()
    assert type(model.roi_head.bbox_roi_extractor.roi_layers[0]).__module__.startswith('mmcv.ops')
    sample = DetDataSample(metainfo=dict(img_shape=(96, 128), ori_shape=(96, 128),
                                         scale_factor=(1.0, 1.0)))
    data = model.data_preprocessor(dict(inputs=[torch.randint(0, 255, (3, 96, 128),
                                                              dtype=torch.uint8)],
                                        data_samples=[sample]), False)
    with torch.no_grad():
        out = model(**data, mode='predict')
    assert isinstance(out[0].pred_instances, InstanceData)
    assert out[0].pred_instances.bboxes.shape[1] == 4


class _TinyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = inputs if isinstance(inputs, torch.Tensor) else torch.stack(inputs)
        if mode == 'loss':
            return dict(loss=(self.linear(x) - 1).pow(2).mean())
        return [self.linear(x)]


class _Data(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return dict(inputs=torch.full((3, ), float(i)))


@HOOKS.register_module(name='FoundationResumeSpy', force=True)
class _ResumeSpy(Hook):
    """Records the iteration and optimizer momentum seen by the first resumed step."""
    seen = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if not self.seen:
            opt = runner.optim_wrapper.optimizer
            self.seen.update(iter=runner.iter, momentum=[
                opt.state[p]['momentum_buffer'].clone() for p in runner.model.parameters()])


def _runner(work_dir, max_iters, resume=False):
    return Runner(
        custom_hooks=[dict(type='FoundationResumeSpy')] if resume else None,
        model=_TinyModel(), work_dir=str(work_dir), resume=resume,
        train_dataloader=dict(dataset=_Data(), sampler=dict(type='DefaultSampler', shuffle=False),
                              batch_size=2, collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmengine',
        # one name per runner: two runners started within a second would share the
        # timestamp name and mmengine would warn about the reused instance name
        experiment_name=f'resume_{max_iters}_{int(resume)}')


def test_checkpoint_resume_under_torch_weights_only(tmp_path):
    """mmengine saves HistoryBuffers and numpy objects; torch >= 2.6 loads weights_only."""
    assert int(torch.__version__.split('.')[0]) >= 2
    _runner(tmp_path, 1).train()
    ckpt = tmp_path / 'iter_1.pth'
    state = torch.load(ckpt, weights_only=True)          # no unsafe globals needed
    assert state['meta']['iter'] == 1
    saved = [s['momentum_buffer'] for s in state['optimizer']['state'].values()]
    _ResumeSpy.seen.clear()
    runner = _runner(tmp_path, 2, resume=True)
    runner.train()
    assert runner.iter == 2 and _ResumeSpy.seen['iter'] == 1
    # the resumed optimizer starts from the saved momentum, not from zero
    for a, b in zip(saved, _ResumeSpy.seen['momentum']):
        torch.testing.assert_close(a, b)
    resumed = torch.load(tmp_path / 'iter_2.pth', weights_only=True)
    assert resumed['message_hub']['log_scalars']['train/loss'].data[0].size == 2
    assert img2pose_mm.__version__
    assert np.isfinite(resumed['message_hub']['log_scalars']['train/loss'].mean())
