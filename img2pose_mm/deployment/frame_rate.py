"""Frames per second of the ``Img2Pose`` API, PyTorch and onnxruntime side by side.

How frames are timed and why random weights are calibrated: docs/deployment.md, "Frames
per second".
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch


def sample_frame(height: int, width: int, photo: str = 'astronaut', noise: int = 3,
               seed: int = 0) -> np.ndarray:
    """A decoded RGB uint8 frame ``(height, width, 3)``: a scikit-image photo resized,
    plus uniform noise of ``noise`` grey levels (flat regions give no exact score ties)."""
    import cv2
    from skimage import data

    from img2pose_mm.apis import to_rgb_uint8
    image = cv2.resize(to_rgb_uint8(getattr(data, photo)()), (width, height),
                       interpolation=cv2.INTER_LINEAR).astype(np.int16)
    image += np.random.default_rng(seed).integers(-noise, noise + 1, image.shape,
                                                  dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


@torch.no_grad()
def face_logits(detector, frame: np.ndarray) -> torch.Tensor:
    """The one-stage head's face logits of every anchor of ``frame`` (RGB), flattened."""
    from mmengine.dataset import pseudo_collate

    model = detector.model
    data = pseudo_collate([detector.pipeline(dict(img=np.ascontiguousarray(frame[..., ::-1]),
                                                  img_id=0))])
    batch = model.data_preprocessor(data, False)
    cls_scores, _ = model.bbox_head(model.extract_feat(batch['inputs']))
    return torch.cat([score.float().flatten() for score in cls_scores])


@torch.no_grad()
def calibrate_face_scores(detector, frame: np.ndarray, candidates: int,
                          spread: float = 2.0) -> int:
    """Rescale and shift the face classifier of a one-stage PyTorch ``Img2Pose`` so that
    its logits over the anchors of ``frame`` have standard deviation ``spread`` and the
    ``candidates`` best anchors score above ``test_cfg.score_thr``.

    Default-initialised logits differ by about 1e-2 from anchor to anchor: float rounding
    would decide the order of the best anchors, not the weights. Returns the number of
    anchors of the frame above the threshold afterwards.
    """
    head = detector.model.bbox_head
    if not head.use_sigmoid_cls:
        raise ValueError('calibrate_face_scores needs a sigmoid classifier')
    layer = head.retina_cls
    logits = face_logits(detector, frame)
    scale = spread / float(logits.std().clamp(min=1e-12))
    layer.weight.mul_(scale)
    layer.bias.sub_(float(logits.mean())).mul_(scale)
    logits = face_logits(detector, frame)
    score_thr = float(head.test_cfg.get('score_thr', 0.05))
    target = float(torch.logit(torch.tensor(score_thr, dtype=torch.float64)))
    count = min(int(candidates), logits.numel())
    best = logits.topk(min(count + 1, logits.numel())).values
    # the threshold lands halfway between the count-th and the next logit
    upper = float(best[count - 1]) if count > 0 else float(best[0]) + 2.0
    lower = float(best[count]) if count < logits.numel() else upper - 2.0
    layer.bias.add_(target - (upper + lower) / 2)
    return int((face_logits(detector, frame) > target).sum())


@torch.no_grad()
def spread_objectness(detector, seed: int = 0) -> None:
    """Random RPN objectness weights of a two-stage PyTorch ``Img2Pose`` whose scores
    spread like a trained RPN's (logits about -3 +- 2) instead of the default
    initialisation's 0.5 +- 0.02, where float rounding alone reorders the top anchors."""
    layer = detector.model.rpn_head.rpn_cls
    layer.weight.copy_(torch.randn(layer.weight.shape,
                                   generator=torch.Generator().manual_seed(seed)))
    layer.bias.fill_(-4.0)


def time_backends(runs: Dict[str, Callable[[], object]], warmup: int, repeats: int,
                  block: int = 5) -> Dict[str, List[float]]:
    """Wall times (ms) of each callable: ``warmup`` calls each, then ``repeats`` calls
    each in turns of ``block`` consecutive calls."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: Dict[str, List[float]] = {name: [] for name in runs}
    while min(len(t) for t in times.values()) < repeats:
        for name, run in runs.items():
            for _ in range(min(block, repeats - len(times[name]))):
                start = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def summarise(times_ms: Sequence[float]) -> dict:
    """Median, mean and 90th percentile per frame (ms) and the median frame rate."""
    median = statistics.median(times_ms)
    return dict(median_ms=median, fps=1e3 / median, mean_ms=statistics.fmean(times_ms),
                p90_ms=float(np.percentile(times_ms, 90)), runs_ms=list(times_ms))


def face_arrays(faces: List[dict]) -> Dict[str, np.ndarray]:
    """The boxes ``(N, 4)``, confidences ``(N,)`` and poses ``(N, 6)`` of a face list."""
    return dict(boxes=np.asarray([f['box'] for f in faces], np.float64).reshape(-1, 4),
                scores=np.asarray([f['confidence'] for f in faces], np.float64),
                poses=np.asarray([f['pose'] for f in faces], np.float64).reshape(-1, 6))


def compare_faces(faces_a: List[dict], faces_b: List[dict]) -> dict:
    """How far two face lists of one frame are apart
    (:func:`~img2pose_mm.deployment.compare_detections` of their :func:`face_arrays`)."""
    from dataclasses import asdict

    from .comparison import compare_detections
    return asdict(compare_detections(face_arrays(faces_a), face_arrays(faces_b)))


__all__ = ['sample_frame', 'face_logits', 'calibrate_face_scores', 'spread_objectness',
           'time_backends',
           'summarise', 'compare_faces']
