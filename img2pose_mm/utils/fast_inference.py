"""Fast-inference switches for a built img2pose model (see docs/benchmarks.md)."""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import nn


def _to_float(out):
    """Tensors (also inside tuples and lists, e.g. a dense head's per-level maps) as float32."""
    if isinstance(out, torch.Tensor):
        return out.float()
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float(o) for o in out)
    return out


def _autocast_float_outputs(fn: Callable, device_type: str, dtype: torch.dtype) -> Callable:
    """``fn`` under autocast, floating outputs cast back to float32."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with torch.autocast(device_type=device_type, dtype=dtype):
            out = fn(*args, **kwargs)
        return _to_float(out)

    return wrapped


def enable_bf16_inference(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Run backbone + neck and the pose heads' layers in bfloat16 (autocast).

    The heads are the RoI head's MLPs of a two-stage model or the dense head's convs
    of a one-stage one. Proposal decoding, RoIAlign, anchors, pose decoding and NMS stay
    in float32, so box coordinates and poses keep their precision (and mmcv's CPU NMS,
    which only takes float32, still works). Works on CPU and CUDA; modifies ``model`` in
    place.
    """
    device_type = next(model.parameters()).device.type
    model.extract_feat = _autocast_float_outputs(model.extract_feat, device_type, dtype)
    roi_head = getattr(model, 'roi_head', None)
    heads = roi_head.bbox_head if roi_head is not None else model.bbox_head
    for head in heads if isinstance(heads, nn.ModuleList) else [heads]:
        head.forward = _autocast_float_outputs(head.forward, device_type, dtype)
    return model


def compile_backbone(model: nn.Module, **compile_kwargs) -> nn.Module:
    """``torch.compile`` the backbone and the neck (the bulk of the compute), in place."""
    model.backbone = torch.compile(model.backbone, **compile_kwargs)
    model.neck = torch.compile(model.neck, **compile_kwargs)
    return model
