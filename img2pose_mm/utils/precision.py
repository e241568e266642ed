"""Keep pose geometry in full precision when the network runs under autocast."""
from __future__ import annotations

import functools
from typing import Callable

import torch

_REDUCED = (torch.float16, torch.bfloat16)


def _upcast(value):
    if isinstance(value, torch.Tensor) and value.dtype in _REDUCED:
        return value.float()
    return value


def full_precision(fn: Callable) -> Callable:
    """Run ``fn`` with autocast disabled and float16/bfloat16 tensor arguments in float32.

    Pose geometry (rotation vectors, SVD, projections of points hundreds of pixels
    away) loses too much in reduced precision, and some of it (SVD, determinants) has
    no bfloat16 kernel on CPU.
    """

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        args = tuple(_upcast(a) for a in args)
        kwargs = {k: _upcast(v) for k, v in kwargs.items()}
        if torch.compiler.is_exporting():
            # an exported graph has no autocast to turn off (and the context would wrap
            # the geometry in an autocast region of the graph)
            return fn(*args, **kwargs)
        with torch.autocast('cpu', enabled=False):
            if torch.cuda.is_available():
                with torch.autocast('cuda', enabled=False):
                    return fn(*args, **kwargs)
            return fn(*args, **kwargs)

    return wrapped


def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` computes bfloat16 natively (not emulated in software).

    CUDA: the device's own answer. CPU: oneDNN's check for AVX512-BF16 or AMX; without
    them bfloat16 convolutions are emulated and run tens of times slower than float32
    (measured: 30x for the demo's backbone on an AVX2-only EPYC).
    """
    if device_type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == 'cpu':
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return True
