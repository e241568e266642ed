"""One training run on each side: the same weights, batch and sampled anchors / RoIs
(docs/fidelity.md, "Training")."""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from tools.model_converters.img2pose_to_mmdet import map_key

from .batches import Faces, original_batch, ours_batch, synthetic_faces
from .sampling import Pick, ReplaySampler, record_original_samples

REPO = Path(__file__).resolve().parents[2]

#: The original's loss names -> img2pose_mm's.
LOSS_NAMES = dict(loss_objectness='loss_rpn_cls', loss_rpn_box_reg='loss_rpn_bbox',
                  loss_classifier='loss_cls', loss_dof_reg='loss_dof', loss_points='loss_points')
#: img2pose_mm's configs compared: the default (CPU speed branches on) and all-stock.
CONFIGS = dict(fast='configs/img2pose_r18.py', stock='configs/img2pose_r18_stock.py')
#: The original's train.py recipe.
ORIGINAL_SGD = dict(lr=1e-3, momentum=0.9, weight_decay=5e-4)
ORIGINAL_CLIP = 10.0
TRAINING_PHOTOS = ('astronaut', 'chelsea')
TRAINING_SIZE = (160, 224)             # H, W: multiples of 32 (no padding on either side)
TRAINING_FACES = (4, 3)                # synthetic faces per image


@dataclass
class Trace:
    """What one side computed: per-step loss terms, first gradients, final parameters."""
    losses: List[Dict[str, float]] = field(default_factory=list)
    grads: Dict[str, torch.Tensor] = field(default_factory=dict)
    params: Dict[str, torch.Tensor] = field(default_factory=dict)
    initial: Dict[str, torch.Tensor] = field(default_factory=dict)
    picks: Dict[str, List[Pick]] = field(default_factory=dict)
    notes: Dict[str, float] = field(default_factory=dict)


def training_inputs(names: Sequence[str] = TRAINING_PHOTOS, size: Tuple[int, int] = TRAINING_SIZE,
                    counts: Sequence[int] = TRAINING_FACES) -> Tuple[List[np.ndarray], List[Faces]]:
    """Small RGB photos (bilinear resize to ``size``) and ``counts`` synthetic faces each."""
    from PIL import Image

    from .original_layout import sample_photos
    h, w = size
    images = [np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
              for _, rgb in sample_photos(names)]
    faces = [synthetic_faces((h, w), count=n) for n in counts]
    return images, faces


def to_ours(named: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Original names and layouts -> img2pose_mm's (the converter's rules)."""
    out = {}
    for key, value in named.items():
        new, transform = map_key(key[len('module.'):] if key.startswith('module.') else key)
        if new is None:
            raise KeyError(f'no img2pose_mm name for {key}')
        out[new] = transform(value) if transform is not None else value
    return out


def original_trace(net, images: List[np.ndarray], faces: List[Faces], steps: int,
                   seed: int = 0) -> Trace:
    """Train the original ``net`` (a ``FasterDoFRCNN``; trained in place) ``steps`` steps
    on the batch, its samplers drawing from ``torch.manual_seed(seed)``."""
    h, w = images[0].shape[:2]
    net.set_max_min_size(max(h, w), min(h, w))
    net.train()
    params = list(net.parameters())
    optimizer = torch.optim.SGD(params, **ORIGINAL_SGD)
    inputs, targets = original_batch(images, faces)
    trace = Trace(initial=to_ours({k: p.detach().clone() for k, p in net.named_parameters()
                                   if p.requires_grad}))
    torch.manual_seed(seed)
    with record_original_samples(net) as picks, warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for step in range(steps):
            optimizer.zero_grad()
            losses = net(inputs, targets)
            trace.losses.append({LOSS_NAMES[k]: float(v) for k, v in losses.items()})
            sum(losses.values()).backward()
            if step == 0:
                trace.grads = to_ours({k: p.grad.detach().clone() for k, p in
                                       net.named_parameters() if p.grad is not None})
            torch.nn.utils.clip_grad_norm_(params, ORIGINAL_CLIP)
            optimizer.step()
    trace.picks = picks
    trace.params = to_ours({k: p.detach().clone() for k, p in net.named_parameters()
                            if p.requires_grad})
    return trace


def build_ours(config: str, checkpoint: str, cfg_options: Optional[dict] = None):
    """An img2pose_mm model from ``config`` holding ``checkpoint``, in training mode, and
    the config's ``optim_wrapper`` (SGD, clipping) over it."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import img2pose_mm  # noqa: F401  (registers the modules)
    cfg = Config.fromfile(str(REPO / config) if not Path(config).is_file() else config)
    cfg.merge_from_dict({'model.roi_head.bbox_head.bbox_coder.pose_mean': None,
                         'model.roi_head.bbox_head.bbox_coder.pose_stddev': None,
                         **(cfg_options or {})})
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter('ignore')
        load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.train()
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


def ours_trace(model, optim_wrapper, images: List[np.ndarray], faces: List[Faces], steps: int,
               picks: Optional[Dict[str, List[Pick]]] = None, seed: int = 0) -> Trace:
    """Train ``model`` ``steps`` steps on the batch with ``optim_wrapper``; its samplers
    replay ``picks`` (the original's draws), or draw from ``torch.manual_seed(seed)``
    when ``picks`` is ``None`` (not equalised: the negative control)."""
    raw = ours_batch(images, faces)
    trace = Trace(initial={k: p.detach().clone() for k, p in model.named_parameters()
                           if p.requires_grad})
    torch.manual_seed(seed)
    replays = [contextlib.nullcontext(), contextlib.nullcontext()]
    if picks is not None:
        replays = [ReplaySampler(model.rpn_head.sampler, picks['rpn']),
                   ReplaySampler(model.roi_head.bbox_sampler, picks['roi'])]
    with replays[0], replays[1], warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for step in range(steps):
            optim_wrapper.zero_grad()
            data = model.data_preprocessor(raw, True)
            losses = model.loss(data['inputs'], data['data_samples'])
            total, logged = model.parse_losses(losses)     # the training loop's total
            trace.losses.append({k: float(v) for k, v in logged.items()
                                 if k.startswith('loss_')})
            optim_wrapper.backward(total)
            if step == 0:
                trace.grads = {k: p.grad.detach().clone() for k, p in model.named_parameters()
                               if p.grad is not None}
            optim_wrapper.step()
    if picks is not None:
        trace.notes = dict(max_box_error=replays[1].max_box_error,
                           label_mismatches=replays[0].label_mismatches
                           + replays[1].label_mismatches)
    trace.params = {k: p.detach().clone() for k, p in model.named_parameters()
                    if p.requires_grad}
    return trace
