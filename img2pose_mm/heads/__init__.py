"""img2pose's RoI heads registered in ``mmdet.registry.MODELS``."""
from .dof_bbox_head import (
    DoFBBoxHead,
    DoFPredictor,
    SingleSampleSafeBatchNorm1d,
    rescale_detections,
)
from .dof_cascade_roi_head import DoFCascadeRoIHead
from .dof_roi_head import DoFRoIHead
from .gather_roi_extractor import GatherRoIExtractor, roi_align_gather

__all__ = ['DoFBBoxHead', 'DoFPredictor', 'DoFRoIHead', 'DoFCascadeRoIHead',
           'SingleSampleSafeBatchNorm1d', 'rescale_detections', 'GatherRoIExtractor',
           'roi_align_gather']
