"""Necks registered in ``mmdet.registry.MODELS``."""
from .folded_fpn import FoldedFPN, add_phases, nearest_upsampling_phase_kernels

__all__ = ['FoldedFPN', 'add_phases', 'nearest_upsampling_phase_kernels']
