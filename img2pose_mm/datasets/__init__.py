"""Face-pose datasets and transforms, registered in mmdet's registries on import."""
from .face_annotations import AnnotationError, make_data_info
from .face_pose_dataset import (
    FACE_METAINFO,
    BaseFacePoseDataset,
    FacePoseJSONDataset,
    FacePoseLMDBDataset,
)
from .lmdb_record import RecordError
from .transforms import (
    BlackOutFacesWithoutPose,
    LoadFacePoseAnnotations,
    LoadFacePoseImage,
    PackFacePoseInputs,
    PoseMultiScaleResize,
    PoseRandomCrop,
    PoseRandomFlip,
    PoseResize,
    PoseToBBox,
    RandomContrast,
    RandomNoise,
)

__all__ = [
    'AnnotationError', 'RecordError', 'make_data_info',
    'FACE_METAINFO', 'BaseFacePoseDataset', 'FacePoseLMDBDataset', 'FacePoseJSONDataset',
    'LoadFacePoseImage', 'LoadFacePoseAnnotations', 'PoseRandomFlip', 'PoseRandomCrop',
    'PoseResize', 'PoseMultiScaleResize', 'RandomContrast', 'RandomNoise', 'PoseToBBox',
    'BlackOutFacesWithoutPose', 'PackFacePoseInputs',
]
from . import aflw2000, biwi, wider_face  # noqa: E402,F401  (benchmark datasets)
