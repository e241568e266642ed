from .pose_bbox_coder import PoseBBoxCoder, load_pose_stats

__all__ = ['PoseBBoxCoder', 'load_pose_stats']
