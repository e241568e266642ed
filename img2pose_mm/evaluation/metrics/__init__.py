"""Registered in mmdet registries on import."""
from .head_pose_metric import HeadPoseMetric
from .wider_face_metric import WIDERFaceMetric

__all__ = ['HeadPoseMetric', 'WIDERFaceMetric']
