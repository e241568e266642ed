"""Seeded random weights in the layout of the original img2pose checkpoint.

How the names, shapes and numbers are chosen: docs/fidelity.md, "The comparison tool".
"""
from __future__ import annotations

import functools
import math
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

#: Box-local pose statistics used with seeded weights (the decode needs some): a face
#: about frontal, centred in its box, at the box-local depth of a face that fills it.
SEEDED_POSE_MEAN = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 4.5])
SEEDED_POSE_STDDEV = np.array([0.25, 0.35, 0.2, 0.1, 0.1, 0.6])

#: The scikit-image photos of the fidelity checks (``camera`` is greyscale).
SAMPLE_PHOTOS = ('astronaut', 'camera', 'coffee', 'chelsea', 'rocket')

_REPRESENTATION = 1024
_POOLED = 256 * 7 * 7

#: The RoI heads of the original (docs/reference.md §2): two MLPs and two predictors.
ROI_HEAD_SHAPES: Dict[str, Tuple[int, ...]] = OrderedDict([
    ('roi_heads.box_head.fc6.weight', (_REPRESENTATION, _POOLED)),
    ('roi_heads.box_head.fc6.bias', (_REPRESENTATION,)),
    ('roi_heads.box_head.fc7.weight', (_REPRESENTATION, _REPRESENTATION)),
    ('roi_heads.box_head.fc7.bias', (_REPRESENTATION,)),
    ('roi_heads.box_predictor.dof_pred.0.weight', (256, _REPRESENTATION)),
    ('roi_heads.box_predictor.dof_pred.0.bias', (256,)),
    ('roi_heads.box_predictor.dof_pred.1.weight', (256,)),
    ('roi_heads.box_predictor.dof_pred.1.bias', (256,)),
    ('roi_heads.box_predictor.dof_pred.1.running_mean', (256,)),
    ('roi_heads.box_predictor.dof_pred.1.running_var', (256,)),
    ('roi_heads.box_predictor.dof_pred.1.num_batches_tracked', ()),
    ('roi_heads.box_predictor.dof_pred.3.weight', (12, 256)),
    ('roi_heads.box_predictor.dof_pred.3.bias', (12,)),
    ('roi_heads.class_head.fc6.weight', (_REPRESENTATION, _POOLED)),
    ('roi_heads.class_head.fc6.bias', (_REPRESENTATION,)),
    ('roi_heads.class_head.fc7.weight', (_REPRESENTATION, _REPRESENTATION)),
    ('roi_heads.class_head.fc7.bias', (_REPRESENTATION,)),
    ('roi_heads.class_predictor.cls_score.weight', (2, _REPRESENTATION)),
    ('roi_heads.class_predictor.cls_score.bias', (2,)),
])

POSE_LAYER_BOUND = 1.8
CLASS_LAYER_BOUND = 8.0
FACE_LOGIT_OFFSET = -3.0

_ANCHOR_SIZES = ((16,), (32,), (64,), (128,), (256,))
_ASPECT_RATIOS = ((0.5, 1.0, 2.0),) * 5


def torchvision_modules(depth: int = 18):
    """The original's backbone + FPN and RPN as torchvision builds them today (random,
    untouched weights): the source of the key names and shapes, and a reference
    implementation to load :func:`original_state_dict` into (see :func:`load_torchvision`).

    Built under a forked global RNG, so calling it does not change ``torch``'s global
    random state.
    """
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
    from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

    with torch.random.fork_rng(devices=[]):
        backbone = resnet_fpn_backbone(backbone_name=f'resnet{depth}', weights=None,
                                       trainable_layers=3)
        anchors = AnchorGenerator(sizes=_ANCHOR_SIZES, aspect_ratios=_ASPECT_RATIOS)
        head = RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0])
    rpn = RegionProposalNetwork(
        anchors, head, fg_iou_thresh=0.5, bg_iou_thresh=0.3, batch_size_per_image=256,
        positive_fraction=0.5, pre_nms_top_n=dict(training=6000, testing=6000),
        post_nms_top_n=dict(training=2000, testing=1000), nms_thresh=0.4)
    return backbone.eval(), rpn.eval()


def _legacy_name(key: str) -> str:
    """torchvision < 0.13 names (what the release was saved with): plain FPN convs and
    the original's own RPN head (``rpn.head.conv``)."""
    if '.fpn.inner_blocks.' in key or '.fpn.layer_blocks.' in key:
        return key.replace('.0.weight', '.weight').replace('.0.bias', '.bias')
    return key.replace('rpn.head.conv.0.0.', 'rpn.head.conv.')


def original_key_shapes(depth: int = 18, legacy_names: bool = True
                        ) -> Dict[str, Tuple[int, ...]]:
    """Every key of the original checkpoint's ``fpn_model`` with its shape, in order."""
    return OrderedDict(_key_shapes(int(depth), bool(legacy_names)))


@functools.cache
def _key_shapes(depth: int, legacy_names: bool) -> Tuple[Tuple[str, Tuple[int, ...]], ...]:
    backbone, rpn = torchvision_modules(depth)
    shapes: Dict[str, Tuple[int, ...]] = OrderedDict()
    for prefix, module in (('backbone.', backbone), ('rpn.', rpn)):
        for key, value in module.state_dict().items():
            key = prefix + key
            shapes[_legacy_name(key) if legacy_names else key] = tuple(value.shape)
    shapes.update(ROI_HEAD_SHAPES)
    return tuple(shapes.items())


def _fan_in(shape: Sequence[int]) -> int:
    return int(np.prod(shape[1:])) if len(shape) > 1 else 1


def _draw(key: str, shape: Tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """One tensor of the seeded checkpoint (the scales: docs/fidelity.md)."""
    def normal(std):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std

    def uniform(low, high):
        return torch.rand(shape, generator=gen, dtype=torch.float32) * (high - low) + low

    name = key.rsplit('.', 1)[-1]
    if name == 'num_batches_tracked':
        return torch.tensor(0, dtype=torch.long)
    if key.startswith('backbone.body.'):
        if 'bn' in key or 'downsample.1' in key:        # FrozenBatchNorm2d statistics
            return {'weight': lambda: uniform(0.4, 0.9), 'bias': lambda: uniform(-0.1, 0.1),
                    'running_mean': lambda: uniform(-0.2, 0.2),
                    'running_var': lambda: uniform(1.0, 3.0)}[name]()
        return normal(math.sqrt(2.0 / _fan_in(shape)))    # convolutions (no bias)
    if key.startswith('backbone.fpn.'):
        if name == 'bias':
            return uniform(-0.05, 0.05)
        return normal(math.sqrt(1.0 / _fan_in(shape)))
    if key.startswith('rpn.head.'):
        if name == 'bias':
            return uniform(-0.1, 0.1) if 'cls_logits' in key else torch.zeros(shape)
        std = 0.05 if 'cls_logits' in key else 0.01
        return normal(std)
    if key.startswith('roi_heads.'):
        if '.dof_pred.1.' in key:                          # BatchNorm1d of the pose branch
            return {'weight': lambda: uniform(0.5, 1.5), 'bias': lambda: uniform(-0.1, 0.1),
                    'running_mean': lambda: uniform(-0.1, 0.1),
                    'running_var': lambda: uniform(0.5, 1.5)}[name]()
        fan_in = _fan_in(ROI_HEAD_SHAPES[key.rsplit('.', 1)[0] + '.weight'])
        bound = math.sqrt(6.0 / fan_in)                    # He-uniform: keeps the scale
        if '.dof_pred.3.' in key:                          # small last pose layer
            bound = POSE_LAYER_BOUND / math.sqrt(fan_in)
        if '.cls_score.' in key:                           # spread face probabilities
            bound = CLASS_LAYER_BOUND / math.sqrt(fan_in)
        value = uniform(-bound, bound)
        if key.endswith('cls_score.bias'):                 # rows [background, face]
            value += torch.tensor([0.0, FACE_LOGIT_OFFSET])
        return value
    raise KeyError(f'no initialisation rule for {key}')


def original_state_dict(seed: int = 0, depth: int = 18, legacy_names: bool = True,
                        module_prefix: bool = False) -> Dict[str, torch.Tensor]:
    """Seeded random weights under the original's key names (``fpn_model``).

    Args:
        seed: the generator seed; the same seed gives bit-identical tensors.
        depth: ResNet depth (18, 50 or 101; the RoI heads do not depend on it).
        legacy_names: the names the release was saved with (torchvision < 0.13: plain
            FPN convs ``inner_blocks.N.weight``, RPN ``rpn.head.conv.weight``); ``False``:
            today's torchvision names (``inner_blocks.N.0.weight``, ``conv.0.0.weight``).
            Both convert and both load into today's torchvision modules.
        module_prefix: prefix every key with ``module.`` (a checkpoint saved from
            ``DataParallel``/DDP, as the release is).
    """
    gen = torch.Generator().manual_seed(int(seed))
    state: Dict[str, torch.Tensor] = OrderedDict()
    for key, shape in original_key_shapes(depth, legacy_names).items():
        # the RPN keys draw the same numbers under both namings
        state[key] = _draw(key if 'rpn.head.conv.0.0.' in key else
                           key.replace('rpn.head.conv.', 'rpn.head.conv.0.0.'), shape, gen)
    if module_prefix:
        state = OrderedDict(('module.' + k, v) for k, v in state.items())
    return state


def original_checkpoint(seed: int = 0, **kwargs) -> Dict[str, Dict[str, torch.Tensor]]:
    """``{'fpn_model': original_state_dict(seed, **kwargs)}``: the release file's layout."""
    return {'fpn_model': original_state_dict(seed, **kwargs)}


def save_original_checkpoint(path: str, seed: int = 0, **kwargs) -> str:
    """Write :func:`original_checkpoint` to ``path`` (folders created); returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(original_checkpoint(seed, **kwargs), path)
    return path


def load_torchvision(state: Dict[str, torch.Tensor], depth: int = 18):
    """torchvision's backbone + FPN and RPN (:func:`torchvision_modules`) holding the
    backbone/RPN part of an original state dict (either naming, ``module.`` or not)."""
    backbone, rpn = torchvision_modules(depth)
    plain = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                        for k, v in state.items())
    for prefix, module in (('backbone.', backbone), ('rpn.', rpn)):
        part = OrderedDict((k[len(prefix):], v.clone()) for k, v in plain.items()
                           if k.startswith(prefix))
        module.load_state_dict(part, strict=True)    # torchvision upgrades legacy names
    return backbone.eval(), rpn.eval()


def sample_photos(names: Sequence[str] = SAMPLE_PHOTOS) -> List[Tuple[str, np.ndarray]]:
    """scikit-image photos as ``(name, RGB uint8 (H, W, 3))``; greyscale ones have their
    channel repeated (what PIL's ``convert('RGB')`` does)."""
    from skimage import data
    return [(name, as_rgb(np.asarray(getattr(data, name)()))) for name in names]


def as_rgb(image: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 array: grey repeated into three channels, alpha dropped."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f'expected a uint8 image, got {image.dtype}')
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'expected a grey, RGB or RGBA image, got shape {image.shape}')
    return np.ascontiguousarray(image)


def native_size_pipeline(meta_keys: Optional[Sequence[str]] = None) -> List[dict]:
    """A test pipeline that keeps the image at its size (``PoseResize(scale_factor=1.0)``):
    the network input is the photo itself, as the original run with
    ``min_size = min(h, w)``, ``max_size = max(h, w)``."""
    keys = tuple(meta_keys or ('img_id', 'img_path', 'ori_shape', 'img_shape',
                               'scale_factor'))
    return [dict(type='mmdet.LoadImageFromNDArray'),
            dict(type='PoseResize', scale_factor=1.0, keep_ratio=True),
            dict(type='PackFacePoseInputs', meta_keys=keys)]


__all__ = ['SEEDED_POSE_MEAN', 'SEEDED_POSE_STDDEV', 'SAMPLE_PHOTOS', 'ROI_HEAD_SHAPES',
           'torchvision_modules', 'original_key_shapes', 'original_state_dict',
           'original_checkpoint', 'save_original_checkpoint', 'load_torchvision',
           'sample_photos', 'as_rgb', 'native_size_pipeline']
