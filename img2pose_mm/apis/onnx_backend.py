"""The onnxruntime backend of :class:`~img2pose_mm.apis.Img2Pose` (``backend='onnxruntime'``).

:class:`OnnxRuntimeDetector` runs a graph of ``tools/deployment/export_onnx.py`` behind
mmdet's ``test_step`` interface (docs/deployment.md, "Run").
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config

from img2pose_mm.structures import FaceModel

from .model_config import read_config

#: What every img2pose graph takes and gives: ``name -> (ONNX type, rank)``.
GRAPH_INPUTS = {'image': ('tensor(uint8)', 4)}
GRAPH_OUTPUTS = {'boxes': ('tensor(float)', 2), 'scores': ('tensor(float)', 1),
                 'labels': ('tensor(int64)', 1), 'poses': ('tensor(float)', 2)}
BACKENDS = ('pytorch', 'onnxruntime')


def providers_for(device: Optional[str], available: Sequence[str]) -> List[str]:
    """onnxruntime execution providers for a torch-style device string (``'auto'``: CUDA
    when this onnxruntime has it)."""
    if device in (None, 'auto'):
        device = 'cuda' if 'CUDAExecutionProvider' in available else 'cpu'
    if str(device).startswith('cuda'):
        if 'CUDAExecutionProvider' not in available:
            raise RuntimeError(f'device {device!r} requested but this onnxruntime has no CUDA '
                               f'provider (it has {list(available)}); use device=\'cpu\'')
        return ['CUDAExecutionProvider', 'CPUExecutionProvider']
    return ['CPUExecutionProvider']


class OnnxRuntimeDetector:
    """An img2pose ONNX graph in onnxruntime, with ``test_step`` like an mmdet detector.

    Args:
        onnx_file: the graph (``tools/deployment/export_onnx.py``).
        device: ``'cpu'``, ``'cuda'`` (onnxruntime-gpu) or ``'auto'``.
        num_threads: onnxruntime's intra-op threads (``None``: its default, one per core).

    Attributes:
        metadata: the graph's img2pose metadata (see
            :func:`~img2pose_mm.deployment.onnx_export.read_metadata`).
        face_model: the face model that decoded the poses (from the metadata).
        cfg: the config the graph was exported with, or ``None``.
        dataset_meta: the class names.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable ONNX model, or not an img2pose graph (what is wrong is
            said, with the file name).
    """

    def __init__(self, onnx_file: Union[str, os.PathLike], device: str = 'cpu',
                 num_threads: Optional[int] = None) -> None:
        from img2pose_mm.deployment.onnx_export import FORMAT_VERSION, read_metadata

        if onnx_file is None:
            raise ValueError("backend='onnxruntime' needs onnx_file=<exported .onnx graph>")
        self.onnx_file = os.fspath(onnx_file)
        if not os.path.isfile(self.onnx_file):
            raise FileNotFoundError(f'ONNX file not found: {self.onnx_file}')
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ImportError("backend='onnxruntime' needs onnxruntime: pip install -e .[deploy]"
                              ) from err
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                self.onnx_file, options,
                providers=providers_for(device, ort.get_available_providers()))
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types
            raise ValueError(f'{self.onnx_file} is not a readable ONNX model: {err}') from err
        self._check_signature()
        self.metadata = read_metadata(self.session.get_modelmeta().custom_metadata_map)
        if str(self.metadata.get('format')) != str(FORMAT_VERSION) \
                or 'face_model' not in self.metadata:
            raise ValueError(f'{self.onnx_file} has no img2pose_mm metadata of format '
                             f'{FORMAT_VERSION} (found {self.metadata.get("format")!r}); '
                             'export it with tools/deployment/export_onnx.py')
        face = dict(self.metadata['face_model'])
        points_68, points_5 = face.pop('points_68'), face.pop('points_5')
        self.face_model = FaceModel(np.asarray(points_68, np.float32),
                                    np.asarray(points_5, np.float32), **face)
        self.face_model.source_68 = self.face_model.source_5 = 'onnx'
        self.input_spec = dict(self.metadata.get('input', {}))
        self.test_cfg = dict(self.metadata.get('test_cfg', {}))
        text = self.metadata.get('config') or ''
        self.cfg = Config.fromstring(text, file_format='.py') if text else None
        self.dataset_meta = dict(self.metadata.get('dataset_meta') or {})

    def _check_signature(self) -> None:
        """The graph's inputs and outputs are those of an img2pose graph."""
        problems = []
        for kind, nodes, expected in (('input', self.session.get_inputs(), GRAPH_INPUTS),
                                      ('output', self.session.get_outputs(), GRAPH_OUTPUTS)):
            found = {node.name: (node.type, len(node.shape)) for node in nodes}
            if found != expected:
                problems.append(f'{kind}s {found} (expected {expected})')
        if problems:
            raise ValueError(f'{self.onnx_file} is not an img2pose_mm graph: it has '
                             + '; '.join(problems))

    # ------------------------------------------------------------------ running
    def __call__(self, image: Union[np.ndarray, torch.Tensor]) -> Dict[str, np.ndarray]:
        """Run the graph on one ``(3, H, W)`` or ``(1, 3, H, W)`` uint8 image (in the
        channel order of :attr:`input_spec`); returns ``boxes, scores, labels, poses``."""
        array = image.cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if array.ndim == 3:
            array = array[None]
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[:2] != (1, 3):
            raise ValueError(f'the graph takes one uint8 (1, 3, H, W) image, got '
                             f'{array.dtype} {array.shape}')
        shape = self.input_spec.get('shape')
        if not self.input_spec.get('dynamic', True) and list(array.shape[2:]) != list(shape):
            raise ValueError(f'{self.onnx_file} was exported for {shape[0]}x{shape[1]} images '
                             f'only, got {array.shape[2]}x{array.shape[3]}: export it with '
                             '--dynamic to run any size')
        outputs = self.session.run(None, {'image': np.ascontiguousarray(array)})
        return dict(zip(GRAPH_OUTPUTS, outputs))

    def test_step(self, data: Dict[str, Any]) -> list:
        """Predictions of a batch made by the test pipeline (``pseudo_collate``), boxes and
        poses in each original image (``rescale=True``)."""
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        from img2pose_mm.heads import rescale_detections

        results = []
        for image, sample in zip(data['inputs'], data['data_samples']):
            outputs = {k: torch.from_numpy(v) for k, v in self(image).items()}
            bboxes, poses = rescale_detections(outputs['boxes'], outputs['poses'],
                                               sample.metainfo, self.face_model)
            pred = InstanceData(bboxes=bboxes, scores=outputs['scores'],
                                labels=outputs['labels'], poses=poses)
            out = DetDataSample(metainfo=sample.metainfo)
            out.pred_instances = pred
            results.append(out)
        return results

    def check_config(self, cfg: Config, score_threshold: Optional[float] = None) -> None:
        """Warn where ``cfg``'s test settings differ from those baked into the graph."""
        graph = self.test_cfg
        test_cfg = cfg.model.get('test_cfg', {}) if 'model' in cfg else {}
        if 'rpn' in test_cfg or 'rcnn' in test_cfg:
            rpn, rcnn = dict(test_cfg.get('rpn') or {}), dict(test_cfg.get('rcnn') or {})
            wanted = dict(nms_pre=rpn.get('nms_pre'), num_proposals=rpn.get('max_per_img'),
                          max_per_img=rcnn.get('max_per_img'))
        else:           # a one-stage detector's
            voting = test_cfg.get('pose_voting')
            wanted = dict(nms_pre=test_cfg.get('nms_pre'),
                          max_per_img=test_cfg.get('max_per_img'))
            if 'pose_voting' in test_cfg and 'pose_voting_iou_thr' in graph:
                graph = dict(graph, pose_voting=graph['pose_voting_iou_thr'] is not None)
                wanted['pose_voting'] = bool(voting)
        differ = {k: (v, graph.get(k)) for k, v in wanted.items()
                  if v is not None and graph.get(k) is not None and v != graph[k]}
        if differ:
            warnings.warn(f'{self.onnx_file} was exported with other test settings '
                          f'(config, graph): {differ}; the graph\'s apply (export again to '
                          'change them)', stacklevel=3)
        if score_threshold is not None and score_threshold < graph.get('score_thr', 0.0):
            warnings.warn(f'score_threshold {score_threshold} is below the score threshold '
                          f'{graph["score_thr"]} of {self.onnx_file}: lower-scored faces are '
                          'not in its output', stacklevel=3)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.onnx_file!r}, providers='
                f'{self.session.get_providers()})')


def load_onnx_detector(onnx_file: Union[str, os.PathLike, None],
                       config: Union[str, os.PathLike, Config, None] = None,
                       cfg_options: Optional[dict] = None, device: str = 'cpu',
                       score_threshold: Optional[float] = None,
                       num_threads: Optional[int] = None):
    """An :class:`OnnxRuntimeDetector` and the config of its test pipeline.

    The config is ``config`` when given (path or ``Config``), else the one the graph
    was exported with; ``cfg_options`` are merged into it. Settings that only the graph
    can apply (proposal counts, score threshold) warn when they differ from the graph's.
    """
    import copy

    from img2pose_mm.datasets.metainfo import FACE_METAINFO

    detector = OnnxRuntimeDetector(onnx_file, device, num_threads)
    if config is None:
        if detector.cfg is None:
            raise ValueError(f'{detector.onnx_file} carries no config: pass config=<the '
                             'config it was exported from> (its test pipeline resizes images)')
        cfg = copy.deepcopy(detector.cfg)
    else:
        cfg = read_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    detector.check_config(cfg, score_threshold)
    if tuple(detector.dataset_meta.get('classes', ())) != FACE_METAINFO['classes']:
        detector.dataset_meta = dict(FACE_METAINFO)
    return detector, cfg


__all__ = ['OnnxRuntimeDetector', 'load_onnx_detector', 'BACKENDS', 'GRAPH_INPUTS',
           'GRAPH_OUTPUTS', 'providers_for']
