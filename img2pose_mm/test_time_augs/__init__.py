"""Registered in mmdet registries on import."""
from .box_voting import VotingResult, pose_box_voting, weighted_rotation_mean
from .pose_det_tta import PoseDetTTAModel, unflip_predictions

__all__ = ['PoseDetTTAModel', 'VotingResult', 'pose_box_voting', 'unflip_predictions',
           'weighted_rotation_mean']
