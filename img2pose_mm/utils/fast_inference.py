"""Fast-inference switches for a built img2pose model (see docs/benchmarks.md)."""
from __future__ import annotations

import warnings
from typing import List

import torch
from torch import nn

from .precision import native_bf16


def _to_float(out):
    """Floating tensors (also inside tuples and lists, e.g. a dense head's per-level maps)
    as float32."""
    if isinstance(out, torch.Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float(o) for o in out)
    return out


#: The hook handles :func:`autocast_forward` keeps on a module (to replace them).
_HOOKS_ATTR = '_img2pose_autocast_hooks'


def autocast_forward(module: nn.Module, device_type: str, dtype: torch.dtype,
                     float_outputs: bool = True) -> nn.Module:
    """Run every call of ``module`` under autocast, without touching its ``forward``.

    A forward pre-hook enters ``torch.autocast(device_type, dtype)`` and a forward hook
    (``always_call``: also when the forward raises) leaves it, casting floating outputs
    back to float32 with ``float_outputs``. Called again on the same module, it replaces
    its hooks.
    """
    for handle in getattr(module, _HOOKS_ATTR, ()):
        handle.remove()
    entered: List[torch.autocast] = []

    def enter(mod: nn.Module, args) -> None:
        region = torch.autocast(device_type=device_type, dtype=dtype)
        region.__enter__()
        entered.append(region)

    def leave(mod: nn.Module, args, output):
        if entered:
            entered.pop().__exit__(None, None, None)
        return _to_float(output) if float_outputs and output is not None else None

    setattr(module, _HOOKS_ATTR, (module.register_forward_pre_hook(enter),
                                  module.register_forward_hook(leave, always_call=True)))
    return module


def enable_bf16_inference(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Run backbone + neck and the pose heads' layers in bfloat16 (autocast), in place.

    Each part runs inside an autocast region (:func:`autocast_forward`); the neck's and
    the heads' outputs come back as float32, so the RPN, RoIAlign, pose decoding and NMS
    stay in float32 (docs/device_paths.md, "bfloat16 inference"). On a device without
    native bfloat16 (:func:`native_bf16`) it warns: emulated bfloat16 is slower there.
    """
    device_type = next(model.parameters()).device.type
    if not native_bf16(device_type):
        warnings.warn(f'bfloat16 inference on a {device_type} without native bfloat16 (on '
                      'CPUs: AVX512-BF16 or AMX) is emulated and slower than float32',
                      stacklevel=2)
    neck = getattr(model, 'neck', None)
    # the backbone's bfloat16 maps go straight into the neck's autocast region
    autocast_forward(model.backbone, device_type, dtype, float_outputs=neck is None)
    if neck is not None:
        autocast_forward(neck, device_type, dtype)
    roi_head = getattr(model, 'roi_head', None)
    heads = roi_head.bbox_head if roi_head is not None else model.bbox_head
    for head in heads if isinstance(heads, nn.ModuleList) else [heads]:
        autocast_forward(head, device_type, dtype)
    return model


def compile_backbone(model: nn.Module, **compile_kwargs) -> nn.Module:
    """``torch.compile`` the backbone and the neck (the bulk of the compute), in place."""
    model.backbone = torch.compile(model.backbone, **compile_kwargs)
    model.neck = torch.compile(model.neck, **compile_kwargs)
    return model
