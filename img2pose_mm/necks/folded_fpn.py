"""mmdet's FPN with the finest level's lateral conv and upsampling folded into its output conv
(the algebra: docs/extending.md, "Inside the CPU speed branches")."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..utils.device_gate import DEFAULT_FAST_DEVICES, takes_fast_path
from ..utils.memory_format import weight_like


def nearest_upsampling_phase_kernels(weight: Tensor) -> Tensor:
    """The 2x2 kernels of a 3x3 convolution applied after 2x nearest upsampling.

    Args:
        weight: ``(C_out, C_in, 3, 3)`` kernel of a stride-1 convolution with padding 1.

    Returns:
        ``(4 * C_out, C_in, 2, 2)``: output phases ``(py, px)`` in the order (0, 0),
        (0, 1), (1, 0), (1, 1), each ``C_out`` channels. With ``y = conv2d(coarse,
        kernels, padding=1)``, the output at fine pixel ``(2i + py, 2j + px)`` is
        ``y[(2 * py + px) * C_out + c, i + py, j + px]``.
    """
    if weight.dim() != 4 or weight.shape[-2:] != (3, 3):
        raise ValueError(f'expected a (C_out, C_in, 3, 3) kernel, got {tuple(weight.shape)}')

    def collapse(w: Tensor, dim: int) -> Tuple[Tensor, Tensor]:
        # even fine rows read coarse rows (i - 1, i) with taps (0, 1 + 2); odd rows read
        # (i, i + 1) with taps (0 + 1, 2)
        first, middle, last = w.unbind(dim)
        return (torch.stack([first, middle + last], dim),
                torch.stack([first + middle, last], dim))

    return torch.cat([phase for rows in collapse(weight, 2) for phase in collapse(rows, 3)])


def add_phases(out: Tensor, phases: Tensor) -> Tensor:
    """``out + interleave(phases)`` without copying ``phases``, in ``out``'s layout.

    ``out`` is ``(B, C, 2h, 2w)``, ``phases`` the ``(B, 4C, h + 1, w + 1)`` result of a
    convolution with :func:`nearest_upsampling_phase_kernels` (any memory layout). The
    sum is written into ``out`` unless autograd records it (an in-place add on a view
    would make the backward copy the whole gradient)."""
    b, c, fine_h, fine_w = out.shape
    h, w = fine_h // 2, fine_w // 2
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        # graph export: slices and stacks (no strided views in ONNX)
        blocks = [phases[:, k * c:(k + 1) * c, py:py + h, px:px + w]
                  for k, (py, px) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1)))]
        rows = [torch.stack(blocks[2 * py:2 * py + 2], dim=-1) for py in range(2)]
        return out + torch.stack(rows, dim=3).reshape(b, c, fine_h, fine_w)
    sb, sk, sh, sw = phases.stride()
    # element (b, c, i, py, j, px) -> phases[b, (2 py + px) c_out + c, i + py, j + px]
    view = phases.as_strided((b, c, h, 2, w, 2),
                             (sb, sk, sh, 2 * c * sk + sh, sw, c * sk + sw),
                             phases.storage_offset())
    if torch.is_grad_enabled() and (out.requires_grad or phases.requires_grad):
        return (out.view(b, c, h, 2, w, 2) + view).view(b, c, fine_h, fine_w)
    out.view(b, c, h, 2, w, 2).add_(view)
    return out


def _plain_conv(module: nn.Module, kernel_size: int) -> nn.Conv2d | None:
    """The ``nn.Conv2d`` of a ConvModule without norm or activation that is a plain
    stride-1 ``kernel_size`` convolution with 'same' zero padding, else ``None``."""
    if getattr(module, 'with_norm', True) or getattr(module, 'with_activation', True):
        return None
    conv = getattr(module, 'conv', None)
    if (type(conv) is not nn.Conv2d or conv.kernel_size != (kernel_size, kernel_size)
            or conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1
            or conv.padding != (kernel_size // 2, kernel_size // 2)
            or conv.padding_mode != 'zeros'):
        return None
    return conv


@MODELS.register_module()
class FoldedFPN(FPN):
    """:class:`mmdet.models.necks.FPN` (same arguments, weights and checkpoint keys) that
    computes its finest output with the lateral conv and the upsampling folded into the
    output conv (docs/extending.md).

    The fold is used on the devices in ``fast_devices`` where it saves work,
    ``8 * C_in < 5 * C_out`` (ResNet-18, MobileNetV2, RegNetX-3.2GF, Swin-T; not
    ResNet-50), the lateral and output convs are plain convolutions (no norm or
    activation), the upsampling is nearest and the finest map is exactly twice the
    next one; anything else (other devices, float16 inputs or autocast) runs FPN's
    forward. Graph export (ONNX) interleaves the phases with slices and stacks.

    Args:
        fast_devices: device types that fold (default ``('cpu',)``; ``()``: never);
            see :func:`~img2pose_mm.utils.takes_fast_path`.
        **kwargs: :class:`~mmdet.models.necks.FPN`'s arguments.
    """

    def __init__(self, *args, fast_devices: Sequence[str] = DEFAULT_FAST_DEVICES,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast_devices = tuple(fast_devices)
        lateral = _plain_conv(self.lateral_convs[0], 1)
        output = _plain_conv(self.fpn_convs[0], 3)
        self.folds_finest = (
            len(self.lateral_convs) > 1 and lateral is not None and output is not None
            and self.upsample_cfg.get('mode', 'nearest') == 'nearest'
            and self.upsample_cfg.get('scale_factor', 2) == 2
            and 8 * lateral.in_channels < 5 * output.in_channels)

    def _can_fold(self, inputs: Sequence[Tensor]) -> bool:
        if not self.folds_finest:
            return False
        fine, coarse = inputs[self.start_level], inputs[self.start_level + 1]
        return (fine.shape[-2] == 2 * coarse.shape[-2] and fine.shape[-1] == 2 * coarse.shape[-1]
                and takes_fast_path(fine, self.fast_devices, 'FoldedFPN'))

    def folded_finest_output(self, fine_input: Tensor, coarse_lateral: Tensor) -> Tensor:
        """``fpn_convs[0](lateral_convs[0](fine_input) + upsample2x(coarse_lateral))``
        computed without the full-resolution sum."""
        lateral, output = self.lateral_convs[0].conv, self.fpn_convs[0].conv
        fused = torch.einsum('omyx,mc->ocyx', output.weight, lateral.weight.flatten(1))
        out = F.conv2d(fine_input, weight_like(fused, fine_input), output.bias, padding=1)
        if lateral.bias is not None:
            coarse_lateral = coarse_lateral + lateral.bias.view(1, -1, 1, 1)
        phases = nearest_upsampling_phase_kernels(output.weight)
        phases = F.conv2d(coarse_lateral, weight_like(phases, coarse_lateral), padding=1)
        return add_phases(out, phases)

    def forward(self, inputs: Tuple[Tensor]) -> tuple:
        assert len(inputs) == len(self.in_channels)
        if not self._can_fold(inputs):
            return super().forward(inputs)
        levels = len(self.lateral_convs)
        laterals: List[Tensor] = [self.lateral_convs[i](inputs[i + self.start_level])
                                  for i in range(1, levels)]
        for i in range(levels - 2, 0, -1):          # top-down down to the second finest
            if 'scale_factor' in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:],
                                   **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + up
        outs = [self.folded_finest_output(inputs[self.start_level], laterals[0])]
        outs += [self.fpn_convs[i](laterals[i - 1]) for i in range(1, levels)]
        return tuple(outs + self._extra_levels(inputs, laterals[-1], outs[-1]))

    def _extra_levels(self, inputs: Sequence[Tensor], top_lateral: Tensor,
                      top_output: Tensor) -> List[Tensor]:
        """FPN's levels above the backbone's: max-pooled or extra convs."""
        levels = len(self.lateral_convs)
        extra: List[Tensor] = []
        if self.num_outs <= levels:
            return extra
        if not self.add_extra_convs:
            for _ in range(self.num_outs - levels):
                extra.append(F.max_pool2d((extra or [top_output])[-1], 1, stride=2))
            return extra
        source = dict(on_input=inputs[self.backbone_end_level - 1], on_lateral=top_lateral,
                      on_output=top_output)[self.add_extra_convs]
        extra.append(self.fpn_convs[levels](source))
        for i in range(levels + 1, self.num_outs):
            x = F.relu(extra[-1]) if self.relu_before_extra_convs else extra[-1]
            extra.append(self.fpn_convs[i](x))
        return extra
