"""Pose-aware data transforms, registered in mmdet's ``TRANSFORMS`` on import."""
from .formatting import BlackOutFacesWithoutPose, PackFacePoseInputs, PoseToBBox
from .geometric import PoseMultiScaleResize, PoseRandomCrop, PoseRandomFlip, PoseResize
from .loading import LoadFacePoseAnnotations, LoadFacePoseImage
from .photometric import RandomContrast, RandomNoise

__all__ = [
    'LoadFacePoseImage', 'LoadFacePoseAnnotations', 'PoseRandomFlip', 'PoseRandomCrop',
    'PoseResize', 'PoseMultiScaleResize', 'RandomContrast', 'RandomNoise', 'PoseToBBox',
    'BlackOutFacesWithoutPose', 'PackFacePoseInputs',
]
