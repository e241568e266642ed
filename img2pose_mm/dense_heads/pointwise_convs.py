"""1x1 convolutions of one NCHW map as one batched matrix product (the forward of the
RPN head's score and box convs on the CPU)."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor, nn


def pointwise_product(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``weight @ x[b].view(C, H * W) + bias`` for every image of an NCHW-contiguous map."""
    b, c, h, w = x.shape
    return torch.baddbmm(bias.view(1, -1, 1).expand(b, -1, h * w), weight.expand(b, -1, -1),
                         x.view(b, c, h * w)).view(b, -1, h, w)


def pointwise_convs(x: Tensor, convs: Sequence[nn.Conv2d]) -> Tuple[Tensor, ...]:
    """The outputs of several 1x1 convolutions (with bias) of one NCHW-contiguous map,
    computed as one batched matrix product ``W @ x[b].view(C, H * W)`` (the same numbers up
    to float rounding; faster backward on CPUs, docs/extending.md)."""
    weight = torch.cat([conv.weight.flatten(1) for conv in convs])
    bias = torch.cat([conv.bias for conv in convs])
    return pointwise_product(x, weight, bias).split([conv.out_channels for conv in convs], 1)


def is_plain_conv(m: nn.Module) -> bool:
    """A plain ``nn.Conv2d`` with bias: stride 1, one group, zero padding mode."""
    return (type(m) is nn.Conv2d and m.stride == (1, 1) and m.groups == 1
            and m.bias is not None and m.padding_mode == 'zeros')


def is_pointwise_conv(m: nn.Module) -> bool:
    """A plain 1x1 ``nn.Conv2d`` with bias (stride 1, no padding, one group)."""
    return is_plain_conv(m) and m.kernel_size == (1, 1) and m.padding == (0, 0)


__all__ = ['pointwise_convs', 'pointwise_product', 'is_pointwise_conv', 'is_plain_conv']
