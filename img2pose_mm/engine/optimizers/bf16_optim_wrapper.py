"""bfloat16 mixed-precision training that also runs on CPUs."""
from __future__ import annotations

import logging
from contextlib import contextmanager

import torch
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from torch import nn

from img2pose_mm.utils import native_bf16


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """:class:`OptimWrapper` whose forward pass runs under bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` (``--amp``) only runs on accelerators. bfloat16 has
    float32's range, so no loss scaling is needed; parameters, gradients and the
    optimizer stay float32. CPUs with AVX512-BF16/AMX run the convolutions and the
    RoI MLPs faster; the heads keep their box arithmetic in float32
    (``Img2PoseRPNHead``, ``DoFBBoxHead``, RoIAlign).

    Args:
        native_only (bool): train in float32 (with a warning) on a device without
            native bfloat16, e.g. an AVX2-only CPU, where emulated bfloat16 is tens
            of times slower. ``False`` forces bfloat16 anyway. Defaults to True.
        **kwargs: :class:`OptimWrapper`'s arguments.
    """

    def __init__(self, *args, native_only: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.native_only = native_only
        self._checked_devices = {}

    def _use_bf16(self, device: str) -> bool:
        if not self.native_only:
            return True
        if device not in self._checked_devices:
            native = native_bf16(device)
            self._checked_devices[device] = native
            if not native:
                print_log(
                    f'BF16OptimWrapper: this {device} has no native bfloat16 (on CPUs: '
                    'AVX512-BF16 or AMX), where bfloat16 autocast is emulated and runs tens '
                    'of times slower; training in float32 instead (set '
                    'optim_wrapper.native_only=False to force bfloat16)',
                    logger='current', level=logging.WARNING)
        return self._checked_devices[device]

    @contextmanager
    def optim_context(self, model: nn.Module):
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(
                device_type=device, dtype=torch.bfloat16, enabled=self._use_bf16(device)):
            yield
