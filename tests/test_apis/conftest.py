"""Shared fixtures of the API tests: rendered faces with known poses, a random-weights
detector and a tiny checkpoint trained in the session."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from img2pose_mm.structures import FacePoses, matrix_to_rotvec, rotvec_to_matrix

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'tools' / 'dataset_converters'))
import make_synthetic_faces as msf  # noqa: E402
import synthetic_scenes as scenes  # noqa: E402

CONFIG = REPO / 'configs' / 'img2pose_r18.py'
# small and fast: few proposals (the API tests check plumbing, not accuracy)
FAST_CFG = {
    'model.test_cfg.rpn.nms_pre': 300,
    'model.test_cfg.rpn.max_per_img': 60,
}
TEST_SIZE = 128


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on a busy 2-core box several threads mostly wait."""
    with msf.torch_threads(1):
        yield


def camera_rotation(pitch: float, yaw: float, roll: float = 0.0) -> torch.Tensor:
    """Rotation vector of ``R_z(roll) R_y(yaw) R_x(pitch)`` (degrees, camera axes)."""
    mats = [rotvec_to_matrix(torch.tensor([v], dtype=torch.float64))[0]
            for v in ([0., 0., np.deg2rad(roll)], [0., np.deg2rad(yaw), 0.],
                      [np.deg2rad(pitch), 0., 0.])]
    return matrix_to_rotvec((mats[0] @ mats[1] @ mats[2])[None])[0]


def pose_at(rotvec: torch.Tensor, img_shape, centre_px, face_px: float) -> torch.Tensor:
    """A global pose with rotation ``rotvec`` whose origin projects to ``centre_px`` and
    whose reference face (extent about 2 units) is about ``face_px`` pixels wide."""
    h, w = img_shape
    focal = float(w + h)
    depth = 2.0 * focal / face_px
    tx = (centre_px[0] - w // 2) * depth / focal
    ty = (centre_px[1] - h // 2) * depth / focal
    return torch.cat([rotvec, torch.tensor([tx, ty, depth], dtype=torch.float64)])


def render(poses: torch.Tensor, img_shape, seed: int = 0) -> np.ndarray:
    """RGB uint8 image of the reference face at ``poses`` ``(N, 6)`` over a photo."""
    rng = np.random.default_rng(seed)
    background = scenes.random_background(rng, img_shape[0], img_shape[1], scenes.load_backgrounds())
    image, _ = scenes.compose_faces(background, poses.reshape(-1, 6))
    return image


def synthetic_images(num: int, size: int = TEST_SIZE, seed: int = 7, faces=(1, 2)):
    """``num`` generated (image, annotation) pairs of the synthetic dataset generator."""
    params = msf.SynthParams(seed=seed, min_size=size, max_size=size, min_faces=faces[0],
                             max_faces=faces[1], min_face=40, max_face_frac=0.6,
                             max_yaw=40, max_pitch=20, max_roll=20)
    with msf.torch_threads(1):
        return [scenes.generate_sample('train', i, params) for i in range(num)]


@pytest.fixture(scope='session')
def random_detector():
    """``Img2Pose`` with random weights (no checkpoint), keeps every face. Plausible
    pose statistics put the decoded faces in front of the camera, so that the boxes differ
    from proposal to proposal like a trained model's do."""
    from img2pose_mm.apis import Img2Pose
    coder = 'model.roi_head.bbox_head.bbox_coder.'
    options = {**FAST_CFG, coder + 'pose_mean': [0.0, 0.0, 0.0, 0.0, 0.0, 5.0],
               coder + 'pose_stddev': [0.2, 0.4, 0.2, 0.3, 0.3, 1.0]}
    with msf.torch_threads(1), pytest.warns(UserWarning, match='without a checkpoint'):
        torch.manual_seed(0)
        return Img2Pose(config=CONFIG, device='cpu', score_threshold=0.0, min_size=TEST_SIZE,
                        max_size=TEST_SIZE * 2, cfg_options=options)


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """A checkpoint trained for a few iterations on generated images (in memory), with
    the pose statistics of those images. Returns ``(path, pose_mean, pose_stddev)``."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import save_checkpoint
    from mmengine.runner.checkpoint import weights_to_cpu
    from mmengine.structures import InstanceData

    from img2pose_mm.structures import global_to_local

    with msf.torch_threads(1):
        data = synthetic_images(4)
        size = data[0][0].shape[:2]
        boxes = torch.tensor([b for _, a in data for b in a['bboxes']], dtype=torch.float64)
        poses = torch.tensor([p for _, a in data for p in a['poses']], dtype=torch.float64)
        local = global_to_local(poses, boxes, size)
        mean, std = local.mean(0), local.std(0).clamp_min(0.05)
        init_default_scope('mmdet')
        cfg = Config.fromfile(str(CONFIG))
        cfg.merge_from_dict({
            'model.backbone.frozen_stages': -1,
            'model.backbone.norm_cfg': dict(type='BN', requires_grad=True),
            'model.backbone.norm_eval': False,
            'model.train_cfg.rpn_proposal.nms_pre': 300,
            'model.train_cfg.rpn_proposal.max_per_img': 60,
            'model.train_cfg.rcnn.sampler.num': 32,
            'model.roi_head.bbox_head.bbox_coder.pose_mean': mean.tolist(),
            'model.roi_head.bbox_head.bbox_coder.pose_stddev': std.tolist()})
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        model.train()
        images = [torch.from_numpy(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)))
                  for img, _ in data]

        def sample(ann):
            s = DetDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size,
                                            batch_input_shape=size, scale_factor=(1., 1.)))
            s.gt_instances = InstanceData(
                bboxes=torch.tensor(ann['bboxes'], dtype=torch.float32),
                labels=torch.zeros(len(ann['bboxes']), dtype=torch.long),
                poses=FacePoses(torch.tensor(ann['poses'], dtype=torch.float32), img_shape=size))
            return s

        params = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.SGD(params, lr=0.003, momentum=0.9, weight_decay=5e-4)
        history = []
        for step in range(16):
            idx = [(2 * step) % len(data), (2 * step + 1) % len(data)]
            batch = model.data_preprocessor(
                dict(inputs=[images[i] for i in idx], data_samples=[sample(data[i][1]) for i in idx]),
                True)
            total, log_vars = model.parse_losses(model(**batch, mode='loss'))
            optim.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(params, 10)
            optim.step()
            history.append(float(log_vars['loss'].detach()))
        assert np.isfinite(history).all()
        path = tmp_path_factory.mktemp('ckpt') / 'tiny_img2pose.pth'
        meta = dict(dataset_meta={'classes': ('face',), 'palette': [(0, 255, 0)]},
                    losses=history)
        save_checkpoint({'meta': meta, 'state_dict': weights_to_cpu(model.state_dict())},
                        str(path))
    return path, mean.float(), std.float()


def env_one_thread() -> dict:
    """Environment for subprocesses: one thread per library."""
    return dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
