"""Anchors exactly as torchvision's ``AnchorGenerator`` makes them for img2pose."""
from __future__ import annotations

from typing import List, Tuple

import torch
from mmdet.models.task_modules.prior_generators import AnchorGenerator
from mmdet.registry import TASK_UTILS
from mmdet.structures.bbox import HorizontalBoxes
from torch import Tensor


@TASK_UTILS.register_module()
class Img2PoseAnchorGenerator(AnchorGenerator):
    """mmdet's :class:`AnchorGenerator` with torchvision's two differences.

    * Base anchors are rounded to integers.
    * ``torchvision_strides=True``: the stride of each level is the padded input
      size integer-divided by the level's size (torchvision infers it that way), so a
      level whose size was rounded up (P6 of an 800 px input: 13 cells, stride 61)
      gets the same anchor centres as the original. The input size is recovered from
      the first level (``size * strides[0]``), which is exact for inputs padded to a
      multiple of 32.

    Use it with ``center_offset=0`` (anchor centres at ``k * stride``).
    """

    def __init__(self, *args, torchvision_strides: bool = True, **kwargs) -> None:
        kwargs.setdefault('center_offset', 0.0)
        super().__init__(*args, **kwargs)
        self.torchvision_strides = torchvision_strides

    def gen_single_level_base_anchors(self, base_size, scales, ratios, center=None) -> Tensor:
        return super().gen_single_level_base_anchors(base_size, scales, ratios, center).round()

    def level_strides(self, featmap_sizes: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
        """``(stride_w, stride_h)`` per level for these feature map sizes."""
        if not self.torchvision_strides:
            return [tuple(s) for s in self.strides]
        input_h = featmap_sizes[0][0] * self.strides[0][1]
        input_w = featmap_sizes[0][1] * self.strides[0][0]
        return [(input_w // w, input_h // h) for h, w in featmap_sizes]

    def grid_priors(self, featmap_sizes: List[Tuple[int, int]], dtype: torch.dtype = torch.float32,
                    device='cuda') -> List[Tensor]:
        assert self.num_levels == len(featmap_sizes)
        # sizes stay as given (ints, or symbolic sizes while exporting a graph)
        strides = self.level_strides([tuple(s) for s in featmap_sizes])
        return [self._grid_anchors(self.base_anchors[i], featmap_sizes[i], strides[i], dtype,
                                   device) for i in range(self.num_levels)]

    def single_level_grid_priors(self, featmap_size: Tuple[int, int], level_idx: int,
                                 dtype: torch.dtype = torch.float32, device='cuda') -> Tensor:
        return self._grid_anchors(self.base_anchors[level_idx], featmap_size,
                                  self.strides[level_idx], dtype, device)

    def _grid_anchors(self, base_anchors: Tensor, featmap_size: Tuple[int, int],
                      stride: Tuple[int, int], dtype: torch.dtype, device) -> Tensor:
        feat_h, feat_w = featmap_size
        shift_x = torch.arange(0, feat_w, device=device).to(dtype) * stride[0]
        shift_y = torch.arange(0, feat_h, device=device).to(dtype) * stride[1]
        shift_xx, shift_yy = self._meshgrid(shift_x, shift_y)
        shifts = torch.stack([shift_xx, shift_yy, shift_xx, shift_yy], dim=-1)
        anchors = (base_anchors.to(device=device, dtype=dtype)[None] + shifts[:, None]).view(-1, 4)
        return HorizontalBoxes(anchors) if self.use_box_type else anchors
