"""Photometric augmentations of img2pose: random contrast and random noise (no geometry)."""
from __future__ import annotations

from typing import Sequence, Tuple

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

    Intensities are taken on a 0..1 scale (pixel / 255):

    * ``'gaussian'``: additive ``N(0, gaussian_var)``;
    * ``'salt_pepper'``: a fraction ``amount`` of the pixels set to 0 or 1 (all channels),
      ``salt_vs_pepper`` of them to 1;
    * ``'poisson'``: shot noise ``Poisson(x * poisson_levels) / poisson_levels``
      (256: an 8-bit sensor's photon count).

    Required Keys: ``img``. Modified Keys: ``img``.
    """

    MODES = ('gaussian', 'salt_pepper', 'poisson')

    def __init__(self, prob: float = 0.2, modes: Sequence[str] = MODES,
                 gaussian_var: float = 0.01, amount: float = 0.05,
                 salt_vs_pepper: float = 0.5, poisson_levels: int = 256) -> None:
        modes = tuple(modes)
        unknown = [m for m in modes if m not in self.MODES]
        if unknown or not modes:
            raise ValueError(f'modes must be a non-empty subset of {self.MODES}, got {modes}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = float(prob)
        self.modes = modes
        self.gaussian_var = float(gaussian_var)
        self.amount = float(amount)
        self.salt_vs_pepper = float(salt_vs_pepper)
        if poisson_levels < 1:
            raise ValueError(f'poisson_levels must be >= 1, got {poisson_levels}')
        self.poisson_levels = int(poisson_levels)

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
        x = img.astype(np.float32) / 255.0
        if mode == 'gaussian':
            x = x + rng.normal(0.0, np.sqrt(self.gaussian_var), x.shape).astype(np.float32)
        elif mode == 'salt_pepper':
            hit = rng.random(x.shape[:2]) < self.amount
            salt = rng.random(x.shape[:2]) < self.salt_vs_pepper
            x[hit & salt] = 1.0
            x[hit & ~salt] = 0.0
        else:
            levels = self.poisson_levels
            x = rng.poisson(np.clip(x, 0, None) * levels).astype(np.float32) / levels
        results['img'] = _finish(x * 255.0, img)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, modes={self.modes}, '
                f'gaussian_var={self.gaussian_var}, amount={self.amount}, '
                f'salt_vs_pepper={self.salt_vs_pepper}, '
                f'poisson_levels={self.poisson_levels})')


__all__ = ['RandomContrast', 'RandomNoise']
