"""Deployment: the whole detector as one ONNX graph of standard operators (docs/deployment.md).

The onnxruntime backend that runs the graph is
:class:`img2pose_mm.apis.onnx_backend.OnnxRuntimeDetector`.
"""
from .comparison import DetectionDiff, compare_detections
from .exportable import INPUT_NAMES, OUTPUT_NAMES, ExportableImg2Pose, check_exportable
from .exportable_retina import ExportableRetinaImg2Pose, check_retina_exportable
from .onnx_export import (
    FORMAT_VERSION,
    build_exportable,
    export_onnx,
    read_metadata,
    simplify_graph,
)

__all__ = ['ExportableImg2Pose', 'ExportableRetinaImg2Pose', 'check_exportable',
           'check_retina_exportable', 'build_exportable', 'INPUT_NAMES', 'OUTPUT_NAMES',
           'export_onnx', 'read_metadata', 'simplify_graph', 'FORMAT_VERSION',
           'DetectionDiff', 'compare_detections']
