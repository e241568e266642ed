"""img2pose's RoI heads registered in ``mmdet.registry.MODELS``."""
from .detection_postprocess import (
    postprocess_detections,
    rescale_detections,
    suppress_duplicates,
)
from .dof_bbox_head import DoFBBoxHead, DoFPredictor, SingleSampleSafeBatchNorm1d
from .dof_cascade_roi_head import DoFCascadeRoIHead
from .dof_roi_head import DoFRoIHead
from .gather_roi_extractor import GatherRoIExtractor, roi_align_gather

__all__ = ['DoFBBoxHead', 'DoFPredictor', 'DoFRoIHead', 'DoFCascadeRoIHead',
           'SingleSampleSafeBatchNorm1d', 'rescale_detections', 'GatherRoIExtractor',
           'roi_align_gather', 'postprocess_detections', 'suppress_duplicates']
