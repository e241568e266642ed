"""High-level API: :class:`Img2Pose` (detection + 6DoF pose + alignment), the face
dicts it returns, the face-alignment functions (templates, Umeyama, warping) and the
video tools (IoU tracking, One-Euro pose smoothing)."""
from .alignment import (
    FRONTAL_TEMPLATE,
    TEMPLATE_NAMES,
    TEMPLATE_SIZE,
    TEMPLATE_YAWS,
    Alignment,
    align_faces,
    alignment_templates,
    derive_templates,
    estimate_alignment,
    keypoints_from_faces,
    keypoints_to_dict,
    pose_keypoints,
    require_cv2,
    umeyama,
    warp_faces,
)
from .face_outputs import EULER_KEYS, FaceOutputs, camera_from_values, faces_from_poses
from .given_boxes import check_boxes, predict_for_boxes
from .image_io import load_image, to_rgb_uint8
from .inference import Img2Pose
from .model_config import build_inference_pipeline, default_config_path, resolve_device
from .tracking import FaceTracker, OneEuro, PoseFilterState, TrackUpdate, one_euro_step
from .visualize import draw_faces

__all__ = [
    'Img2Pose', 'build_inference_pipeline', 'default_config_path', 'resolve_device',
    'FRONTAL_TEMPLATE', 'TEMPLATE_NAMES', 'TEMPLATE_SIZE', 'TEMPLATE_YAWS', 'Alignment',
    'align_faces', 'alignment_templates', 'derive_templates', 'estimate_alignment',
    'keypoints_from_faces', 'keypoints_to_dict', 'pose_keypoints', 'require_cv2', 'umeyama',
    'warp_faces', 'load_image', 'to_rgb_uint8', 'draw_faces', 'EULER_KEYS', 'FaceOutputs',
    'camera_from_values', 'faces_from_poses', 'check_boxes', 'predict_for_boxes',
    'FaceTracker', 'OneEuro', 'PoseFilterState', 'TrackUpdate', 'one_euro_step',
]
