"""bfloat16 mixed-precision training that also runs on CPUs."""
from __future__ import annotations

from contextlib import contextmanager

import torch
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.optim import OptimWrapper
from torch import nn


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """:class:`OptimWrapper` whose forward pass runs under bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` (``--amp``) only runs on accelerators. bfloat16 has
    float32's range, so no loss scaling is needed; parameters, gradients and the
    optimizer stay float32. CPUs with AVX512-BF16/AMX run the convolutions and the
    RoI MLPs faster; the heads keep their box arithmetic in float32
    (``Img2PoseRPNHead``, ``DoFBBoxHead``, RoIAlign).
    """

    @contextmanager
    def optim_context(self, model: nn.Module):
        device = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device_type=device,
                                                          dtype=torch.bfloat16):
            yield
