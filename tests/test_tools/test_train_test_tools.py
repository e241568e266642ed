"""mmdet-style tools: distributed train/test (gloo on the CPU, nccl on GPUs), --resume,
--bf16. The same tests on CPU-only and CUDA machines; only the launcher's process count
and backend differ (:func:`num_procs`)."""
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import img2pose_mm  # noqa: F401
from tools.analysis_tools.tiny_config import make_tiny_data, write_tiny_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp('tiny') / 'data')


@pytest.fixture(scope='module')
def tiny_config(tiny_data):
    return write_tiny_config(tiny_data, tiny_data.parent / 'tiny_two_stage.py')


@pytest.fixture(scope='module')
def tiny_one_stage_config(tiny_data):
    return write_tiny_config(tiny_data, tiny_data.parent / 'tiny_one_stage.py', one_stage=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def num_procs() -> int:
    """Processes of tools/dist_*.sh: two on the CPU (gloo), one per GPU up to two (nccl)."""
    return min(2, torch.cuda.device_count()) if torch.cuda.is_available() else 2


def run_tool(args, timeout=400):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()), OMP_NUM_THREADS='1')
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def test_dist_train_and_dist_test(tiny_config, tmp_path):
    work = tmp_path / 'work'
    procs = str(num_procs())
    out = run_tool(['bash', 'tools/dist_train.sh', str(tiny_config), procs, '--work-dir',
                    str(work)])
    assert 'Epoch(train)' in out
    ckpt = work / 'epoch_1.pth'
    assert ckpt.exists()
    out = run_tool(['bash', 'tools/dist_test.sh', str(tiny_config), str(ckpt), procs,
                    '--work-dir', str(tmp_path / 'test'), '--out', str(tmp_path / 'preds.pkl')])
    assert 'pose/mae' in out and 'face/all' in out
    with open(tmp_path / 'preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 2 and 'poses' in preds[0]['pred_instances']

    # the bf16 switch of tools/test.py, single process
    out = run_tool([sys.executable, 'tools/test.py', str(tiny_config), str(ckpt), '--bf16',
                    '--work-dir', str(tmp_path / 'test_bf16'),
                    '--out', str(tmp_path / 'preds_bf16.pkl')])
    assert 'bf16 inference' in out and 'pose/mae' in out
    with open(tmp_path / 'preds_bf16.pkl', 'rb') as f:
        preds_bf16 = pickle.load(f)
    assert sorted(p['img_id'] for p in preds_bf16) == sorted(p['img_id'] for p in preds)
    assert preds_bf16[0]['pred_instances']['poses'].dtype == torch.float32


def test_resume_continues_iterations_and_optimizer(tiny_config, tmp_path):
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.registry import HOOKS
    from mmengine.runner import Runner

    work = tmp_path / 'work'
    run_tool([sys.executable, 'tools/train.py', str(tiny_config), '--work-dir', str(work),
              '--cfg-options', 'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None'])
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 2          # 4 images, batch 2

    @HOOKS.register_module(name='ResumeSpyHook', force=True)
    class Spy(Hook):
        seen = {}

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if 'iter' not in self.seen:
                self.seen['iter'] = runner.iter
                opt = runner.optim_wrapper.optimizer
                # the demo recipe uses AdamW: its moment estimates must come back
                self.seen['exp_avg'] = [opt.state[p]['exp_avg'].clone()
                                        for g in opt.param_groups for p in g['params']
                                        if p in opt.state]

    cfg = Config.fromfile(str(tiny_config))
    cfg.work_dir = str(work)
    cfg.train_cfg.max_epochs = 2
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.resume = True
    cfg.load_from = None       # = tools/train.py --resume: the latest checkpoint
    cfg.custom_hooks = [dict(type='ResumeSpyHook')]
    # a name of its own: an earlier runner of this process holds mmengine's 'visualizer'
    cfg.visualizer.name = f'visualizer_{tmp_path.name}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert Spy.seen['iter'] == 2
    saved = [s['exp_avg'] for s in ckpt['optimizer']['state'].values()]
    assert len(saved) == len(Spy.seen['exp_avg']) > 0
    for a, b in zip(saved, Spy.seen['exp_avg']):
        torch.testing.assert_close(a, b)
    assert runner.iter == 4
    assert (work / 'last_checkpoint').read_text().strip().endswith('epoch_2.pth')


def test_one_stage_model_through_the_tools_and_the_api(tiny_one_stage_config, tiny_data,
                                                       tmp_path):
    """The one-stage model (DoFRetinaHead) with the unchanged tools and Img2Pose."""
    work = tmp_path / 'work'
    out = run_tool(['bash', 'tools/dist_train.sh', str(tiny_one_stage_config), str(num_procs()),
                    '--work-dir', str(work)])
    assert 'Epoch(train)' in out and 'loss_dof' in out and 'loss_points' in out
    ckpt = work / 'epoch_1.pth'
    state = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    # the head owns the pose coder: statistics and face travel in the checkpoint
    torch.testing.assert_close(state['bbox_head.bbox_coder.pose_mean'], torch.from_numpy(
        np.load(tiny_data / 'train_pose_mean.npy')).float())
    assert 'bbox_head.bbox_coder.face_model.points_68' in state

    out = run_tool([sys.executable, 'tools/test.py', str(tiny_one_stage_config), str(ckpt),
                    '--bf16', '--work-dir', str(tmp_path / 'test'),
                    '--out', str(tmp_path / 'preds.pkl')])
    assert 'bf16 inference' in out and 'pose/mae' in out and 'face/all' in out
    with open(tmp_path / 'preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 2
    pred = preds[0]['pred_instances']
    assert pred['poses'].dtype == torch.float32 and pred['poses'].shape == (len(pred['scores']), 6)

    from img2pose_mm.apis import Img2Pose
    image = np.asarray(Image.open(tiny_data / 'images' / 'val' / '000000.jpg').convert('RGB'))
    detector = Img2Pose(config=tiny_one_stage_config, checkpoint=ckpt, device='cpu',
                        score_threshold=0.0, max_faces=5)
    assert detector.face_model is detector.model.bbox_head.bbox_coder.face_model
    assert detector.cfg.model.test_cfg.score_thr == 0.0
    faces = detector.detect_faces(image)
    assert 0 < len(faces) <= 5
    assert all(np.isfinite(f['pose']).all() and len(f['keypoints']) == 5 for f in faces)
