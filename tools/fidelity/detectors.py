"""The two detectors of the side-by-side comparison, each at the image's native size."""
from __future__ import annotations

import contextlib
import sys
import warnings
from typing import Dict

import numpy as np
import torch

from .original import import_original
from .original_layout import native_size_pipeline


class OriginalDetector:
    """The original ``img2poseModel`` (depth 18) on the CPU, run at native size."""

    def __init__(self, repo: str, state: Dict[str, torch.Tensor], pose_mean: np.ndarray,
                 pose_stddev: np.ndarray, points_68: np.ndarray, points_5: np.ndarray,
                 proposals: int = 1000, score_thr: float = 0.05, frozen_bn_eps=None):
        mod = import_original(repo, 'img2pose')['img2pose']
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            self.wrapper = mod.img2poseModel(
                18, 800, 1333, device=torch.device('cpu'), pose_mean=pose_mean,
                pose_stddev=pose_stddev, threed_68_points=points_68, threed_5_points=points_5,
                rpn_post_nms_top_n_test=proposals)
        self.model = self.wrapper.fpn_model_without_ddp
        net = self.net = getattr(self.model, 'module', self.model)
        wanted = self.model.state_dict()
        prefix = 'module.' if next(iter(wanted)).startswith('module.') else ''
        plain = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
        self.model.load_state_dict({prefix + k: v for k, v in plain.items()}, strict=True)
        net.roi_heads.score_thresh = float(score_thr)
        if frozen_bn_eps is not None:         # e.g. 0.0: torchvision 0.8's FrozenBatchNorm2d
            for module in net.modules():
                if type(module).__name__ == 'FrozenBatchNorm2d':
                    module.eps = float(frozen_bn_eps)
        self.wrapper.evaluate()

    def __call__(self, rgb: np.ndarray) -> Dict[str, np.ndarray]:
        """Detections of an RGB uint8 image at its own size (float32 numpy)."""
        from torchvision.transforms.functional import to_tensor
        h, w = rgb.shape[:2]
        self.net.set_max_min_size(max(h, w), min(h, w))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            out = self.wrapper.predict([to_tensor(rgb)])[0]
        return dict(boxes=out['boxes'].float().numpy(), scores=out['scores'].float().numpy(),
                    poses=out['dofs'].float().numpy().reshape(-1, 6))



class OursDetector:
    """``Img2Pose(checkpoint=converted)`` (no config) at native size."""

    def __init__(self, checkpoint: str, proposals: int = 1000, score_thr: float = 0.05):
        from img2pose_mm.apis import Img2Pose
        self.api = Img2Pose(checkpoint=checkpoint, device='cpu', score_threshold=score_thr,
                            cfg_options={'test_dataloader.dataset.pipeline':
                                         native_size_pipeline(),
                                         'model.test_cfg.rpn.max_per_img': proposals})

    def __call__(self, rgb: np.ndarray) -> Dict[str, np.ndarray]:
        faces = self.api.detect_faces(rgb)
        return dict(boxes=np.array([f['box'] for f in faces], np.float32).reshape(-1, 4),
                    scores=np.array([f['confidence'] for f in faces], np.float32),
                    poses=np.array([f['pose'] for f in faces], np.float32).reshape(-1, 6))

