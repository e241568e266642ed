"""A validation loop that also measures the training losses on the validation set.

img2pose's recipe steps its learning rate (ReduceLROnPlateau) and stops early on the
*validation loss*, which mmdet's ValLoop does not compute (it only predicts).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Union

import torch
from mmdet.registry import LOOPS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import scale_boxes
from mmengine.dist import all_reduce
from mmengine.evaluator import Evaluator
from mmengine.model import is_model_wrapper
from mmengine.runner import ValLoop
from mmengine.runner.amp import autocast
from torch.utils.data import DataLoader


def gt_to_input_frame(data_sample: DetDataSample) -> DetDataSample:
    """A copy of ``data_sample`` whose GT boxes/poses moved from ``ori_shape`` to ``img_shape``."""
    sample = data_sample.clone()
    sx, sy = sample.metainfo['scale_factor'][:2]
    for field in ('gt_instances', 'ignored_instances'):
        if field not in sample:
            continue
        instances = sample.get(field)
        if 'bboxes' in instances and len(instances) > 0:
            instances.bboxes = scale_boxes(instances.bboxes, (sx, sy))
        if 'poses' in instances and len(instances) > 0:
            instances.poses = instances.poses.clone().rescale_(
                (sx, sy), sample.metainfo['img_shape'][:2])
    return sample


@LOOPS.register_module()
class ValLossLoop(ValLoop):
    """:class:`ValLoop` that adds the mean validation losses to the metrics.

    For every batch the model runs in ``loss`` mode (eval mode, no gradients, so
    BatchNorm statistics are untouched); the per-component means over the whole
    validation set (summed across ranks in distributed runs) are added to the
    metrics as ``loss`` (the total) and ``loss_*`` — keys that ``ReduceOnPlateauLR``,
    ``EarlyStoppingHook`` and ``CheckpointHook(save_best='loss')`` can monitor.

    mmdet's test pipelines load annotations *after* the resize, so the GT of a
    validation sample lives in the original image while the network sees the
    resized one; with ``gt_frame='original'`` (default) the loop maps the GT boxes and
    poses into the network input frame before computing the losses (``'input'`` if
    the pipeline already did).

    Args:
        predict: also run the predictions through the evaluator (``False`` only
            measures the losses and needs no evaluator metrics).
        gt_frame: ``'original'`` or ``'input'``, see above.
    """

    def __init__(self, runner, dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List], fp16: bool = False,
                 predict: bool = True, gt_frame: str = 'original') -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        if gt_frame not in ('original', 'input'):
            raise ValueError(f"gt_frame must be 'original' or 'input', got {gt_frame!r}")
        self.predict = predict
        self.gt_frame = gt_frame
        self._loss_sums: Dict[str, float] = {}
        self._num_samples = 0

    def run(self) -> dict:
        """Run one validation epoch; returns the metrics including the losses."""
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        self.runner.model.eval()
        self._loss_sums, self._num_samples = {}, 0
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset)) if self.predict else {}
        metrics.update(self._mean_losses())
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict]) -> None:
        self.runner.call_hook('before_val_iter', batch_idx=idx, data_batch=data_batch)
        model = self.runner.model.module if is_model_wrapper(self.runner.model) \
            else self.runner.model
        outputs = []
        with autocast(enabled=self.fp16):
            if self.predict:
                outputs = self.runner.model.val_step(data_batch)
            data = model.data_preprocessor(data_batch, False)
            if self.gt_frame == 'original':
                data['data_samples'] = [gt_to_input_frame(ds) for ds in data['data_samples']]
            losses = model._run_forward(data, mode='loss')
        _, log_vars = model.parse_losses(losses)
        batch_size = len(data['data_samples'])
        for name, value in log_vars.items():
            if name.startswith('loss'):
                self._loss_sums[name] = self._loss_sums.get(name, 0.0) + float(value) * batch_size
        self._num_samples += batch_size
        if self.predict:
            self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook('after_val_iter', batch_idx=idx, data_batch=data_batch,
                              outputs=outputs)

    def _mean_losses(self) -> Dict[str, float]:
        names = sorted(self._loss_sums)
        totals = torch.tensor([self._loss_sums[n] for n in names] + [float(self._num_samples)],
                              dtype=torch.float64)
        all_reduce(totals)   # no-op outside distributed runs
        count = max(float(totals[-1]), 1.0)
        return {name: float(total) / count for name, total in zip(names, totals[:-1])}
