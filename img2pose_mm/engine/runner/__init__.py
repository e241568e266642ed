from .val_loss_loop import ValLossLoop

__all__ = ['ValLossLoop']
