"""Deployment: the whole detector as one ONNX graph of standard operators.

* :class:`ExportableImg2Pose` -- the two-stage detector's inference written for
  ``torch.export``; :class:`ExportableRetinaImg2Pose` -- the one-stage detector's
  (``DoFRetinaHead``, pose voting included);
* :func:`export_onnx` -- trace, simplify, record metadata, check;
* :func:`compare_detections` -- how far two detection sets of one image are apart.

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
