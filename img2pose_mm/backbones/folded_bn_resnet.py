"""mmdet's ResNet with its eval-mode BatchNorms folded into the convolutions."""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.backbones.resnet import BasicBlock, Bottleneck, ResNet
from mmdet.registry import MODELS
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils.device_gate import DEFAULT_FAST_DEVICES, takes_fast_path
from ..utils.memory_format import weight_like


def conv_bn(conv: nn.Module, bn: nn.Module, x: Tensor) -> Tensor:
    """``bn(conv(x))`` as one convolution when ``bn`` normalises with its running
    statistics (eval mode or frozen): the weights are scaled per output channel at
    every call, so the result follows the current parameters and is differentiable
    with respect to them. Anything else runs as the two modules."""
    if (bn.training or not isinstance(bn, _BatchNorm) or bn.running_var is None
            or type(conv) is not nn.Conv2d or conv.padding_mode != 'zeros'):
        return bn(conv(x))
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = bn.weight * scale
    bias = -bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    if bn.bias is not None:
        bias = bias + bn.bias
    weight = weight_like(conv.weight * scale.view(-1, 1, 1, 1), x)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _downsample(module: nn.Module, x: Tensor) -> Tensor:
    """A ResNet shortcut (``[AvgPool2d,] conv, norm``) with its norm folded."""
    layers = list(module) if isinstance(module, nn.Sequential) else [module]
    if len(layers) < 2:
        return module(x)
    for layer in layers[:-2]:
        x = layer(x)
    return conv_bn(layers[-2], layers[-1], x)


@MODELS.register_module()
class FoldedBNResNet(ResNet):
    """:class:`mmdet.models.ResNet` (same arguments, weights and checkpoint keys) that,
    on the devices in ``fast_devices``, folds every BatchNorm in eval mode (frozen,
    ``norm_eval``, or testing) into the convolution before it (:func:`conv_bn`).

    The activation maps are no longer normalised in a separate pass (forward and
    backward); outputs equal ResNet's up to float rounding. Blocks with plugins, DCN,
    checkpointing or a deep stem run as in ResNet. Other devices, float16 inputs and
    float16 autocast (a folded scale ``weight / sqrt(var + eps)`` can overflow in
    half precision) run ResNet's forward.

    Args:
        fast_devices: device types that fold (default ``('cpu',)``; ``()``: never);
            see :func:`~img2pose_mm.utils.takes_fast_path`.
        **kwargs: :class:`~mmdet.models.ResNet`'s arguments.
    """

    def __init__(self, *args, fast_devices: Sequence[str] = DEFAULT_FAST_DEVICES,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast_devices = tuple(fast_devices)

    def _block(self, block: nn.Module, x: Tensor) -> Tensor:
        if getattr(block, 'with_plugins', False) or getattr(block, 'with_dcn', False) \
                or (block.with_cp and x.requires_grad) \
                or not isinstance(block, (BasicBlock, Bottleneck)):
            return block(x)
        identity = x if block.downsample is None else _downsample(block.downsample, x)
        out = block.relu(conv_bn(block.conv1, block.norm1, x))
        if isinstance(block, Bottleneck):
            out = block.relu(conv_bn(block.conv2, block.norm2, out))
            out = conv_bn(block.conv3, block.norm3, out)
        else:
            out = conv_bn(block.conv2, block.norm2, out)
        out += identity
        return block.relu(out)

    def _frozen_part_channels_last(self, x: Tensor) -> bool:
        """Whether the frozen stem and stages of this NCHW CPU batch run channels-last.

        They take no gradient, so only their forward counts, and oneDNN's forward is
        fastest channels-last (stem + stage 1 of ResNet-18 on a 2 x 640 x 960 batch:
        about 1.5x, the max-pool 6x). Their output returns to NCHW for the trainable
        stages, whose channels-last *backward* is slower on CPUs."""
        return (self.frozen_stages >= 0 and x.device.type == 'cpu' and x.dim() == 4
                and x.is_contiguous() and not x.requires_grad
                and not torch.jit.is_tracing() and not torch.compiler.is_compiling())

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if not takes_fast_path(x, self.fast_devices, 'FoldedBNResNet'):
            return super().forward(x)
        # the layer after which a channels-last frozen part returns to NCHW (-1: stem)
        back_to_nchw = None
        if self._frozen_part_channels_last(x):
            x = x.contiguous(memory_format=torch.channels_last)
            back_to_nchw = min(self.frozen_stages, len(self.res_layers)) - 1
        if self.deep_stem:
            x = self.stem(x)
        else:
            x = self.relu(conv_bn(self.conv1, self.norm1, x))
        x = self.maxpool(x)
        if back_to_nchw == -1:
            x = x.contiguous()
        outs = []
        for i, layer_name in enumerate(self.res_layers):
            for block in getattr(self, layer_name):
                x = self._block(block, x)
            if i == back_to_nchw:
                x = x.contiguous()
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
