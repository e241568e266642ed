"""Pure geometry (torch/numpy/cv2 only): poses, projection, boxes, the reference face."""
from .boxes import box_iou
from .camera import CameraLike, camera_intrinsics, change_camera
from .euler import (
                   AXIS_NAMES,
                   EULER_CONVENTIONS,
                   TAIT_BRYAN_ORDERS,
                   check_convention,
                   euler_names,
                   euler_to_rotvec,
                   pose_to_euler,
                   rotvec_to_euler,
)
from .face_model import FACE_MODEL_SETTINGS, FaceModel, FaceModelLike
from .face_poses import POSE_SENTINEL, FacePoses
from .pnp import LANDMARK_MISSING, landmarks_valid, pose_from_landmarks, solve_pnp
from .pose import (
                   ROTATION_METHODS,
                   box_intrinsics,
                   flip_pose,
                   global_to_local,
                   image_intrinsics,
                   intrinsics_matrix,
                   invert_intrinsics,
                   local_intrinsics,
                   local_to_global,
                   markley_quaternion,
                   matrix_to_rotvec,
                   orthogonalize,
                   points_to_bbox,
                   polar_rotation,
                   pose_to_bbox,
                   project_points,
                   project_pose_points,
                   quaternion_multiply,
                   quaternion_to_matrix,
                   quaternion_to_rotvec,
                   rotation_angle_between,
                   rotvec_to_matrix,
                   rotvec_to_quaternion,
                   scale_translate_map,
                   transfer_pose,
                   transform_points,
                   warp_pose,
)
from .reference_face import (
                   FIVE_POINT_NAMES,
                   IBUG_68_MIRROR_PAIRS,
                   FaceMesh,
                   five_from_68,
                   load_reference_mesh,
                   load_reference_points,
                   mirror_permutation,
)

__all__ = [
    'box_iou',
    'FaceModel', 'FaceModelLike', 'FACE_MODEL_SETTINGS', 'FacePoses', 'POSE_SENTINEL', 'LANDMARK_MISSING',
    'ROTATION_METHODS', 'box_intrinsics', 'euler_to_rotvec', 'flip_pose', 'global_to_local',
    'image_intrinsics', 'intrinsics_matrix', 'invert_intrinsics', 'local_intrinsics',
    'local_to_global', 'markley_quaternion', 'matrix_to_rotvec', 'orthogonalize',
    'polar_rotation', 'points_to_bbox', 'pose_to_bbox', 'pose_to_euler', 'project_points',
    'project_pose_points',
    'quaternion_multiply', 'quaternion_to_matrix', 'quaternion_to_rotvec',
    'rotation_angle_between', 'rotvec_to_matrix',
    'rotvec_to_quaternion', 'scale_translate_map', 'transfer_pose', 'transform_points',
    'warp_pose', 'landmarks_valid', 'pose_from_landmarks', 'solve_pnp', 'FIVE_POINT_NAMES',
    'IBUG_68_MIRROR_PAIRS', 'FaceMesh', 'five_from_68', 'load_reference_mesh',
    'load_reference_points', 'mirror_permutation', 'EULER_CONVENTIONS', 'TAIT_BRYAN_ORDERS',
    'AXIS_NAMES', 'check_convention', 'euler_names', 'rotvec_to_euler', 'CameraLike',
    'camera_intrinsics', 'change_camera',
]
