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

    def __init__(self, repo: str, state: Dict[str, torch.Tensor], files: Dict[str, str],
                 proposals: int = 1000, score_thr: float = 0.05, frozen_bn_eps=None):
        """``files``: the ``pose_mean``, ``pose_stddev``, ``reference_points`` (68) and
        ``reference_points_5`` ``.npy`` files (:func:`~.inputs.resolve_weights`)."""
        mod = import_original(repo, 'img2pose')['img2pose']
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            self.wrapper = mod.img2poseModel(
                18, 800, 1333, device=torch.device('cpu'), pose_mean=np.load(files['pose_mean']),
                pose_stddev=np.load(files['pose_stddev']),
                threed_68_points=np.load(files['reference_points']),
                threed_5_points=np.load(files['reference_points_5']),
                rpn_post_nms_top_n_test=proposals)
        self.model = self.wrapper.fpn_model_without_ddp
        net = self.net = getattr(self.model, 'module', self.model)
        wanted = self.model.state_dict()
        prefix = 'module.' if next(iter(wanted)).startswith('module.') else ''
        self.model.load_state_dict({prefix + k: v for k, v in state.items()}, strict=True)
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
        from img2pose_mm.deployment.frame_rate import face_arrays
        return face_arrays(self.api.detect_faces(rgb))
