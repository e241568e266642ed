"""Weights in the memory layout of the activations they convolve."""
from __future__ import annotations

import torch
from torch import Tensor


def weight_like(weight: Tensor, x: Tensor) -> Tensor:
    """``weight`` contiguous in ``x``'s layout (channels-last or NCHW).

    oneDNN reorders a weight whose layout differs from its input's, and a convolution's
    output follows its weight's layout: a weight computed at run time (folded BatchNorm,
    composed kernels) in a permuted layout would make every later convolution of an
    NCHW training batch run channels-last, whose backward is several times slower on
    CPUs."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return weight.contiguous(memory_format=torch.channels_last)
    return weight.contiguous()
