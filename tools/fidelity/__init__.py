"""Checking img2pose_mm against the original img2pose (developer tooling, not installed).

The package root needs neither the original's code nor its files; the modules that run
the original import it from a checkout given at run time (:mod:`tools.fidelity.original`).
"""
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
