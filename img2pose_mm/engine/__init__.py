"""Training-loop pieces img2pose's recipe needs (registered in mmdet's registries)."""
from .runner import ValLossLoop

__all__ = ['ValLossLoop']
