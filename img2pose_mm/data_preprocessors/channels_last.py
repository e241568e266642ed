"""mmdet's detection data preprocessor with a channels-last batch on chosen devices."""
from __future__ import annotations

from typing import Sequence

import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS

from ..utils.device_gate import DEFAULT_FAST_DEVICES, takes_fast_path


@MODELS.register_module()
class ChannelsLastDataPreprocessor(DetDataPreprocessor):
    """:class:`DetDataPreprocessor` whose test-time batch comes out in ``channels_last``
    memory layout on the devices in ``fast_devices``.

    The values are unchanged; only the layout differs: the FPN levels come out NHWC,
    what :class:`~img2pose_mm.heads.GatherRoIExtractor` gathers from. Training batches
    stay NCHW (oneDNN's channels-last convolution *backward* is slower on the CPU).

    Args:
        fast_devices: device types that get the NHWC batch (default ``('cpu',)``;
            ``()``: never); see :func:`~img2pose_mm.utils.takes_fast_path`.
    """

    def __init__(self, *args, fast_devices: Sequence[str] = DEFAULT_FAST_DEVICES,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast_devices = tuple(fast_devices)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        inputs = data['inputs']
        # the layout only: any dtype, any autocast state
        if (not training and isinstance(inputs, torch.Tensor) and inputs.dim() == 4
                and takes_fast_path(inputs, self.fast_devices, 'ChannelsLastDataPreprocessor',
                                    dtypes=None, autocast_dtypes=None)):
            data['inputs'] = inputs.contiguous(memory_format=torch.channels_last)
        return data
