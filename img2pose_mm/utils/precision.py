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
