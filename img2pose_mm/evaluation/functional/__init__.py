"""Pure evaluation functions (numpy): the WIDER FACE protocol and head-pose helpers."""
from .head_pose import angle_errors, select_by_center, select_by_iou
from .wider_face import (
    WIDER_SETTINGS,
    WIDER_THRESH_NUM,
    WIDERImageGT,
    evaluate_wider,
    normalize_scores,
    sort_by_score,
    wider_box_overlaps,
    wider_image_eval,
    wider_image_pr_info,
    wider_pr_curve,
    wider_voc_ap,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from .wider_face_files import (
    load_wider_ground_truth,
    read_wider_submission,
    write_wider_submission,
)

__all__ = [
    'angle_errors', 'select_by_center', 'select_by_iou', 'WIDER_SETTINGS', 'WIDER_THRESH_NUM',
    'WIDERImageGT', 'evaluate_wider', 'load_wider_ground_truth', 'normalize_scores',
    'read_wider_submission', 'sort_by_score', 'wider_box_overlaps', 'wider_image_eval',
    'wider_image_pr_info', 'wider_pr_curve', 'wider_voc_ap', 'write_wider_submission',
    'xywh_to_xyxy', 'xyxy_to_xywh',
]
