"""Pose visualisation: drawing functions and the registered ``PoseLocalVisualizer``."""
from .draw import (
    AXIS_COLORS,
    draw_bboxes,
    draw_landmarks,
    draw_pose_axes,
    pose_axes_points,
    pose_face_map,
    project_mesh,
    render_pose_meshes,
)
from .local_visualizer import PoseLocalVisualizer

__all__ = ['PoseLocalVisualizer', 'AXIS_COLORS', 'draw_bboxes', 'draw_landmarks',
           'draw_pose_axes', 'pose_axes_points', 'pose_face_map', 'project_mesh',
           'render_pose_meshes']
