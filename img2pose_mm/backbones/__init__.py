"""Backbones registered in ``mmdet.registry.MODELS``."""
from .folded_bn_resnet import FoldedBNResNet, conv_bn

__all__ = ['FoldedBNResNet', 'conv_bn']
