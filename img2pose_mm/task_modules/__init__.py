"""Task utilities registered in ``mmdet.registry.TASK_UTILS``."""
from .coders import PoseBBoxCoder, load_pose_stats
from .prior_generators import Img2PoseAnchorGenerator

__all__ = ['PoseBBoxCoder', 'load_pose_stats', 'Img2PoseAnchorGenerator']
