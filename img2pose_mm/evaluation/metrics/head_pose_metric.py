"""Head-pose mean absolute error (AFLW2000-3D / BIWI protocols, docs/reference.md §7)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from img2pose_mm.structures import euler_to_rotvec, rotation_angle_between, rotvec_to_euler

from ..functional import angle_errors, select_by_center, select_by_iou
from ._utils import get_field, sample_name, to_numpy

SELECTIONS = ('iou', 'center')
MISS_POLICIES = ('exclude', 'frontal')


@METRICS.register_module()
class HeadPoseMetric(BaseMetric):
    """Yaw / pitch / roll MAE (degrees) of the detection chosen for each face.

    Face selection, miss policies, the two protocols and the reported keys:
    docs/conventions.md, "How the metrics score".

    Ground truth per sample: ``gt_instances.poses`` (a ``FacePoses`` in the original image
    frame: load annotations after the resize), ``gt_instances.bboxes`` (for
    ``selection='iou'``) and the ``gt_euler`` meta key when the dataset gives it (pack it:
    ``PackFacePoseInputs(meta_keys=(..., 'gt_euler'))``). Predictions:
    ``pred_instances.bboxes``, ``scores`` and ``poses`` (global, original image frame).

    Args:
        selection: ``'iou'`` or ``'center'``.
        score_thr: detections must score above it (default 0.0 for ``'iou'``, 0.9 for
            ``'center'``).
        min_iou: ``'iou'`` selection needs an IoU above it (default 0: any overlap).
        iou_offset: 1 for the inclusive-pixel IoU of the original evaluation, 0 for
            continuous coordinates.
        miss_policy: ``'exclude'`` or ``'frontal'``.
        wrap_angles: wrap angle differences into [-180, 180].
        fallback: ``None``, ``'last'`` (``'iou'``) or ``'first'`` (``'center'``).
        collect_device, prefix: as :class:`mmengine.evaluator.BaseMetric`
            (default prefix ``'head_pose'``).
    """
    default_prefix: Optional[str] = 'head_pose'

    def __init__(self,
                 selection: str = 'iou',
                 score_thr: Optional[float] = None,
                 min_iou: float = 0.0,
                 iou_offset: float = 1.0,
                 miss_policy: str = 'exclude',
                 wrap_angles: bool = True,
                 fallback: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if selection not in SELECTIONS:
            raise ValueError(f'selection must be one of {SELECTIONS}, got {selection!r}')
        if miss_policy not in MISS_POLICIES:
            raise ValueError(f'miss_policy must be one of {MISS_POLICIES}, got {miss_policy!r}')
        self.selection = selection
        self.score_thr = score_thr if score_thr is not None else (
            0.0 if selection == 'iou' else 0.9)
        self.min_iou = min_iou
        self.iou_offset = iou_offset
        self.miss_policy = miss_policy
        self.wrap_angles = wrap_angles
        allowed = (None, 'last') if selection == 'iou' else (None, 'first')
        if fallback not in allowed:
            raise ValueError(f'fallback of the {selection!r} selection must be one of {allowed}, '
                             f'got {fallback!r}')
        self.fallback = fallback

    # ------------------------------------------------------------------ process
    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Select the answering detection for every ground-truth face."""
        for data_sample in data_samples:
            gt_angles, gt_translations, gt_boxes = self._ground_truth(data_sample)
            if len(gt_angles) == 0:
                continue
            pred = data_sample['pred_instances']
            if get_field(pred, 'poses') is None:
                raise KeyError(f'{sample_name(data_sample)}: pred_instances has no `poses`')
            boxes = to_numpy(pred['bboxes']).reshape(-1, 4)
            scores = to_numpy(pred['scores']).reshape(-1)
            poses = to_numpy(pred['poses']).reshape(-1, 6)
            if self.selection == 'iou':
                choice = select_by_iou(boxes, scores, gt_boxes, self.score_thr,
                                       self.min_iou, self.iou_offset, self.fallback)
            else:
                if len(gt_angles) != 1:
                    raise ValueError(f'{sample_name(data_sample)}: centre selection (BIWI) '
                                     f'expects one face per image, got {len(gt_angles)}')
                choice = np.array([select_by_center(boxes, scores, data_sample['ori_shape'],
                                                    self.score_thr, self.fallback)])
            pred_poses = np.full((len(gt_angles), 6), np.nan)
            hit = choice >= 0
            pred_poses[hit] = poses[choice[hit]]
            self.results.append(dict(gt_angles=gt_angles, gt_translations=gt_translations,
                                     pred_poses=pred_poses, hit=hit))

    def _ground_truth(self, data_sample: dict):
        """Faces with a ground-truth rotation: (pitch, yaw, roll) degrees ``(M, 3)``,
        translations ``(M, 3)`` (NaN where unknown) and boxes ``(M, 4)`` (NaN if absent).

        The angles are the ``gt_euler`` meta key when the dataset gives them (the
        benchmark's own angles), else the Euler angles of the valid GT poses.
        """
        gt = data_sample.get('gt_instances')
        poses = get_field(gt, 'poses')
        if poses is None:
            raise KeyError(f'{sample_name(data_sample)}: HeadPoseMetric needs '
                           '`gt_instances.poses`')
        translations = to_numpy(poses.tensor[:, 3:]).reshape(-1, 3)
        bboxes = get_field(gt, 'bboxes')
        boxes = (to_numpy(bboxes).reshape(-1, 4) if bboxes is not None
                 else np.full((len(poses), 4), np.nan))
        euler = data_sample.get('gt_euler')
        if euler is not None:
            angles = to_numpy(euler).reshape(-1, 3)
            if len(angles) != len(poses):
                raise ValueError(f'{sample_name(data_sample)}: {len(angles)} gt_euler rows for '
                                 f'{len(poses)} ground-truth faces')
            keep = np.isfinite(angles).all(1)
        else:
            keep = poses.valid.cpu().numpy()
            angles = rotvec_to_euler(poses.tensor[:, :3].double(), 'aflw').cpu().numpy()
        angles, translations, boxes = angles[keep], translations[keep], boxes[keep]
        if self.selection == 'iou' and not np.isfinite(boxes).all():
            raise ValueError(f'{sample_name(data_sample)}: IoU face selection needs a '
                             'ground-truth `bbox` for every face with a pose')
        return angles, translations, boxes

    # ------------------------------------------------------------------ compute
    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Mean absolute errors over the selected faces."""
        logger: MMLogger = MMLogger.get_current_instance()
        if not results:
            raise ValueError('HeadPoseMetric: no face with a ground-truth pose was evaluated')
        gt_angles = np.concatenate([r['gt_angles'] for r in results])
        gt_t = np.concatenate([r['gt_translations'] for r in results])
        pred = np.concatenate([r['pred_poses'] for r in results])
        hit = np.concatenate([r['hit'] for r in results])
        num_faces, num_miss = len(gt_angles), int((~hit).sum())

        rot_pred = pred[:, :3].copy()
        if self.miss_policy == 'frontal':
            rot_pred[~hit] = 0.0
            rows = np.ones(num_faces, dtype=bool)
        else:
            rows = hit
        metrics: Dict[str, float] = {}
        if rows.any():
            pr_rot = torch.from_numpy(rot_pred[rows])
            errors = angle_errors(rotvec_to_euler(pr_rot, 'aflw').numpy(), gt_angles[rows],
                                  self.wrap_angles)
            pitch, yaw, roll = errors.mean(0)
            gt_rot = euler_to_rotvec(torch.from_numpy(gt_angles[rows]), 'aflw')
            geodesic = torch.rad2deg(rotation_angle_between(gt_rot, pr_rot)).mean().item()
        else:
            pitch = yaw = roll = geodesic = float('nan')
            logger.warning('HeadPoseMetric: every face was missed, errors are NaN')
        metrics.update(yaw=float(yaw), pitch=float(pitch), roll=float(roll),
                       mae=float(np.mean([yaw, pitch, roll])), geodesic=float(geodesic))

        with_t = hit & np.isfinite(gt_t).all(1)
        if with_t.any():
            t_err = np.abs(pred[with_t, 3:] - gt_t[with_t]).mean(0)
            metrics.update(tx=float(t_err[0]), ty=float(t_err[1]), tz=float(t_err[2]),
                           t_mae=float(t_err.mean()), num_translation=int(with_t.sum()))
        metrics.update(num_faces=num_faces, num_miss=num_miss,
                       miss_rate=num_miss / num_faces)
        logger.info(f'Head pose ({self.selection} selection, {num_miss}/{num_faces} missed): '
                    f'yaw {metrics["yaw"]:.3f} pitch {metrics["pitch"]:.3f} '
                    f'roll {metrics["roll"]:.3f} MAE {metrics["mae"]:.3f}')
        return metrics
