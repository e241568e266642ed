"""WIDER FACE in its official layout (no pose: detection ground truth only; the layout
and file format: docs/datasets.md, "The releases").
"""
from __future__ import annotations

import os.path as osp
from typing import List

import numpy as np
from mmdet.registry import DATASETS

from .face_pose_dataset import BaseFacePoseDataset

WIDER_ATTRIBUTES = ('blur', 'expression', 'illumination', 'invalid', 'occlusion', 'pose')


def _is_number_row(text: str) -> bool:
    try:
        return len([float(v) for v in text.split()]) >= 4
    except ValueError:
        return False


def parse_wider_annotations(path: str) -> List[dict]:
    """Parse ``wider_face_*_bbx_gt.txt`` (or a names-only file list).

    Returns:
        One dict per image: ``file`` (``<event>/<name>.jpg``), ``boxes`` ``(K, 4)``
        float64 ``x1, y1, w, h`` and ``attributes`` ``(K, 6)`` int64 (``None`` for a
        names-only list).

    Raises:
        FileNotFoundError / ValueError naming the file and line.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'WIDER FACE annotation file not found: {path}')
    with open(path) as f:
        lines = [line.strip() for line in f]
    while lines and not lines[-1]:
        lines.pop()

    # a names-only list (the test split): no count line follows the first name
    if len(lines) < 2 or not lines[1].isdigit():
        images = []
        for n, line in enumerate(lines, 1):
            if not line:
                continue
            if not line.lower().endswith(('.jpg', '.jpeg', '.png')):
                raise ValueError(f'{path}:{n}: expected an image path, got {line!r}')
            images.append(dict(file=line, boxes=np.zeros((0, 4)), attributes=None))
        return images

    images = []
    i = 0
    while i < len(lines):
        name, n = lines[i], i + 1
        if not name:
            i += 1
            continue
        if i + 1 >= len(lines) or not lines[i + 1].isdigit():
            got = lines[i + 1] if i + 1 < len(lines) else 'end of file'
            raise ValueError(f'{path}:{n + 1}: expected the face count of {name!r}, '
                             f'got {got!r}')
        count = int(lines[i + 1])
        rows_needed = count
        if count == 0 and i + 2 < len(lines) and _is_number_row(lines[i + 2]):
            rows_needed = 1                   # the dummy row after a 0 count
        if i + 2 + rows_needed > len(lines):
            raise ValueError(f'{path}:{n}: {name!r} announces {count} faces but the file '
                             'ends early')
        rows = []
        for k in range(rows_needed):
            line_no = i + 3 + k
            values = lines[i + 2 + k].split()
            if len(values) < 4:
                raise ValueError(f'{path}:{line_no}: expected `x1 y1 w h blur expression '
                                 f'illumination invalid occlusion pose`, got '
                                 f'{lines[i + 2 + k]!r}')
            try:
                rows.append([float(v) for v in values[:10]] + [0.0] * (10 - len(values)))
            except ValueError:
                raise ValueError(
                    f'{path}:{line_no}: not numbers: {lines[i + 2 + k]!r}') from None
        table = np.asarray(rows[:count], dtype=np.float64).reshape(-1, 10)
        images.append(dict(file=name, boxes=table[:, :4],
                           attributes=table[:, 4:].astype(np.int64)))
        i += 2 + rows_needed
    return images


@DATASETS.register_module()
class WIDERFaceOfficialDataset(BaseFacePoseDataset):
    """WIDER FACE from ``wider_face_split/wider_face_<split>_bbx_gt.txt`` + images.

    ``data_info``::

        dict(img_id='<event>/<name>', img_path='<img prefix>/<event>/<name>.jpg',
             event='<event>', name='<name>',
             instances=[dict(bbox=[x1, y1, x1 + w, y1 + h], bbox_label=0, ignore_flag=0,
                             wider_attributes=dict(blur=..., ..., pose=...)), ...])

    WIDER has no poses (``LoadFacePoseAnnotations`` gives every face an invalid pose), but
    every face stays a counted detection face (``ignore_flag=0``) unless
    ``invalid_as_ignored`` and its ``invalid`` attribute is set. The official
    easy/medium/hard selection lives in the .mat files read by ``WIDERFaceMetric``.
    Pack ``event`` and ``name`` (or keep ``img_path``) for the submission layout.

    Args:
        ann_file: the ``bbx_gt.txt`` (or the test ``filelist.txt``), relative to
            ``data_root``.
        data_prefix: ``dict(img='WIDER_val/images/')``.
        invalid_as_ignored: mark faces flagged ``invalid`` as ignored.
        filter_cfg: ``filter_empty_gt`` drops images without counted faces (train
            mode only).
    """

    def __init__(self, *args, invalid_as_ignored: bool = False, **kwargs) -> None:
        self.invalid_as_ignored = invalid_as_ignored
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the annotation file."""
        img_root = self.data_prefix.get('img', self.data_prefix.get('img_path', ''))
        data_list = []
        for image in parse_wider_annotations(self.ann_file):
            rel = image['file'].replace('\\', '/')
            event = osp.dirname(rel) or osp.basename(osp.dirname(osp.join(img_root, rel)))
            name = osp.splitext(osp.basename(rel))[0]
            instances = []
            attributes = image['attributes']
            for k, (x, y, w, h) in enumerate(image['boxes']):
                attrs = (dict(zip(WIDER_ATTRIBUTES, attributes[k].tolist()))
                         if attributes is not None else {})
                ignore = int(self.invalid_as_ignored and attrs.get('invalid', 0) == 1)
                instances.append(dict(
                    bbox=[float(x), float(y), float(x + w), float(y + h)], bbox_label=0,
                    ignore_flag=ignore, wider_attributes=attrs))
            data_list.append(dict(img_id=f'{event}/{name}', img_path=osp.join(img_root, rel),
                                  event=event, name=name, instances=instances))
        return data_list


__all__ = ['WIDER_ATTRIBUTES', 'parse_wider_annotations', 'WIDERFaceOfficialDataset']
