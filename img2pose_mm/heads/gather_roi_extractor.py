"""Multi-level RoIAlign as one weighted gather per level (``F.embedding_bag``); how and why:
docs/extending.md, "Inside the CPU speed branches"."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.registry import MODELS
from torch import Tensor
from torch.nn.modules.utils import _pair

from ..utils.device_gate import DEFAULT_FAST_DEVICES, takes_fast_path


def _axis_samples(start: Tensor, size: Tensor, length: int, out_size: int,
                  sampling_ratio: int) -> Tuple[Tensor, Tensor]:
    """Pixel indices and weights along one axis: ``(n, out_size, 2 * sampling_ratio)``.

    ``start``/``size``: the RoIs' start and extent on this axis in feature-map pixels.
    Every output row holds, for the ``sampling_ratio`` samples of a bin, the two
    neighbouring pixels and their linear weights divided by ``sampling_ratio`` (samples
    outside ``[-1, length]`` weigh 0), in the arithmetic order of the reference kernels.
    """
    dtype = start.dtype
    bin_size = (size / out_size)[:, None, None]
    p = torch.arange(out_size, device=start.device, dtype=dtype)[None, :, None]
    g = (torch.arange(sampling_ratio, device=start.device, dtype=dtype) + 0.5)[None, None, :]
    # start + ph * bin + (iy + .5) * bin / grid, as the reference kernels evaluate it
    v = start[:, None, None] + p * bin_size + g * bin_size / sampling_ratio
    inside = (v >= -1.0) & (v <= length)
    v = v.clamp(min=0)
    low = v.floor()
    last = low >= length - 1
    low = torch.where(last, torch.full_like(low, length - 1), low)
    v = torch.where(last, low, v)
    frac = v - low
    high = torch.where(last, low, low + 1)
    scale = inside.to(dtype) / sampling_ratio
    index = torch.cat([low, high], -1).long()                       # (n, out, 2 * sr)
    weight = torch.cat([(1.0 - frac) * scale, frac * scale], -1)
    return index, weight


def roi_align_gather(feat: Tensor, rois: Tensor, spatial_scale: float,
                     out_size: Union[int, Tuple[int, int]] = 7, sampling_ratio: int = 2,
                     aligned: bool = False) -> Tensor:
    """RoIAlign (average, ``sampling_ratio > 0``) of ``rois`` ``(n, 5)`` on ``feat``
    ``(B, C, H, W)``: ``(n, out_h, out_w, C)`` (NHWC rows).

    Equal to ``mmcv.ops.roi_align`` / ``torchvision.ops.roi_align`` with the same
    arguments up to float summation order; differentiable with respect to ``feat``.
    """
    if sampling_ratio <= 0:
        raise ValueError('roi_align_gather needs a fixed sampling_ratio > 0')
    out_h, out_w = _pair(out_size)
    b, c, h, w = feat.shape
    n = rois.shape[0]
    if n == 0:
        return feat.new_zeros((0, out_h, out_w, c))
    rois = rois.to(feat.dtype)
    offset = 0.5 if aligned else 0.0
    x1 = rois[:, 1] * spatial_scale - offset
    y1 = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - x1
    roi_h = rois[:, 4] * spatial_scale - offset - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    iy, wy = _axis_samples(y1, roi_h, h, out_h, sampling_ratio)
    ix, wx = _axis_samples(x1, roi_w, w, out_w, sampling_ratio)
    base = (rois[:, 0].long() * (h * w))[:, None, None, None, None]
    # (n, out_y, out_x, 2 sr (y), 2 sr (x)): pixel = y * w + x, weight = wy * wx
    index = base + iy[:, :, None, :, None] * w + ix[:, None, :, None, :]
    weight = wy[:, :, None, :, None] * wx[:, None, :, None, :]
    bag = index.shape[-1] * index.shape[-2]
    table = _PixelRows.apply(feat)              # a view for channels-last maps
    out = F.embedding_bag(index.reshape(-1, bag), table,
                          per_sample_weights=weight.reshape(-1, bag), mode='sum')
    return out.view(n, out_h, out_w, c)


class _PixelRows(torch.autograd.Function):
    """``(B, C, H, W) -> (B * H * W, C)``, whose gradient comes back in the map's own
    layout: an NCHW map gets an NCHW gradient, so adding it to the other consumers'
    (the RPN's) gradient and the convolution backward that follows need no copies."""

    @staticmethod
    def forward(ctx, feat: Tensor) -> Tensor:
        ctx.shape = feat.shape
        ctx.channels_last = not feat.is_contiguous() and feat.is_contiguous(
            memory_format=torch.channels_last)
        return feat.permute(0, 2, 3, 1).reshape(-1, feat.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor):
        b, c, h, w = ctx.shape
        grad = grad.view(b, h, w, c).permute(0, 3, 1, 2)
        return grad if ctx.channels_last else grad.contiguous()


class _PermuteRows(torch.autograd.Function):
    """``out[order[k]] = x[k]`` for a permutation ``order``, as a gather both ways
    (``index_select``'s backward scatters, several times slower on CPUs)."""

    @staticmethod
    def forward(ctx, x: Tensor, order: Tensor) -> Tensor:
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)
        ctx.save_for_backward(order)
        return x.index_select(0, inverse)

    @staticmethod
    def backward(ctx, grad: Tensor):
        order, = ctx.saved_tensors
        return grad.index_select(0, order), None


@MODELS.register_module()
class GatherRoIExtractor(SingleRoIExtractor):
    """:class:`SingleRoIExtractor` (same arguments, level mapping and outputs) whose
    RoIAlign is :func:`roi_align_gather` on the devices in ``fast_devices``.

    Falls back to SingleRoIExtractor's forward with the configured ``roi_layer``
    (mmcv's RoIAlign, given NCHW-contiguous levels: its CPU kernel ignores strides)
    where the gather does not apply: other devices (CUDA has mmcv's fast kernel),
    ``roi_scale_factor``, max pooling, adaptive sampling (``sampling_ratio=0``) or
    non-float32 features. The gather computes in float32 whatever the autocast state
    (``embedding_bag`` is not autocast).

    Args:
        fast_devices: device types that use the gather (default ``('cpu',)``; ``()``:
            never); see :func:`~img2pose_mm.utils.takes_fast_path`.
    """

    #: levels may come in any memory layout (see :func:`~img2pose_mm.heads.dof_roi_head.float32_features`)
    handles_channels_last = True

    def __init__(self, *args, fast_devices: Sequence[str] = DEFAULT_FAST_DEVICES,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast_devices = tuple(fast_devices)
        layer = self.roi_layers[0]
        self._gather_args = None
        if (type(layer).__name__ == 'RoIAlign' and getattr(layer, 'pool_mode', 'avg') == 'avg'
                and int(getattr(layer, 'sampling_ratio', 0)) > 0):
            self._gather_args = dict(out_size=tuple(int(s) for s in _pair(layer.output_size)),
                                     sampling_ratio=int(layer.sampling_ratio),
                                     aligned=bool(layer.aligned))

    def uses_gather(self, feats: Sequence[Tensor]) -> bool:
        """Whether :meth:`forward` takes the gather path for these features."""
        return self._gather_args is not None and takes_fast_path(
            feats[0], self.fast_devices, 'GatherRoIExtractor', dtypes=(torch.float32, ),
            autocast_dtypes=None)

    def forward(self, feats: Tuple[Tensor], rois: Tensor,
                roi_scale_factor: Optional[float] = None) -> Tensor:
        if roi_scale_factor is not None or not self.uses_gather(feats):
            return super().forward(tuple(f.contiguous() for f in feats), rois, roi_scale_factor)
        num_levels = len(feats)
        (out_h, out_w), channels = self._gather_args['out_size'], feats[0].shape[1]
        rois = rois.to(feats[0].dtype)
        if num_levels == 1:
            levels = rois.new_zeros(len(rois), dtype=torch.long)
        else:
            levels = self.map_roi_levels(rois, num_levels)
        counts: List[int] = torch.bincount(levels, minlength=num_levels).tolist()
        used = [i for i, count in enumerate(counts) if count > 0]
        unused = []
        if torch.is_grad_enabled() and any(f.requires_grad for f in feats):
            # every level in the graph (mmdet's rule: DDP needs each level's gradient)
            unused = [feats[i].sum() * 0.0 for i in range(num_levels) if counts[i] == 0]
        if len(used) <= 1:
            if used:
                out = roi_align_gather(feats[used[0]], rois, 1.0 / self.featmap_strides[used[0]],
                                       **self._gather_args)
            else:
                out = feats[0].new_zeros((0, out_h, out_w, channels))
            if unused:
                out = out + sum(unused)
        else:
            # the RoIs of each level together, one concatenation, one permutation back
            order = torch.argsort(levels, stable=True)
            parts = [roi_align_gather(feats[i], rois[inds], 1.0 / self.featmap_strides[i],
                                      **self._gather_args)
                     for i, inds in zip(used, order.split([counts[i] for i in used]))]
            if unused:           # an empty block that carries the unused levels' graph
                parts.append(sum(unused).view(1, 1, 1, 1).expand(0, out_h, out_w, channels))
            out = _PermuteRows.apply(torch.cat(parts), order)
        return out.permute(0, 3, 1, 2)
