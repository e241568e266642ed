"""Speed of both models per stage: inference and a training step, interleaved.

Stages are timed by wrapping methods of the models' module instances (their own code runs
unchanged) with :func:`tools.analysis_tools.benchmark.timed_call`, the benchmark's timer;
memory is the peak resident set above the level before each call.
"""
from __future__ import annotations

import functools
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from tools.analysis_tools.benchmark import timed_call

from .batches import original_batch, ours_batch
from .detectors import OriginalDetector, OursDetector

CPU = torch.device('cpu')
INFERENCE_STAGES = ('preprocess', 'backbone+FPN', 'RPN', 'RoI features', 'heads',
                    'decode+NMS')
TRAIN_STAGES = ('forward+loss', 'backward', 'optimizer')


class StageTimer:
    """Wall time per named stage, measured by wrapping methods of module instances (the
    wrapped object's own code runs unchanged; nothing is re-implemented)."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}
        self._wrapped: List[Tuple[object, str]] = []

    def wrap(self, obj, method: str, stage: str) -> None:
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            result, ms = timed_call(functools.partial(inner, *args, **kwargs), CPU)
            self.seconds[stage] = self.seconds.get(stage, 0.0) + ms / 1e3
            return result

        setattr(obj, method, timed)
        self._wrapped.append((obj, method))

    def unwrap(self) -> None:
        for obj, method in self._wrapped:
            delattr(obj, method)
        self._wrapped = []


def _time_original_inference(original: OriginalDetector, timer: StageTimer) -> None:
    net = original.net
    roi = net.roi_heads
    timer.wrap(net.transform, 'forward', 'preprocess')
    timer.wrap(net.backbone, 'forward', 'backbone+FPN')
    timer.wrap(net.rpn, 'forward', 'RPN')
    for module in (roi.box_roi_pool, roi.class_roi_pool):      # the original pools twice
        timer.wrap(module, 'forward', 'RoI features')
    for module in (roi.box_head, roi.box_predictor, roi.class_head, roi.class_predictor):
        timer.wrap(module, 'forward', 'heads')
    timer.wrap(roi, 'postprocess_detections', 'decode+NMS')


def _time_ours_inference(ours: OursDetector, timer: StageTimer) -> None:
    model = ours.api.model
    roi = model.roi_head
    timer.wrap(model.data_preprocessor, 'forward', 'preprocess')
    timer.wrap(model, 'extract_feat', 'backbone+FPN')
    timer.wrap(model.rpn_head, 'predict', 'RPN')
    timer.wrap(roi.bbox_roi_extractor, 'forward', 'RoI features')
    for method in ('forward_cls', 'forward_pose'):    # the two branches (test: no forward)
        timer.wrap(roi.bbox_head, method, 'heads')
    timer.wrap(roi.bbox_head, 'predict_by_feat', 'decode+NMS')


def _timed_step(forward, optimizer, timer: StageTimer) -> None:
    """One training step (``forward()`` returns the total loss), its forward + losses,
    backward and optimizer times added to ``timer`` under :data:`TRAIN_STAGES`."""
    optimizer.zero_grad()
    loss, forward_ms = timed_call(forward, CPU)
    _, backward_ms = timed_call(loss.backward, CPU)
    _, step_ms = timed_call(optimizer.step, CPU)
    for stage, ms in zip(TRAIN_STAGES, (forward_ms, backward_ms, step_ms)):
        timer.seconds[stage] = timer.seconds.get(stage, 0.0) + ms / 1e3


def _original_train_step(original: OriginalDetector, batch: List[np.ndarray], optimizer,
                         timer: StageTimer) -> None:
    h, w = batch[0].shape[:2]
    original.net.set_max_min_size(max(h, w), min(h, w))
    images, targets = original_batch(batch)
    _timed_step(lambda: sum(original.model(images, targets).values()), optimizer, timer)


def _ours_train_step(ours: OursDetector, batch: List[np.ndarray], optimizer,
                     timer: StageTimer) -> None:
    model = ours.api.model
    raw = ours_batch(batch)

    def forward() -> torch.Tensor:
        data = model.data_preprocessor(raw, True)
        return model.parse_losses(model.loss(data['inputs'], data['data_samples']))[0]
    _timed_step(forward, optimizer, timer)


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every ``interval`` s by a
    thread reading ``/proc/self/statm`` (Linux; ``peak_mb`` stays ``None`` elsewhere)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak_mb: Optional[float] = None

    @staticmethod
    def _rss_mb() -> Optional[float]:
        try:
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
        except (OSError, ValueError, IndexError):
            return None

    def __enter__(self) -> PeakMemory:
        import threading
        self._base = self._rss_mb()
        self._high = self._base
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                rss = self._rss_mb()
                if rss is not None and rss > self._high:
                    self._high = rss
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        if self._base is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._base is not None:
            self._thread.join()
            self.peak_mb = max(self._high, self._rss_mb() or 0.0) - self._base


def _median_stages(runs: List[Dict[str, float]]) -> Dict[str, float]:
    keys = {k for run in runs for k in run}
    return {k: float(np.median([run.get(k, 0.0) for run in runs])) for k in keys}


def run_speed(original: OriginalDetector, ours: OursDetector,
              images: List[Tuple[str, np.ndarray]], repeats: int, train: bool = True,
              train_batch: int = 2) -> str:
    """Median seconds per image and stage of both models, interleaved (original, ours,
    original, ...) after one warm-up call each, so that both see the same machine load;
    the peak memory above the level before each call (MB, largest over the calls).
    ``train`` adds training steps of ``train_batch`` images (the first images, repeated
    when there are fewer) with the same synthetic targets on both sides: forward +
    losses, backward, SGD step (lr 0 so both stay where they are: momentum 0.9, weight
    decay 5e-4 as the original)."""
    sides = (('original', original, _time_original_inference),
             ('img2pose_mm', ours, _time_ours_inference))
    timers = {}
    for side, detector, hook in sides:
        timers[side] = StageTimer()
        hook(detector, timers[side])
        for _, rgb in images:
            detector(rgb)                                  # warm-up (not timed)
    runs = {side: [] for side, _, _ in sides}
    peaks = {side: 0.0 for side, _, _ in sides}
    for _ in range(repeats):
        for _, rgb in images:
            for side, detector, _ in sides:
                timers[side].seconds = {}
                with PeakMemory() as mem:
                    _, total_ms = timed_call(functools.partial(detector, rgb), CPU)
                runs[side].append(dict(timers[side].seconds, total=total_ms / 1e3))
                peaks[side] = max(peaks[side], mem.peak_mb or 0.0)
    results = {side: dict(_median_stages(runs[side]), **{'peak MB': peaks[side]})
               for side in runs}
    for timer in timers.values():
        timer.unwrap()
    if train:
        batch = [rgb for _, rgb in (images * train_batch)[:train_batch]]
        models = dict(original=original.model, img2pose_mm=ours.api.model)
        steps = dict(original=_original_train_step, img2pose_mm=_ours_train_step)
        detectors = dict(original=original, img2pose_mm=ours)
        optimizers, states = {}, {}
        for side, model in models.items():
            params = [p for p in model.parameters() if p.requires_grad]
            optimizers[side] = torch.optim.SGD(params, lr=0.0, momentum=0.9, weight_decay=5e-4)
            states[side] = {k: v.clone() for k, v in model.state_dict().items()}
            model.train()
        train_runs = {side: [] for side in models}
        train_peaks = {side: 0.0 for side in models}
        torch.manual_seed(0)
        try:
            for i in range(repeats + 1):                   # the first round warms up
                for side in models:
                    timer = StageTimer()
                    with PeakMemory() as mem:
                        steps[side](detectors[side], batch, optimizers[side], timer)
                    if i:
                        train_runs[side].append(
                            dict(timer.seconds, **{'train total': sum(timer.seconds.values())}))
                        train_peaks[side] = max(train_peaks[side], mem.peak_mb or 0.0)
        finally:
            for side, model in models.items():
                model.load_state_dict(states[side])
                model.eval()
        for side in models:
            results[side].update(_median_stages(train_runs[side]),
                                 **{'train peak MB': train_peaks[side]})
    stages = list(INFERENCE_STAGES) + ['total', 'peak MB'] + (
        list(TRAIN_STAGES) + ['train total', 'train peak MB'] if train else [])
    lines = [f'{"stage (s)":<20}{"original":>12}{"img2pose_mm":>14}{"ratio":>9}']
    for stage in stages:
        a, b = results['original'].get(stage), results['img2pose_mm'].get(stage)
        ratio = f'{a / b:>9.2f}' if a and b else f'{"":>9}'
        lines.append(f'{stage:<20}{a if a is not None else float("nan"):>12.3f}'
                     f'{b if b is not None else float("nan"):>14.3f}{ratio}')
    h, w = images[0][1].shape[:2]
    lines.append(f'ratio = original / img2pose_mm; medians of {repeats} interleaved round(s) '
                 f'after one warm-up, {len(images)} image(s) ({w}x{h} first), '
                 f'{original.net.rpn._post_nms_top_n["testing"]} proposals; training: batch '
                 f'{train_batch}; peak MB = resident memory above the level before the call; '
                 f'{torch.get_num_threads()} CPU thread(s)')
    return '\n'.join(lines)

