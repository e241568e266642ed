from .img2pose_anchor_generator import Img2PoseAnchorGenerator

__all__ = ['Img2PoseAnchorGenerator']
