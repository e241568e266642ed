"""Registered in mmdet registries on import."""
from . import functional  # noqa: F401
from .metrics import HeadPoseMetric, WIDERFaceMetric

__all__ = ['HeadPoseMetric', 'WIDERFaceMetric']
