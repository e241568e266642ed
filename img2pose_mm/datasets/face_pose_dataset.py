"""Face-pose datasets: the LMDB made by ``tools/dataset_converters/json_to_lmdb.py`` and a
plain folder variant (images + JSON list); ``data_info`` and pipelines: docs/datasets.md.
"""
from __future__ import annotations

import logging
import os.path as osp
from typing import Any, List, Tuple

import numpy as np
from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from img2pose_mm.structures import FaceModel, FaceModelLike, FacePoses

from .face_annotations import (
    AnnotationError,
    iter_json_list,
    make_data_info,
    parse_json_line,
    resolve_image_path,
)
from .face_labelling import MIN_POSE_BOX_IOU, annotate_image
from .image_files import image_shape_from_header
from .lmdb_record import RecordError, decode_record, read_keys, shared_readonly_env
from .metainfo import FACE_METAINFO

_ARRAY_KEYS = ('bboxes', 'poses', 'pose_valid', 'landmarks')


class BaseFacePoseDataset(BaseDetDataset):
    """Common part of the face datasets: one class ``face``, ``data_prefix`` defaulting to
    ``dict(img='')`` and the filters.

    ``filter_cfg`` (train only): ``filter_empty_gt`` drops images without a counted face
    (with the face-pose datasets, a face that has a pose); ``min_size`` drops images
    whose width or height is smaller (images of unknown size are kept).
    """

    METAINFO = FACE_METAINFO

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault('data_prefix', dict(img=''))
        super().__init__(*args, **kwargs)

    def _serialize_data(self) -> Tuple[np.ndarray, np.ndarray]:
        """mmengine's serialisation, which fails on an empty dataset (all images
        filtered or skipped): an empty dataset is served as empty."""
        if not self.data_list:
            return np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=np.int64)
        return super()._serialize_data()

    def filter_data(self) -> List[dict]:
        """Apply ``filter_cfg`` (nothing in test mode)."""
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        empty = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept = []
        for info in self.data_list:
            if empty and not any(not inst['ignore_flag'] for inst in info['instances']):
                continue
            if min(info.get('width', min_size), info.get('height', min_size)) < min_size:
                continue
            kept.append(info)
        return kept


@DATASETS.register_module()
class FacePoseLMDBDataset(BaseFacePoseDataset):
    """Faces with 6DoF poses from a face-pose LMDB (``ann_file`` = the ``.lmdb`` folder).

    Annotations are read when the dataset is built, image bytes per sample (from an
    environment opened in each process) as ``results['img_bytes']`` for
    :class:`LoadFacePoseImage`.

    Extra ``data_info`` keys: ``lmdb_key`` (the record key, also ``img_id``) and
    ``source_line`` (its line in the JSON list).
    """

    def _lmdb(self):
        """This process's read-only environment (opened lazily, never shared across fork)."""
        return shared_readonly_env(self.ann_file)

    # -- annotations ---------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        """Read every record's annotations (not the images)."""
        path = self.ann_file
        if not osp.isdir(path):
            if osp.isdir(path + '.partial'):
                raise FileNotFoundError(f'{path} not found but {path}.partial exists: the '
                                        'conversion was interrupted; rerun json_to_lmdb.py '
                                        'with --resume')
            raise FileNotFoundError(f'face-pose LMDB not found: {path}')
        data_list = []
        with self._lmdb().begin(buffers=True) as txn:
            for key in read_keys(txn, path):
                raw = txn.get(key.encode())
                if raw is None:
                    raise RecordError(f'{path}: record {key!r} is listed in __keys__ but '
                                      'missing')
                header, arrays, _ = decode_record(raw, key, with_image=False)
                absent = [k for k in _ARRAY_KEYS if k not in arrays]
                if absent:
                    raise RecordError(f'{path}: record {key!r} lacks {absent}')
                img_shape = (header['height'], header['width'])
                data_list.append(make_data_info(
                    img_id=key, img_path=header['image_path'], height=img_shape[0],
                    width=img_shape[1], bboxes=arrays['bboxes'],
                    poses=FacePoses.from_numpy(arrays['poses'], img_shape, arrays['pose_valid']),
                    landmarks=arrays['landmarks'], lmdb_key=key, source_line=header.get('line')))
        return data_list

    # -- samples -------------------------------------------------------------------
    def _read_image(self, key: str) -> bytes:
        with self._lmdb().begin(buffers=True) as txn:
            raw = txn.get(key.encode())
            if raw is None:
                raise RecordError(f'{self.ann_file}: record {key!r} not found')
            _, _, image = decode_record(raw, key, with_arrays=False)
        return image

    def prepare_data(self, idx: int) -> Any:
        """``data_info`` plus ``img_bytes`` through the pipeline."""
        data_info = self.get_data_info(idx)
        data_info['img_bytes'] = self._read_image(data_info['lmdb_key'])
        return self.pipeline(data_info)


@DATASETS.register_module()
class FacePoseJSONDataset(BaseFacePoseDataset):
    """Faces with 6DoF poses from an img2pose JSON list and an image folder (no LMDB).

    Poses are computed with EPnP when the dataset is built (as the converter does), so
    use it for small or quick data. Image paths are taken as written when absolute,
    else relative to ``data_prefix['img']`` (default: the JSON list's folder). Lines
    that are malformed or name a missing/unreadable image are skipped with a warning
    naming the line. Load images with :class:`LoadFacePoseImage` or mmcv's
    ``LoadImageFromFile``.

    Args:
        face_model: the face model that labels the faces (default: the packaged face).
        labelling, min_pose_iou, keep_images_without_pose: as the LMDB converter
            (:func:`~img2pose_mm.datasets.lmdb_converter.convert`).
    """

    def __init__(self, *args, face_model: FaceModelLike = None, labelling: str = 'box',
                 min_pose_iou: float = MIN_POSE_BOX_IOU,
                 keep_images_without_pose: bool = False, **kwargs) -> None:
        self.face_model = FaceModel.build(face_model)
        self.labelling = labelling
        self.min_pose_iou = min_pose_iou
        self.keep_images_without_pose = keep_images_without_pose
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Parse the JSON list and estimate the poses."""
        json_path = self.ann_file
        if not osp.isfile(json_path):
            raise FileNotFoundError(f'JSON list not found: {json_path}')
        prefix = self.data_prefix.get('img', self.data_prefix.get('img_path', ''))
        image_root = prefix or None
        data_list = []
        for line_no, text in iter_json_list(json_path):
            try:
                ann = parse_json_line(text)
                path = resolve_image_path(ann['image_path'], image_root, json_path)
                height, width = image_shape_from_header(path)
                faces = annotate_image(ann, (height, width), self.face_model, self.labelling,
                                       self.min_pose_iou)
                if not self.keep_images_without_pose and not faces['poses'].valid.any():
                    raise AnnotationError('no face with a pose')
            except (AnnotationError, OSError, ValueError) as err:
                print_log(f'{json_path} line {line_no}: skipped: {err}', logger='current',
                          level=logging.WARNING)
                continue
            data_list.append(make_data_info(
                img_id=str(line_no), img_path=path, height=height, width=width,
                bboxes=faces['bboxes'], poses=faces['poses'], landmarks=faces['landmarks'],
                source_line=line_no))
        return data_list


__all__ = ['FACE_METAINFO', 'BaseFacePoseDataset', 'FacePoseLMDBDataset', 'FacePoseJSONDataset']
