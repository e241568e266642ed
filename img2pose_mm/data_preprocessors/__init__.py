"""Data preprocessors registered in ``mmdet.registry.MODELS``."""
from .channels_last import ChannelsLastDataPreprocessor

__all__ = ['ChannelsLastDataPreprocessor']
