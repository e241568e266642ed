"""WIDER FACE average precision (easy / medium / hard), the official protocol."""
from __future__ import annotations

import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ..functional import (
    WIDER_SETTINGS,
    WIDER_THRESH_NUM,
    WIDERImageGT,
    evaluate_wider,
    load_wider_ground_truth,
    write_wider_submission,
    xyxy_to_xywh,
)
from ._utils import event_and_name, get_field, sample_name, to_numpy


@METRICS.register_module()
class WIDERFaceMetric(BaseMetric):
    """Official WIDER FACE evaluation: AP at IoU 0.5 for the easy/medium/hard settings.

    The protocol and the ground truth without ``gt_dir``: docs/conventions.md, "How the
    metrics score". Images are identified by ``(event, name)``: the ``event``/``name``
    meta keys when the pipeline packs them, else the last folder and stem of
    ``img_path``. With ``gt_dir`` the data samples need no annotations and images of the
    .mat files without predictions count as images without detections.

    Args:
        gt_dir: folder of the official ground-truth ``.mat`` files, or None.
        settings: settings to report (default easy, medium, hard; ``('all',)`` without
            ``gt_dir``).
        iou_thr: IoU threshold of a match (official 0.5).
        thresh_num: number of score thresholds (official 1000).
        outfile_dir: when set, write the submission layout there
            (``<outfile_dir>/<event>/<name>.txt``: image file name, count, then
            ``x1 y1 w h score`` lines).
        format_only: only write the submission, compute nothing (test set).
        collect_device: ``'cpu'`` or ``'gpu'`` for collecting results across ranks.
        prefix: metric name prefix (default ``'wider_face'``).
    """
    default_prefix: Optional[str] = 'wider_face'

    def __init__(self,
                 gt_dir: Optional[str] = None,
                 settings: Optional[Sequence[str]] = None,
                 iou_thr: float = 0.5,
                 thresh_num: int = WIDER_THRESH_NUM,
                 outfile_dir: Optional[str] = None,
                 format_only: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if format_only and outfile_dir is None:
            raise ValueError('WIDERFaceMetric: format_only=True needs outfile_dir')
        self.gt_dir = gt_dir
        if settings is None:
            settings = WIDER_SETTINGS if gt_dir is not None else ('all',)
        self.settings = tuple(settings)
        if gt_dir is None and self.settings != ('all',):
            raise ValueError("WIDERFaceMetric without gt_dir evaluates the single setting "
                             f"'all', got settings={self.settings}")
        self.iou_thr = iou_thr
        self.thresh_num = thresh_num
        self.outfile_dir = outfile_dir
        self.format_only = format_only
        self._ground_truth: Optional[List[WIDERImageGT]] = None

    # ------------------------------------------------------------------ process
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each image's detections (and its faces when no .mat is used)."""
        for data_sample in data_samples:
            event, name, file_name = event_and_name(data_sample)
            pred = data_sample['pred_instances']
            bboxes = to_numpy(pred['bboxes']).reshape(-1, 4)
            scores = to_numpy(pred['scores']).reshape(-1)
            result = dict(event=event, name=name, file_name=file_name,
                          dets=np.concatenate([bboxes, scores[:, None]], 1))
            if self.gt_dir is None and not self.format_only:
                result['gt_boxes'], result['gt_keep'] = self._sample_faces(data_sample)
            self.results.append(result)

    @staticmethod
    def _sample_faces(data_sample: dict):
        """``x, y, w, h`` faces of a sample and whether each counts."""
        instances = data_sample.get('instances')
        if instances is not None:
            boxes = [inst['bbox'] for inst in instances if 'bbox' in inst]
            if len(boxes) != len(instances):
                raise KeyError(f'{sample_name(data_sample)}: every instance needs a `bbox`')
            keep = [not inst.get('ignore_flag', 0) for inst in instances]
            boxes = to_numpy(boxes).reshape(-1, 4)
            return xyxy_to_xywh(boxes), np.asarray(keep, dtype=bool)
        gt = data_sample.get('gt_instances')
        if gt is None:
            raise KeyError(f'{sample_name(data_sample)}: WIDERFaceMetric without gt_dir needs '
                           'the `instances` meta key or `gt_instances` in the data sample')
        counted = to_numpy(get_field(gt, 'bboxes', np.zeros((0, 4)))).reshape(-1, 4)
        ignored = to_numpy(get_field(data_sample.get('ignored_instances'), 'bboxes',
                                     np.zeros((0, 4)))).reshape(-1, 4)
        boxes = np.concatenate([counted, ignored])
        keep = np.concatenate([np.ones(len(counted), bool), np.zeros(len(ignored), bool)])
        return xyxy_to_xywh(boxes), keep

    # ------------------------------------------------------------------ compute
    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Write the submission if asked, then compute AP per setting."""
        logger: MMLogger = MMLogger.get_current_instance()
        predictions = {}
        for res in results:
            key = (res['event'], res['name'])
            if key in predictions:
                raise ValueError(f'WIDERFaceMetric: image {key[0]}/{key[1]} was predicted '
                                 'twice (duplicate dataset entries?)')
            predictions[key] = res['dets']
        if self.outfile_dir is not None:
            for res in results:
                write_wider_submission(self.outfile_dir, res['event'], res['name'],
                                       res['dets'], res['file_name'])
            logger.info(f'WIDER FACE submission of {len(results)} images written to '
                        f'{osp.abspath(self.outfile_dir)}')
        if self.format_only:
            return {}

        if self.gt_dir is not None:
            ground_truth = self._load_ground_truth()
            known = {(g.event, g.name) for g in ground_truth}
            missing = len(known - set(predictions))
            extra = sorted(set(predictions) - known)
            if missing:
                logger.warning(f'WIDERFaceMetric: {missing} of {len(known)} ground-truth '
                               'images have no predictions (counted as no detections)')
            if extra:
                logger.warning(f'WIDERFaceMetric: {len(extra)} predicted images are not in '
                               f'the ground truth and are ignored, e.g. {extra[0]}')
        else:
            ground_truth = [WIDERImageGT(res['event'], res['name'], res['gt_boxes'],
                                         {'all': res['gt_keep']}) for res in results]

        # detections as x, y, w, h, score
        preds_xywh = {k: np.concatenate([xyxy_to_xywh(v[:, :4]), v[:, 4:]], 1)
                      for k, v in predictions.items()}
        aps = evaluate_wider(preds_xywh, ground_truth, self.settings, self.iou_thr,
                             self.thresh_num)
        logger.info('WIDER FACE AP: ' + ', '.join(f'{k} {v:.4f}' for k, v in aps.items()))
        return aps

    def _load_ground_truth(self) -> List[WIDERImageGT]:
        if self._ground_truth is None:
            self._ground_truth = load_wider_ground_truth(self.gt_dir, self.settings)
        return self._ground_truth
