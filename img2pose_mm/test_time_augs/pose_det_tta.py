"""Test-time augmentation for 6DoF face detectors: un-flip, then vote with poses."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.models.test_time_augs import DetTTAModel
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from img2pose_mm.structures import flip_pose

from .box_voting import SCORE_MODES, pose_box_voting

DEFAULT_TTA_CFG = dict(iou_thr=0.6, score_mode='vote', offset=1, max_per_img=-1)


def unflip_predictions(bboxes: Tensor, poses: Optional[Tensor],
                       metainfo: dict) -> Tuple[Tensor, Optional[Tensor]]:
    """Bring one view's predictions back to the un-flipped original image.

    Predictions are in the ``ori_shape`` frame (the model rescales them); a
    horizontally flipped view maps back with ``x1' = W - x2``, ``x2' = W - x1`` and
    :func:`img2pose_mm.structures.flip_pose` with the original image shape.
    """
    if not metainfo.get('flip', False):
        return bboxes, poses
    direction = metainfo.get('flip_direction', 'horizontal')
    if direction != 'horizontal':
        raise ValueError(f'pose TTA supports horizontal flips only, got {direction!r} '
                         f'for {metainfo.get("img_path", "an image")}')
    if 'ori_shape' not in metainfo:
        raise KeyError('pose TTA needs `ori_shape` in the data sample meta to un-flip')
    ori_shape = metainfo['ori_shape']
    width = float(ori_shape[1])
    x1, y1, x2, y2 = bboxes.unbind(-1)
    bboxes = torch.stack([width - x2, y1, width - x1, y2], -1)
    if poses is not None:
        poses = flip_pose(poses, tuple(ori_shape[:2]))
    return bboxes, poses


@MODELS.register_module()
class PoseDetTTAModel(DetTTAModel):
    """Merge the views of :class:`mmcv.transforms.TestTimeAug` for pose detectors.

    Every view's ``pred_instances`` (``bboxes``, ``scores``, ``labels`` and, when all
    views have them, ``poses``; in the original image frame) are un-flipped
    (:func:`unflip_predictions`) and merged by score-weighted box voting that carries
    the poses (:func:`~img2pose_mm.test_time_augs.pose_box_voting`).

    Example::

        tta_model = dict(type='PoseDetTTAModel',
                         tta_cfg=dict(iou_thr=0.6, score_mode='vote', max_per_img=-1))

    Args:
        tta_cfg: ``iou_thr`` (0.6), ``score_mode`` (``'vote'`` or ``'max'``),
            ``offset`` (1: inclusive-pixel IoU as the original), ``max_per_img``
            (-1: keep all, as the original).
        module, data_preprocessor: as :class:`mmengine.model.BaseTTAModel`.
    """

    def __init__(self, tta_cfg: Optional[dict] = None, **kwargs) -> None:
        cfg = dict(DEFAULT_TTA_CFG)
        unknown = set(tta_cfg or {}) - set(cfg)
        if unknown:
            raise KeyError(f'PoseDetTTAModel: unknown tta_cfg keys {sorted(unknown)}; '
                           f'expected {sorted(cfg)}')
        cfg.update(tta_cfg or {})
        if cfg['score_mode'] not in SCORE_MODES:
            raise ValueError(f'tta_cfg.score_mode must be one of {SCORE_MODES}')
        super().__init__(tta_cfg=ConfigDict(cfg), **kwargs)

    def merge_preds(self, data_samples_list: Sequence[Sequence[DetDataSample]]
                    ) -> List[DetDataSample]:
        """Merge the views of each image (outer list: images, inner: views)."""
        return [self._merge_single_sample(list(views)) for views in data_samples_list]

    def _merge_single_sample(self, data_samples: List[DetDataSample]) -> DetDataSample:
        """One image: un-flip every view, concatenate, vote."""
        with_poses = all('poses' in ds.pred_instances for ds in data_samples)
        boxes, scores, labels, poses = [], [], [], []
        for ds in data_samples:
            pred = ds.pred_instances
            b, p = unflip_predictions(pred.bboxes, pred.poses if with_poses else None,
                                      ds.metainfo)
            boxes.append(b)
            scores.append(pred.scores)
            labels.append(pred.labels)
            if with_poses:
                poses.append(p)
        cfg = self.tta_cfg
        voted = pose_box_voting(torch.cat(boxes), torch.cat(scores),
                                torch.cat(poses) if with_poses else None, torch.cat(labels),
                                iou_thr=cfg.iou_thr, score_mode=cfg.score_mode,
                                offset=cfg.offset)
        keep = slice(None) if cfg.max_per_img is None or cfg.max_per_img < 0 \
            else slice(0, cfg.max_per_img)
        results = InstanceData(bboxes=voted.bboxes[keep], scores=voted.scores[keep],
                               labels=voted.labels[keep])
        if voted.poses is not None:
            results.poses = voted.poses[keep]
        # report on the un-flipped view so the sample's meta matches its predictions
        base = next((ds for ds in data_samples if not ds.metainfo.get('flip', False)),
                    data_samples[0])
        if base.metainfo.get('flip', False):
            base.set_metainfo(dict(flip=False, flip_direction=None))
        base.pred_instances = results
        return base
