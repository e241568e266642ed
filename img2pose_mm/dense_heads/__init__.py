"""Dense heads registered in ``mmdet.registry.MODELS``."""
from .dof_retina_head import DoFRetinaHead
from .img2pose_rpn_head import Img2PoseRPNHead

__all__ = ['DoFRetinaHead', 'Img2PoseRPNHead']
