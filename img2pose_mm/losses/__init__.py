"""6DoF losses registered in ``mmdet.registry.MODELS``."""
from .dof_loss import DoFLoss, PosePointsLoss, dof_loss, pose_points_loss

__all__ = ['DoFLoss', 'PosePointsLoss', 'dof_loss', 'pose_points_loss']
