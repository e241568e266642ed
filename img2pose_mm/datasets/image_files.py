"""Reading and decoding the image files that annotations name."""
from __future__ import annotations

import os.path as osp
from typing import Tuple

import mmcv
import numpy as np

from .face_annotations import AnnotationError


def read_image_bytes(path: str) -> bytes:
    """The file's bytes; :class:`AnnotationError` naming the path if unreadable."""
    if not osp.exists(path):
        raise AnnotationError(f'image not found: {path}')
    if not osp.isfile(path):
        raise AnnotationError(f'image path is not a file: {path}')
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as err:
        raise AnnotationError(f'cannot read image {path}: {err}') from None


def decode_image(img_bytes: bytes, flag: str = 'color', backend: str = 'cv2',
                 check_truncation: bool = False) -> np.ndarray:
    """Decode encoded image bytes with :func:`mmcv.imfrombytes` (what the pipeline uses).

    Raises:
        AnnotationError: empty, undecodable or (``check_truncation``) truncated JPEG data.
    """
    if not img_bytes:
        raise AnnotationError('empty image data')
    if check_truncation and bytes(img_bytes[:2]) == b'\xff\xd8' \
            and b'\xff\xd9' not in bytes(img_bytes[-4096:]):
        raise AnnotationError('truncated JPEG data (no end-of-image marker)')
    try:
        img = mmcv.imfrombytes(img_bytes, flag=flag, backend=backend)
    except Exception as err:  # cv2/PIL raise many types on garbage
        raise AnnotationError(f'cannot decode image data ({err})') from None
    if img is None or img.size == 0:
        raise AnnotationError('cannot decode image data (corrupt or not an image)')
    return img


def image_shape_from_header(path: str) -> Tuple[int, int]:
    """``(h, w)`` of an image file from its header, as the ``'color'`` decoder will see it
    (EXIF orientations 5-8 swap width and height)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise AnnotationError(f'image not found: {path}') from None
    except Exception as err:
        raise AnnotationError(f'cannot read image header of {path}: {err}') from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


__all__ = ['read_image_bytes', 'decode_image', 'image_shape_from_header']
