"""The PyTorch detector behind :class:`~img2pose_mm.apis.Img2Pose`: built and loaded by
:func:`mmdet.apis.init_detector`, with mmdet's COCO-classes warning filtered out (the
face classes are set here), and the face model it decodes with."""
from __future__ import annotations

import logging
import os
import warnings
from typing import Optional, Union

import torch
from mmengine.config import Config

from img2pose_mm.datasets.metainfo import FACE_METAINFO
from img2pose_mm.structures import FaceModel

from .model_config import load_config, lower_score_thr


def init_face_detector(config: Union[str, os.PathLike, Config, None],
                       checkpoint: Optional[str], cfg_options: Optional[dict], device: str,
                       score_threshold: float) -> torch.nn.Module:
    """The detector of ``config`` with ``checkpoint``'s weights, in eval mode on ``device``.

    Without a checkpoint the weights are the config's initialisation (with a warning:
    the detections are meaningless). The model's ``dataset_meta`` is the face classes.
    """
    from mmdet.apis import init_detector

    cfg = load_config(config, checkpoint, cfg_options)
    lower_score_thr(cfg, score_threshold)
    if checkpoint is None:
        warnings.warn('Img2Pose without a checkpoint: the weights are random and its '
                      'detections meaningless (pass checkpoint=<trained or converted .pth>)',
                      stacklevel=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        model = init_detector(cfg, checkpoint, palette='random', device=device)
    for item in caught:
        # mmdet falls back to COCO classes without checkpoint meta: ours are set below
        if 'COCO classes' not in str(item.message):
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    if checkpoint is None:
        # the config's initialisation, as training starts (its per-parameter report
        # is logged at INFO level: keep it out of the user's console)
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(max(logging.WARNING, level))
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
        model.eval()
    meta = dict(getattr(model, 'dataset_meta', None) or {})
    if tuple(meta.get('classes', ())) != FACE_METAINFO['classes']:
        meta = dict(FACE_METAINFO)
    if meta.get('palette') in (None, 'random'):
        meta['palette'] = FACE_METAINFO['palette']
    model.dataset_meta = meta
    return model


def detector_face_model(model: torch.nn.Module) -> FaceModel:
    """The face model a detector decodes with (its last pose head's; an exported graph's)."""
    if isinstance(getattr(model, 'face_model', None), FaceModel):
        return model.face_model
    head = getattr(getattr(model, 'roi_head', None), 'bbox_head', None)
    heads = list(head) if isinstance(head, (list, tuple, torch.nn.ModuleList)) else [head]
    heads.append(getattr(model, 'bbox_head', None))     # one-stage detectors
    for item in reversed(heads):
        coder = getattr(item, 'bbox_coder', None)
        if isinstance(getattr(coder, 'face_model', None), FaceModel):
            return coder.face_model
    return FaceModel()


__all__ = ['init_face_detector', 'detector_face_model']
