"""Export an img2pose detector to one ONNX graph of standard operators, with metadata.

The export, its simplification and the metadata keys: docs/deployment.md, "Export".
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from .exportable import INPUT_NAMES, OUTPUT_NAMES, ExportableImg2Pose, is_one_stage
from .exportable_retina import ExportableRetinaImg2Pose

Exportable = Union[ExportableImg2Pose, ExportableRetinaImg2Pose]

#: Version of the graph interface and metadata written by :func:`export_onnx`.
FORMAT_VERSION = 1
METADATA_PREFIX = 'img2pose_mm.'


def build_exportable(detector: nn.Module) -> Exportable:
    """The exportable forward pass of a detector: :class:`ExportableRetinaImg2Pose` for a
    one-stage detector (a ``bbox_head``, no ``roi_head``), else :class:`ExportableImg2Pose`
    (``TypeError`` naming what cannot be exported)."""
    if is_one_stage(detector):
        return ExportableRetinaImg2Pose(detector)
    return ExportableImg2Pose(detector)


def graph_metadata(detector: nn.Module, exportable: Exportable, dynamic: bool,
                   input_shape: Tuple[int, int], checkpoint: Optional[str] = None
                   ) -> Dict[str, str]:
    """The metadata an img2pose graph carries (docs/deployment.md, "Export")."""
    from img2pose_mm.version import __version__

    face = exportable.face_model
    pre = detector.data_preprocessor
    face_model = dict(face.settings(), points_68=face.points_68.tolist(),
                      points_5=face.points_5.tolist())
    test_cfg = exportable.test_settings()
    image = dict(name=INPUT_NAMES[0], dtype='uint8', layout='NCHW', batch=1,
                 channel_order='bgr' if pre._channel_conversion else 'rgb',
                 dynamic=bool(dynamic), shape=None if dynamic else list(input_shape))
    cfg = getattr(detector, 'cfg', None)
    meta = {
        'format': str(FORMAT_VERSION),
        'version': __version__,
        'face_model': json.dumps(face_model),
        'test_cfg': json.dumps(test_cfg),
        'architecture': ('one_stage' if isinstance(exportable, ExportableRetinaImg2Pose)
                         else 'two_stage'),
        'input': json.dumps(image),
        'outputs': json.dumps(list(OUTPUT_NAMES)),
        'dataset_meta': json.dumps({k: list(v) if isinstance(v, tuple) else v
                                    for k, v in (getattr(detector, 'dataset_meta', None)
                                                 or {}).items()}),
        'checkpoint': os.path.basename(checkpoint) if checkpoint else '',
        'config': cfg.pretty_text if cfg is not None else '',
    }
    return {METADATA_PREFIX + key: value for key, value in meta.items()}


def read_metadata(props: Dict[str, str]) -> Dict[str, Any]:
    """The img2pose metadata of a graph (``{key: value}``, JSON parsed), ``{}`` if none."""
    meta = {}
    for key, value in props.items():
        if not key.startswith(METADATA_PREFIX):
            continue
        key = key[len(METADATA_PREFIX):]
        if key in ('face_model', 'test_cfg', 'input', 'outputs', 'dataset_meta'):
            value = json.loads(value)
        meta[key] = value
    return meta


def simplify_graph(model) -> None:
    """Simplify an ``onnx_ir`` model in place with passes that keep every value exact.

    Functions are inlined, constants folded (shapes included), unused nodes and
    initializers removed, identical initializers and subexpressions shared. The
    onnxscript optimizer's pattern rewrites are left out: they are slow on a graph this
    size and onnxruntime fuses operators itself when it loads the model.
    """
    import onnx_ir as ir
    import onnx_ir.passes.common as common
    from onnxscript import optimizer

    common.InlinePass()(model)
    for _ in range(2):
        optimizer.fold_constants(model)
        optimizer.remove_unused_nodes(model)
    ir.passes.Sequential(
        common.RemoveUnusedFunctionsPass(),
        common.RemoveUnusedOpsetsPass(),
        common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0),
        common.DeduplicateInitializersPass(),
        common.CommonSubexpressionEliminationPass(),
        common.RemoveUnusedNodesPass(),
    )(model)


def export_onnx(detector: nn.Module,
                output_file: Union[str, os.PathLike],
                dynamic: bool = True,
                input_shape: Sequence[int] = (640, 960),
                opset: Optional[int] = None,
                simplify: bool = True,
                checkpoint: Optional[str] = None,
                verbose: bool = False) -> str:
    """Export an img2pose detector as one ONNX graph.

    Args:
        detector: a built and loaded img2pose detector, two-stage (``DoFRoIHead``) or
            one-stage (``DoFRetinaHead``), on the CPU, eval mode.
        output_file: the ``.onnx`` file to write (weights included, one file).
        dynamic: input height and width are dynamic (any image size); otherwise the graph
            takes ``input_shape`` only.
        input_shape: ``(h, w)`` the exporter traces with (the fixed size when not dynamic;
            a dynamic one-stage graph is traced at sizes above its coarsest anchor stride,
            see :meth:`ExportableRetinaImg2Pose.check_trace_shape`).
        opset: ONNX opset (default: the exporter's, at least 18).
        simplify: run :func:`simplify_graph`.
        checkpoint: where the weights came from (recorded in the metadata).
        verbose: the exporter's progress messages.

    Returns:
        ``output_file`` as a string.
    """
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter translates with it)
    except ImportError as err:
        raise ImportError('ONNX export needs onnx and onnxscript: pip install -e .[deploy]'
                          ) from err
    output_file = os.fspath(output_file)
    input_shape = (int(input_shape[0]), int(input_shape[1]))
    if min(input_shape) < 1:
        raise ValueError(f'input_shape must be two positive sizes, got {input_shape}')
    if opset is not None and int(opset) < 18:
        raise ValueError(f'opset must be >= 18 (the torch.export-based exporter), got {opset}')
    detector = detector.cpu().eval()
    exportable = build_exportable(detector).eval()
    # the input the exporter traces with: noise
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 3, *input_shape),
                                                               dtype=np.uint8))
    dynamic_shapes = None
    tracing = contextlib.nullcontext()
    if dynamic:
        dynamic_shapes = {'image': {2: torch.export.Dim('height', min=2, max=16384),
                                    3: torch.export.Dim('width', min=2, max=16384)}}
        if isinstance(exportable, ExportableRetinaImg2Pose):
            exportable.check_trace_shape(input_shape)
            tracing = exportable.tracing()
    with warnings.catch_warnings(), tracing:
        # torchvision's NMS meta function uses a deprecated name for a dynamic size
        warnings.filterwarnings('ignore', message='`create_unbacked_symint` is deprecated')
        with torch.no_grad():
            program = torch.onnx.export(
                exportable, (image, ), dynamo=True, input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES), dynamic_shapes=dynamic_shapes,
                opset_version=opset, optimize=False, external_data=False, verbose=verbose)
    model = program.model
    if dynamic and any(isinstance(dim, int) for dim in model.graph.inputs[0].shape[2:]):
        raise ValueError(f'the exporter fixed the input size to {input_shape} although a '
                         'dynamic graph was asked for: trace with another input_shape')
    if simplify:
        simplify_graph(model)
    model.metadata_props.update(
        graph_metadata(detector, exportable, dynamic, input_shape, checkpoint))
    directory = os.path.dirname(os.path.abspath(output_file))
    os.makedirs(directory, exist_ok=True)
    program.save(output_file, external_data=False)
    onnx.checker.check_model(output_file, full_check=True)
    return output_file


__all__ = ['export_onnx', 'build_exportable', 'simplify_graph', 'graph_metadata', 'read_metadata',
           'FORMAT_VERSION', 'METADATA_PREFIX']
