"""Training-loop pieces img2pose's recipe needs (registered in mmdet's registries)."""
from .optimizers import BF16OptimWrapper
from .runner import ValLossLoop

__all__ = ['BF16OptimWrapper', 'ValLossLoop']
