"""Photometric augmentations of img2pose: random contrast and random noise (no geometry)."""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmdet.registry import TRANSFORMS

_LUMA = {'bgr': (0.114, 0.587, 0.299), 'rgb': (0.299, 0.587, 0.114)}


def _finish(img: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Clip to 0..255 and return in the input's dtype."""
    img = np.clip(img, 0, 255)
    if np.issubdtype(like.dtype, np.integer):
        img = np.rint(img)
    return img.astype(like.dtype)


@TRANSFORMS.register_module()
class RandomContrast(BaseTransform):
    """With probability ``prob``, blend the image with its mean grey level by a factor
    ``alpha ~ U(contrast_range)``: ``out = alpha * img + (1 - alpha) * mean_grey``.

    Required Keys: ``img``. Modified Keys: ``img``.

    Args:
        contrast_range: range of ``alpha`` (1 = unchanged).
        prob: probability of applying it.
        channel_order: ``'bgr'`` (mmcv's default) or ``'rgb'``, for the grey level.
    """

    def __init__(self, contrast_range: Tuple[float, float] = (0.5, 1.5), prob: float = 0.5,
                 channel_order: str = 'bgr') -> None:
        if channel_order not in _LUMA:
            raise ValueError(f'channel_order must be "bgr" or "rgb", got {channel_order!r}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.contrast_range = (float(contrast_range[0]), float(contrast_range[1]))
        self.prob = float(prob)
        self.channel_order = channel_order

    @cache_randomness
    def _draw(self) -> Tuple[bool, float]:
        return np.random.rand() < self.prob, np.random.uniform(*self.contrast_range)

    def transform(self, results: dict) -> dict:
        """Maybe change the contrast."""
        apply, alpha = self._draw()
        if not apply:
            return results
        img = results['img']
        work = img.astype(np.float32)
        if work.ndim == 3 and work.shape[2] == 3:
            grey = float((work.reshape(-1, 3).mean(0) * _LUMA[self.channel_order]).sum())
        else:
            grey = float(work.mean())
        results['img'] = _finish(alpha * work + (1 - alpha) * grey, img)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(contrast_range={self.contrast_range}, '
                f'prob={self.prob}, channel_order={self.channel_order!r})')


@TRANSFORMS.register_module()
class RandomNoise(BaseTransform):
    """With probability ``prob``, add one kind of noise picked at random from ``modes``.

    Intensities are on the 0..255 scale and the defaults are img2pose's
    (docs/reference.md §5):

    * ``'gaussian'``: additive ``N(0, gaussian_var)`` per channel (variance 0.1);
    * ``'salt_pepper'``: a fraction ``amount`` (0.004) of the pixels set to 255 or 0 (all
      channels), ``salt_vs_pepper`` (half) of them to 255;
    * ``'poisson'``: shot noise ``Poisson(x * levels) / levels`` with ``levels`` =
      ``poisson_levels``, or with ``'auto'`` ``2 ** ceil(log2(number of distinct values))``
      of the image.

    The result is rounded and clipped to 0..255 (the original casts without clipping,
    which wraps values below 0 around).

    Required Keys: ``img``. Modified Keys: ``img``.
    """

    MODES = ('gaussian', 'salt_pepper', 'poisson')

    def __init__(self, prob: float = 0.2, modes: Sequence[str] = MODES,
                 gaussian_var: float = 0.1, amount: float = 0.004,
                 salt_vs_pepper: float = 0.5,
                 poisson_levels: Union[int, str] = 'auto') -> None:
        modes = tuple(modes)
        unknown = [m for m in modes if m not in self.MODES]
        if unknown or not modes:
            raise ValueError(f'modes must be a non-empty subset of {self.MODES}, got {modes}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if poisson_levels != 'auto' and (not isinstance(poisson_levels, int)
                                         or poisson_levels < 1):
            raise ValueError(f"poisson_levels must be 'auto' or an int >= 1, got {poisson_levels!r}")
        self.prob = float(prob)
        self.modes = modes
        self.gaussian_var = float(gaussian_var)
        self.amount = float(amount)
        self.salt_vs_pepper = float(salt_vs_pepper)
        self.poisson_levels = poisson_levels

    @cache_randomness
    def _draw(self) -> Tuple[bool, str, int]:
        return (np.random.rand() < self.prob, self.modes[np.random.randint(len(self.modes))],
                np.random.randint(2 ** 31))

    def transform(self, results: dict) -> dict:
        """Maybe add noise."""
        apply, mode, seed = self._draw()
        if not apply:
            return results
        rng = np.random.default_rng(seed)
        img = results['img']
        x = img.astype(np.float64)
        if mode == 'gaussian':
            x = x + rng.normal(0.0, np.sqrt(self.gaussian_var), x.shape)
        elif mode == 'salt_pepper':
            hit = rng.random(x.shape[:2]) < self.amount
            salt = rng.random(x.shape[:2]) < self.salt_vs_pepper
            x[hit & salt] = 255.0
            x[hit & ~salt] = 0.0
        else:
            levels = self.poisson_levels
            if levels == 'auto':
                levels = 2.0 ** np.ceil(np.log2(len(np.unique(img))))
            x = rng.poisson(np.clip(x, 0, None) * levels) / float(levels)
        results['img'] = _finish(x, img)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, modes={self.modes}, '
                f'gaussian_var={self.gaussian_var}, amount={self.amount}, '
                f'salt_vs_pepper={self.salt_vs_pepper}, '
                f'poisson_levels={self.poisson_levels!r})')


__all__ = ['RandomContrast', 'RandomNoise']
