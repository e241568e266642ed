"""Input images of the inference API: paths, PIL images and arrays -> RGB uint8.

The conversions and errors: docs/conventions.md, "Input images".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

ImageSource = Any   # str | os.PathLike | PIL.Image.Image | np.ndarray

_HIGH_BIT_MODES = ('I;16', 'I;16B', 'I;16L', 'I;16N', 'I', 'F')


def describe(source: ImageSource, name: str) -> str:
    """``name`` plus the file path, for error messages."""
    if isinstance(source, (str, os.PathLike)):
        return f'{name} ({os.fspath(source)!r})'
    filename = getattr(source, 'filename', None)   # PIL images opened from a file
    if isinstance(filename, str) and filename:
        return f'{name} ({filename!r})'
    return name


def to_rgb_uint8(array: np.ndarray, name: str = 'image') -> np.ndarray:
    """Convert an image array to a C-contiguous ``(H, W, 3)`` RGB uint8 array (the input
    itself when it already is one; it is never modified).

    Raises:
        ValueError: zero-size image, unsupported shape or values (message starts with
            ``name``).
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] in (1, 2, 3, 4):
        channels = array.shape[2]
    elif array.ndim == 2:
        channels = 0
    else:
        raise ValueError(f'{name}: expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) '
                         f'image, got shape {array.shape}')
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f'{name}: empty image (shape {array.shape})')
    array = _to_uint8(array, name)
    if channels == 0:
        array = np.repeat(array[..., None], 3, axis=2)
    elif channels in (1, 2):            # gray (+ alpha)
        array = np.repeat(array[..., :1], 3, axis=2)
    elif channels == 4:                 # RGBA: drop alpha
        array = array[..., :3]
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return np.round(array / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 65535:
            raise ValueError(f'{name}: integer pixel values must lie in [0, 255] (8-bit) or '
                             f'[0, 65535] (16-bit), got [{low}, {high}]')
        if high > 255:
            return np.round(array / 257.0).astype(np.uint8)
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f'{name}: image contains NaN or inf')
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 255:
            raise ValueError(f'{name}: float pixel values must lie in [0, 1] or [0, 255], '
                             f'got [{low:g}, {high:g}]')
        scale = 255.0 if high <= 1.0 else 1.0
        return np.clip(np.round(array * scale), 0, 255).astype(np.uint8)
    raise ValueError(f'{name}: unsupported pixel type {array.dtype}')


def _pil_to_rgb(image, name: str) -> np.ndarray:
    """A PIL image -> RGB uint8 (16-bit and float modes keep their precision until then)."""
    if image.width == 0 or image.height == 0:
        raise ValueError(f'{name}: empty image (size {image.size})')
    if image.mode in _HIGH_BIT_MODES:
        array = np.array(image)
        if image.mode.startswith('I;16'):
            array = array.astype(np.uint16)
        return to_rgb_uint8(array, name)
    if image.mode == 'P' and 'transparency' in image.info:
        image = image.convert('RGBA')
    if image.mode != 'RGB':
        image = image.convert('RGB')
    return to_rgb_uint8(np.array(image), name)


def load_image(source: ImageSource, name: Optional[str] = None) -> np.ndarray:
    """Any accepted image source -> ``(H, W, 3)`` RGB uint8, C-contiguous.

    Args:
        source: a path (``str``/``PathLike``), a PIL image, or an array (RGB channel
            order; conversions: docs/conventions.md, "Input images").
        name: how errors call the input (default ``'image'``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a file or PIL image that is not readable (or truncated), bad values.
        TypeError: an unsupported object.
    """
    name = name or 'image'
    if isinstance(source, np.ndarray):
        return to_rgb_uint8(source, name)
    from PIL import Image, ImageOps
    if not isinstance(source, (str, os.PathLike, Image.Image)):
        raise TypeError(f'{name}: expected a path, a PIL image or a numpy array, got '
                        f'{type(source).__name__}')
    label = describe(source, name)
    if not isinstance(source, Image.Image) and not Path(source).is_file():
        raise FileNotFoundError(f'{label}: no such file')
    try:
        if isinstance(source, Image.Image):
            source.load()
            return _pil_to_rgb(source, label)
        with Image.open(source) as image:
            image.load()                               # decodes everything: catches truncation
            return _pil_to_rgb(ImageOps.exif_transpose(image), label)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        if isinstance(err, ValueError) and str(err).startswith(label):
            raise
        raise ValueError(f'{label}: cannot read the image: {err}') from err


__all__ = ['load_image', 'to_rgb_uint8', 'describe']
