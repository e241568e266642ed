"""Helpers for checking img2pose_mm against the original img2pose (seeded weights in the
original's checkpoint layout, the photos and the native-size pipeline of the fidelity
checks). Nothing here needs the original's code or files."""
from .original_layout import (
    ROI_HEAD_SHAPES,
    SAMPLE_PHOTOS,
    SEEDED_POSE_MEAN,
    SEEDED_POSE_STDDEV,
    as_rgb,
    load_torchvision,
    native_size_pipeline,
    original_checkpoint,
    original_key_shapes,
    original_state_dict,
    sample_photos,
    save_original_checkpoint,
    torchvision_modules,
)

__all__ = ['ROI_HEAD_SHAPES', 'SAMPLE_PHOTOS', 'SEEDED_POSE_MEAN', 'SEEDED_POSE_STDDEV',
           'as_rgb', 'load_torchvision', 'native_size_pipeline', 'original_checkpoint',
           'original_key_shapes', 'original_state_dict', 'sample_photos',
           'save_original_checkpoint', 'torchvision_modules']
