"""``Img2Pose``: the high-level face detection, 6DoF pose and alignment API.

A thin layer over mmdet's inference: the model is built by
:func:`mmdet.apis.init_detector`, images go through the config's test pipeline and the
whole list through ``model.test_step`` in one batch.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config

from img2pose_mm.structures import CameraLike

from .alignment import SizeLike, align_faces, keypoints_from_faces
from .detector_loading import detector_face_model, init_face_detector
from .face_outputs import FaceOutputs, faces_from_poses
from .given_boxes import check_boxes, predict_for_boxes
from .image_io import ImageSource, load_image
from .model_config import build_inference_pipeline, resolve_device
from .onnx_backend import BACKENDS, load_onnx_detector

Face = Dict[str, Any]
CHANNEL_ORDERS = ('rgb', 'bgr')


class Img2Pose:
    """Detect faces with their 6DoF poses, and align them.

    Args:
        config: config path or :class:`mmengine.Config`; ``None``: the config the
            checkpoint was trained or converted with (``meta['cfg']``), else the
            packaged ``configs/img2pose_r18.py``.
        checkpoint: weights (``.pth``, trained by ``tools/train.py`` or converted from the
            original release). ``None`` gives a randomly initialised model, with a
            warning: its detections are meaningless.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ... or ``'auto'``.
        score_threshold: faces with a lower confidence are dropped.
        max_faces: keep at most this many faces per image (the most confident);
            ``<= 0`` keeps all.
        min_size, max_size: test resize (short side ``min_size`` unless the long side
            would pass ``max_size``); ``None`` (default) keeps the config's test resize.
        cfg_options: overrides merged into the config (as ``--cfg-options``).
        batch_size: images per forward pass of :meth:`detect_faces` (``None``: the
            whole list at once).
        channel_order: colour order of *arrays* passed in: ``'rgb'`` (default, as PIL
            and matplotlib) or ``'bgr'`` (``cv2.imread``). Paths and PIL images are
            always read correctly.
        euler: convention of ``face['euler']`` (``'aflw'``: the yaw / pitch / roll of the
            paper and of the AFLW2000-3D / BIWI protocols; or a Tait-Bryan order such as
            ``'XYZ'``, see :mod:`img2pose_mm.structures.euler`); ``None`` drops the key.
        landmarks: ``68`` adds ``face['landmarks']``, the 68 reference points projected
            with the pose (iBUG order, pixels).
        camera: the camera ``pose`` and ``euler`` are expressed in: ``None`` (img2pose's
            camera of each image), a focal length in pixels (principal point at
            ``(w // 2, h // 2)``) or a ``3 x 3`` intrinsic matrix. Boxes, keypoints and
            landmarks are pixels and do not change (docs/conventions.md, "Your camera").
        backend: ``'pytorch'`` (default) or ``'onnxruntime'``: run the graph
            ``onnx_file`` exported by ``tools/deployment/export_onnx.py`` instead (no
            checkpoint needed: the graph holds the weights, the face model and, unless
            ``config`` is given, the config of its test pipeline; its test settings are
            fixed at export). Same outputs, same alignment.
        onnx_file: the exported graph for ``backend='onnxruntime'``.
        num_threads: onnxruntime's intra-op CPU threads (``backend='onnxruntime'``;
            ``None``: one per core). PyTorch's are ``torch.set_num_threads``.

    :meth:`detect_faces` and :meth:`estimate_poses` take ``euler``, ``landmarks`` and
    ``camera`` per call too (the constructor's values by default). Each face is a dict
    with ``box``, ``confidence``, ``pose``, ``euler``, ``keypoints`` (and ``landmarks``),
    sorted by confidence (docs/conventions.md, "What the numbers mean").
    """

    def __init__(self,
                 config: Union[str, os.PathLike, Config, None] = None,
                 checkpoint: Union[str, os.PathLike, None] = None,
                 device: Optional[str] = 'auto',
                 score_threshold: float = 0.5,
                 max_faces: int = -1,
                 min_size: Optional[int] = None,
                 max_size: Optional[int] = None,
                 cfg_options: Optional[dict] = None,
                 batch_size: Optional[int] = None,
                 channel_order: str = 'rgb',
                 euler: Optional[str] = 'aflw',
                 landmarks: Optional[int] = None,
                 camera: CameraLike = None,
                 backend: str = 'pytorch',
                 onnx_file: Union[str, os.PathLike, None] = None,
                 num_threads: Optional[int] = None) -> None:
        from mmcv.transforms import Compose
        from mmdet.registry import TRANSFORMS

        if checkpoint is not None:
            checkpoint = os.fspath(checkpoint)
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f'batch_size must be >= 1 or None, got {batch_size}')
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f'channel_order must be one of {CHANNEL_ORDERS}, got '
                             f'{channel_order!r}')
        self.score_threshold = float(score_threshold)
        self.max_faces = int(max_faces)
        self.batch_size = None if batch_size is None else int(batch_size)
        self.channel_order = channel_order
        self.outputs = FaceOutputs(euler=euler, landmarks=landmarks, camera=camera)
        self.device = resolve_device(device)
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}')
        self.backend = backend
        if backend == 'onnxruntime':
            if checkpoint is not None:
                raise ValueError("backend='onnxruntime' takes no checkpoint: the graph "
                                 f'{onnx_file} holds the weights (got checkpoint={checkpoint})')
            self.model, cfg = load_onnx_detector(onnx_file, config, cfg_options, device,
                                                 self.score_threshold, num_threads)
        else:
            self.model = init_face_detector(config, checkpoint, cfg_options, self.device,
                                            self.score_threshold)
            cfg = self.model.cfg
        self.cfg = cfg
        self.pipeline_cfg = build_inference_pipeline(cfg, min_size, max_size)
        self.pipeline = Compose([TRANSFORMS.build(step) for step in self.pipeline_cfg])
        self.face_model = detector_face_model(self.model)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _as_batch(images: Any) -> Tuple[List[Any], bool]:
        if isinstance(images, (list, tuple)):
            return list(images), True
        return [images], False

    def _load_one(self, image: ImageSource, name: str = 'image') -> np.ndarray:
        """An RGB uint8 array of ``image`` (arrays are read in ``channel_order``)."""
        array = load_image(image, name)
        if self.channel_order == 'bgr' and isinstance(image, np.ndarray) and image.ndim == 3 \
                and image.shape[2] >= 3:
            array = np.ascontiguousarray(array[..., ::-1])
        return array

    @torch.no_grad()
    def predict(self, images: Sequence[np.ndarray]) -> list:
        """mmdet predictions (``DetDataSample``, on the CPU) of RGB uint8 arrays run as
        one batch (or ``batch_size`` chunks)."""
        from mmengine.dataset import pseudo_collate
        if len(images) == 0:
            return []
        step = self.batch_size or len(images)
        samples = []
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            # mmdet pipelines and data preprocessors expect BGR images
            data = [self.pipeline(dict(img=np.ascontiguousarray(img[..., ::-1]), img_id=start + i))
                    for i, img in enumerate(chunk)]
            outputs = self.model.test_step(pseudo_collate(data))
            samples += [out.cpu() for out in outputs]
        return samples

    def _to_faces(self, sample, img_shape: Tuple[int, int],
                  outputs: Optional[FaceOutputs] = None) -> List[Face]:
        pred = sample.pred_instances
        if 'poses' not in pred:
            raise RuntimeError('the model predicts no poses (pred_instances.poses): Img2Pose '
                               'needs a detector with an img2pose 6DoF head (DoFRoIHead, '
                               'DoFRetinaHead)')
        scores = pred.scores.detach().double()
        keep = scores >= self.score_threshold
        order = torch.argsort(scores[keep], descending=True, stable=True)
        if self.max_faces > 0:
            order = order[:self.max_faces]
        idx = torch.nonzero(keep).flatten()[order]
        return faces_from_poses(pred.poses[idx], scores[idx], img_shape, self.face_model,
                                outputs or self.outputs, boxes=pred.bboxes[idx])

    # ------------------------------------------------------------------ public API
    def detect_faces(self, images: Union[ImageSource, Sequence[ImageSource]],
                     euler: Optional[str] = ..., landmarks: Optional[int] = ...,
                     camera: CameraLike = ...) -> Union[List[Face], List[List[Face]]]:
        """Faces of one image (a list of face dicts) or of a list of images run as one
        batch (a list of such lists; ``[]`` for an empty list).

        Args:
            images: a path, a PIL image, an RGB array, or a list/tuple of them.
            euler, landmarks, camera: this call's face contents (see the class
                docstring; default: the detector's). A focal-length camera puts the
                principal point at the centre of each image.
        """
        items, is_batch = self._as_batch(images)
        outputs = self.outputs.replace(euler=euler, landmarks=landmarks, camera=camera)
        arrays = [self._load_one(img, f'images[{i}]' if is_batch else 'image')
                  for i, img in enumerate(items)]
        faces = self._detect(arrays, outputs)
        return faces if is_batch else faces[0]

    def _detect(self, arrays: List[np.ndarray],
                outputs: Optional[FaceOutputs] = None) -> List[List[Face]]:
        """Faces of RGB uint8 arrays."""
        return [self._to_faces(s, a.shape[:2], outputs)
                for s, a in zip(self.predict(arrays), arrays)]

    def estimate_poses(self, image: ImageSource, boxes, euler: Optional[str] = ...,
                       landmarks: Optional[int] = ..., camera: CameraLike = ...) -> List[Face]:
        """Poses of the faces in ``boxes`` (found by another detector, a tracker, a user):
        one face per box, in order, no threshold, no NMS, ``max_faces`` ignored
        (docs/conventions.md, "Poses for boxes found by another detector").

        Args:
            image: a path, a PIL image or an RGB array.
            boxes: ``(N, 4)`` ``[x1, y1, x2, y2]`` pixels of ``image`` (``(N, 5)``: the
                fifth column, a detector's score, is ignored); ``[]`` gives ``[]``.
            euler, landmarks, camera: as in :meth:`detect_faces`.

        Returns:
            one face dict per box: ``confidence`` is img2pose's face score of the box,
            ``box`` the box projected from the estimated pose (as in detection, not the
            given box), ``pose``, ``euler``, ``keypoints`` (and ``landmarks``) as in
            :meth:`detect_faces`.

        Raises:
            ValueError: malformed boxes: a wrong shape, non-finite numbers, a degenerate
                box (``x2 <= x1`` or ``y2 <= y1``) or one entirely outside the image (the
                message names the box indices).
            NotImplementedError: ``backend='onnxruntime'`` (the exported graph makes its
                own proposals; given boxes need the PyTorch detector).
        """
        if self.backend != 'pytorch':
            raise NotImplementedError(
                f'estimate_poses (given boxes) needs the PyTorch detector: the graph '
                f'{self.model.onnx_file} makes its own proposals (use backend=\'pytorch\' '
                'with the checkpoint it was exported from)')
        array = self._load_one(image)
        checked = check_boxes(boxes, array.shape[:2])
        outputs = self.outputs.replace(euler=euler, landmarks=landmarks, camera=camera)
        if len(checked) == 0:
            return []
        pred = predict_for_boxes(self.model, self.pipeline,
                                 np.ascontiguousarray(array[..., ::-1]), checked)
        return faces_from_poses(pred.poses, pred.scores, array.shape[:2], self.face_model,
                                outputs, boxes=pred.bboxes)

    def faces_from_poses(self, poses, scores, img_shape: Sequence[int], boxes=None,
                         euler: Optional[str] = ..., landmarks: Optional[int] = ...,
                         camera: CameraLike = ...) -> List[Face]:
        """Face dicts of global poses ``(N, 6)`` in img2pose's camera of an image ``(h, w)``
        (e.g. poses smoothed over video frames): what :meth:`detect_faces` reports for
        them. ``boxes`` default to the boxes projected from the poses."""
        outputs = self.outputs.replace(euler=euler, landmarks=landmarks, camera=camera)
        return faces_from_poses(poses, scores, img_shape, self.face_model, outputs, boxes)

    __call__ = detect_faces

    def align_faces(self, image: ImageSource, faces, output_size: SizeLike = 224,
                    return_array: bool = False, template: Union[str, int] = 'auto'):
        """Aligned crops of ``faces`` (face dicts, e.g. from :meth:`detect_faces`, or
        keypoints ``(N, 5, 2)``) in ``image``.

        Returns:
            ``return_array=False``: a list of RGB ``PIL.Image``; else an ``(N, S, S, 3)``
            uint8 RGB array (``(0, S, S, 3)`` without faces).
        """
        return self._align(self._load_one(image), faces, output_size, return_array, template)

    def _align(self, array: np.ndarray, faces, output_size: SizeLike, return_array: bool,
               template: Union[str, int]):
        keypoints = keypoints_from_faces(faces, array.shape[:2], self.face_model)
        crops = align_faces(array, keypoints, output_size, template)
        return crops if return_array else _to_pil(crops)

    def detect_and_align(self, image: ImageSource, output_size: SizeLike = 224,
                         return_array: bool = False,
                         template: Union[str, int] = 'auto') -> List[Face]:
        """Detect the faces of one image and align them: a list of
        ``{'image', 'box', 'confidence', 'pose', 'keypoints'}`` (``'image'``: PIL image,
        or an ``(S, S, 3)`` array with ``return_array``)."""
        array = self._load_one(image)
        faces = self._detect([array])[0]
        crops = self._align(array, faces, output_size, True, template)
        images = list(crops) if return_array else _to_pil(crops)
        return [{'image': crop, **face} for crop, face in zip(images, faces)]

    def align_faces_batch(self, images: Sequence[ImageSource], faces_per_image: Sequence,
                          output_size: SizeLike = 224, return_array: bool = True,
                          template: Union[str, int] = 'auto') -> list:
        """:meth:`align_faces` for each image: one result per image (an ``(N_i, S, S, 3)``
        array, or a list of PIL images without ``return_array``)."""
        images, _ = self._as_batch(images)
        faces_per_image = list(faces_per_image)
        if len(images) != len(faces_per_image):
            raise ValueError(f'got {len(images)} images but faces for {len(faces_per_image)}')
        results = []
        for i, (image, faces) in enumerate(zip(images, faces_per_image)):
            array = self._load_one(image, f'images[{i}]')
            results.append(self._align(array, faces, output_size, return_array, template))
        return results

    def __repr__(self) -> str:
        backend = '' if self.backend == 'pytorch' else f', backend={self.backend!r}'
        return (f'{self.__class__.__name__}(device={self.device!r}, score_threshold='
                f'{self.score_threshold}, max_faces={self.max_faces}, euler='
                f'{self.outputs.euler!r}, landmarks={self.outputs.landmarks}, camera='
                f'{"image" if self.outputs.camera is None else "user"}{backend})')


def _to_pil(crops: np.ndarray) -> list:
    from PIL import Image
    return [Image.fromarray(np.ascontiguousarray(crop)) for crop in crops]


__all__ = ['Img2Pose']
