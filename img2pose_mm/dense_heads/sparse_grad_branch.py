"""A dense head's ``conv -> ReLU -> 1x1 convs`` branch whose backward works only where its
outputs have a gradient (docs/extending.md, "Inside the CPU speed branches")."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .pointwise_convs import is_plain_conv, is_pointwise_conv, pointwise_product

#: Above this fraction of positions with a gradient the backward runs densely (oneDNN /
#: cuDNN over the whole map) instead of gathering patches.
DENSE_FRACTION = 1 / 16


def _active_positions(grad_out: Tensor) -> Tensor:
    """Flat ``(b, y, x)`` indices of the positions where any channel of ``grad_out``
    ``(B, C, H, W)`` is non-zero."""
    return (grad_out != 0).any(1).flatten().nonzero().squeeze(1)


def _kernel_offsets(conv_weight: Tensor, padding: Tuple[int, int],
                    dilation: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """Input row and column offsets of every kernel tap, in the weight's (kh, kw) order."""
    kh, kw = conv_weight.shape[-2:]
    device = conv_weight.device
    dy = torch.arange(kh, device=device) * dilation[0] - padding[0]
    dx = torch.arange(kw, device=device) * dilation[1] - padding[1]
    return dy.repeat_interleave(kw), dx.repeat(kh)


class _ConvReLUPointwise(torch.autograd.Function):
    """``W @ relu(conv(x)) + b`` per position, split into the 1x1 convs' outputs."""

    @staticmethod
    def forward(ctx, x: Tensor, conv_weight: Tensor, conv_bias: Tensor, weight: Tensor,
                bias: Tensor, padding: Tuple[int, int], dilation: Tuple[int, int],
                splits: Tuple[int, ...]) -> Tuple[Tensor, ...]:
        hidden = F.conv2d(x, conv_weight, conv_bias, 1, padding, dilation).relu_().contiguous()
        ctx.save_for_backward(x, conv_weight, weight, hidden)
        ctx.padding, ctx.dilation, ctx.splits = padding, dilation, splits
        return pointwise_product(hidden, weight, bias).split(splits, dim=1)

    @staticmethod
    def backward(ctx, *grads: Tensor):
        x, conv_weight, weight, hidden = ctx.saved_tensors
        b, _, h, w = hidden.shape
        grad_out = torch.cat([hidden.new_zeros(b, n, h, w) if g is None else g
                              for g, n in zip(grads, ctx.splits)], dim=1)
        active = _active_positions(grad_out)
        backward = _dense_backward if active.numel() > DENSE_FRACTION * b * h * w \
            else _sparse_backward
        return backward(ctx, grad_out, active, x, conv_weight, weight, hidden) + (None, ) * 3


def _dense_backward(ctx, grad_out: Tensor, active: Tensor, x: Tensor, conv_weight: Tensor,
                    weight: Tensor, hidden: Tensor) -> Tuple[Tensor, ...]:
    """What autograd computes: the 1x1 products over every position, then the
    convolution's own backward."""
    b, c, h, w = hidden.shape
    grad_out = grad_out.reshape(b, -1, h * w)
    grad_weight = torch.bmm(grad_out, hidden.view(b, c, h * w).transpose(1, 2)).sum(0)
    grad_bias = grad_out.sum((0, 2))
    grad_hidden = torch.bmm(weight.t().expand(b, -1, -1), grad_out)
    grad_hidden = grad_hidden.mul_(hidden.view(b, c, h * w) > 0).view(b, c, h, w)
    grad_x, grad_conv_weight, grad_conv_bias = torch.ops.aten.convolution_backward(
        grad_hidden, x, conv_weight, [conv_weight.shape[0]], [1, 1], list(ctx.padding),
        list(ctx.dilation), False, [0, 0], 1, list(ctx.needs_input_grad[:3]))
    return grad_x, grad_conv_weight, grad_conv_bias, grad_weight, grad_bias


def _sparse_backward(ctx, grad_out: Tensor, active: Tensor, x: Tensor, conv_weight: Tensor,
                     weight: Tensor, hidden: Tensor) -> Tuple[Tensor, ...]:
    """The same gradients from the ``K`` positions that have one: the 1x1 products on
    their ``K`` rows, the convolution's weight gradient from their ``K`` input patches and
    its input gradient scattered back through the same patches."""
    b, c, h, w = hidden.shape
    img, pix = active // (h * w), active % (h * w)
    row, col = pix // w, pix % w
    grad_rows = grad_out[img, :, row, col]                     # (K, O)
    hidden_rows = hidden[img, :, row, col]                     # (K, C)
    grad_weight = grad_rows.t() @ hidden_rows
    grad_bias = grad_rows.sum(0)
    grad_hidden = (grad_rows @ weight).mul_(hidden_rows > 0)   # (K, C) before the ReLU
    grad_conv_bias = grad_hidden.sum(0)
    # the input rows and columns each output position reads, per kernel tap
    dy, dx = _kernel_offsets(conv_weight, ctx.padding, ctx.dilation)
    rows, cols = row[:, None] + dy, col[:, None] + dx          # (K, taps)
    inside = (rows >= 0) & (rows < x.shape[2]) & (cols >= 0) & (cols < x.shape[3])
    imgs = img[:, None].expand_as(rows)
    pixels = x.permute(0, 2, 3, 1)                             # a view: (B, H, W, C_in)
    patches = pixels[imgs, rows.clamp(0, x.shape[2] - 1), cols.clamp(0, x.shape[3] - 1)]
    patches = patches.mul_(inside[..., None]).transpose(1, 2)  # (K, C_in, taps)
    grad_conv_weight = (grad_hidden.t() @ patches.reshape(len(active), conv_weight[0].numel())
                        ).view_as(conv_weight)
    grad_x = None
    if ctx.needs_input_grad[0]:
        grad_patches = (grad_hidden @ conv_weight.flatten(1)).view(patches.shape)
        # index_add_ over the flattened pixels adds in index order: the same sums run to
        # run (index_put_(accumulate=True) adds duplicates in a thread-timing order on
        # the CPU), and 3x faster
        grad_pixels = x.new_zeros(x.shape[0], x.shape[2], x.shape[3], x.shape[1])
        pixel = (imgs[inside] * x.shape[2] + rows[inside]) * x.shape[3] + cols[inside]
        grad_pixels.view(-1, x.shape[1]).index_add_(0, pixel,
                                                    grad_patches.transpose(1, 2)[inside])
        grad_x = grad_pixels.permute(0, 3, 1, 2)       # channels-last strides
        if not x.is_contiguous(memory_format=torch.channels_last):
            grad_x = torch.empty_like(x).copy_(grad_x)  # the input's layout
    return grad_x, grad_conv_weight, grad_conv_bias, grad_weight, grad_bias


def conv_relu_pointwise(x: Tensor, conv: nn.Conv2d,
                        pointwise: Sequence[nn.Conv2d]) -> Tuple[Tensor, ...]:
    """``tuple(p(relu(conv(x))) for p in pointwise)`` for a stride-1, same-size ``conv``
    and 1x1 ``pointwise`` convs (all with bias) on an NCHW map, the 1x1 convs as one
    batched matrix product.

    The same numbers up to float rounding; the backward gathers only the positions
    whose outputs have a non-zero gradient (:data:`DENSE_FRACTION`: densely above it).
    """
    weight = torch.cat([p.weight.flatten(1) for p in pointwise])
    bias = torch.cat([p.bias for p in pointwise])
    return _ConvReLUPointwise.apply(x, conv.weight, conv.bias, weight, bias, conv.padding,
                                    conv.dilation, tuple(p.out_channels for p in pointwise))


def supports_sparse_backward(conv: nn.Module, pointwise: Sequence[nn.Module]) -> bool:
    """Whether :func:`conv_relu_pointwise` computes ``conv`` and ``pointwise``: plain
    convs with bias, ``conv`` stride 1 keeping the map's size, ``pointwise`` 1x1."""
    return (is_plain_conv(conv) and all(is_pointwise_conv(p) for p in pointwise)
            and all(k % 2 == 1 and p == d * (k // 2) for k, p, d in
                    zip(conv.kernel_size, conv.padding, conv.dilation)))
