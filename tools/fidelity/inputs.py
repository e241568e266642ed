"""The inputs of a comparison: the original's weights and files, their conversion, images."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from tools.model_converters import img2pose_to_mmdet as converter

from .original_layout import (
    SAMPLE_PHOTOS,
    SEEDED_POSE_MEAN,
    SEEDED_POSE_STDDEV,
    as_rgb,
    sample_photos,
    save_original_checkpoint,
)


def seeded_files(workdir: Path, seed: int) -> Dict[str, str]:
    """Seeded original-layout weights and :data:`SEEDED_POSE_MEAN`/``STDDEV``, written
    under ``workdir``: ``checkpoint``, ``pose_mean`` and ``pose_stddev`` paths."""
    files = dict(checkpoint=save_original_checkpoint(
        str(workdir / f'img2pose_seed{seed}.pth'), seed, module_prefix=True))
    for key, value in (('pose_mean', SEEDED_POSE_MEAN), ('pose_stddev', SEEDED_POSE_STDDEV)):
        files[key] = str(workdir / f'{key}.npy')
        np.save(files[key], value)
    return files


def convert_files(files: Dict[str, str], dst: str, rotation_method: str) -> Dict[str, torch.Tensor]:
    """Convert ``files['checkpoint']`` with the statistics and reference points of ``files``
    to ``dst`` for img2pose_mm; returns the original state dict (``fpn_model``, no
    ``module.`` prefix)."""
    converter.convert(files['checkpoint'], dst, pose_mean=files['pose_mean'],
                      pose_stddev=files['pose_stddev'], reference_points=files['reference_points'],
                      reference_points_5=files['reference_points_5'],
                      rotation_method=rotation_method)
    return converter.extract_state_dict(
        torch.load(files['checkpoint'], map_location='cpu', weights_only=True))


def resolve_weights(args, workdir: Path) -> Dict[str, object]:
    """The original checkpoint, statistics and reference points of this run: the release
    files given, or seeded weights with :data:`SEEDED_POSE_MEAN`/``STDDEV`` and the
    checkout's ``pose_references``."""
    from img2pose_mm.structures.reference_face import DEFAULT_5, DEFAULT_68
    files = dict(checkpoint=args.original_checkpoint, pose_mean=args.pose_mean,
                 pose_stddev=args.pose_stddev, reference_points=args.reference_points_68,
                 reference_points_5=args.reference_points_5)
    if args.release_dir:
        found = converter.find_release_files(args.release_dir)
        files.update({k: v for k, v in found.items() if files.get(k) is None})
    seeded = files['checkpoint'] is None
    if seeded:
        files.update({k: v for k, v in seeded_files(workdir, args.seed).items()
                      if files[k] is None})
    checkout = Path(args.original_repo).expanduser() / 'pose_references'
    for key, name, packaged in (
            ('reference_points', 'reference_3d_68_points_trans.npy', DEFAULT_68),
            ('reference_points_5', 'reference_3d_5_points_trans.npy', DEFAULT_5)):
        if files[key] is None:
            files[key] = str(checkout / name if args.checkout_references else packaged)
    missing = [f'{k}: {v}' for k, v in files.items() if not os.path.isfile(v)]
    if missing:
        raise FileNotFoundError('missing input files: ' + '; '.join(missing))
    packaged = os.path.samefile(files['reference_points'], DEFAULT_68)
    return dict(files=files, seeded=seeded, packaged_face=packaged)


def load_images(paths: Optional[Sequence[str]],
                photos: Sequence[str] = SAMPLE_PHOTOS) -> List[Tuple[str, np.ndarray]]:
    """``(name, RGB uint8)`` of ``paths`` or of the scikit-image ``photos``; grey images
    get their channel repeated (PIL's ``convert('RGB')``) once, for both models."""
    if not paths:
        return sample_photos(photos)
    from PIL import Image
    images = []
    for path in paths:
        with Image.open(path) as img:
            images.append((Path(path).stem, as_rgb(np.asarray(img.convert('RGB')))))
    return images


def converted_weights(args, workdir: Path) -> Tuple[Dict[str, object], str, Dict]:
    """:func:`resolve_weights`, the checkpoint converted for img2pose_mm (its path) and the
    original's state dict (``fpn_model``)."""
    weights = resolve_weights(args, workdir)
    converted = str(workdir / 'converted.pth')
    return weights, converted, convert_files(weights['files'], converted, args.rotation_method)


def seeded_converted(workdir: Path, seed: int = 0, rotation_method: str = 'svd'
                     ) -> Tuple[str, Dict[str, torch.Tensor]]:
    """Seeded original-layout weights converted for img2pose_mm (packaged face, seeded
    pose statistics): the converted checkpoint's path and the original state dict."""
    from img2pose_mm.structures.reference_face import DEFAULT_5, DEFAULT_68
    files = dict(seeded_files(workdir, seed), reference_points=str(DEFAULT_68),
                 reference_points_5=str(DEFAULT_5))
    dst = str(workdir / f'seed{seed}_mmdet.pth')
    return dst, convert_files(files, dst, rotation_method)


def run_images(args) -> List[Tuple[str, np.ndarray]]:
    """:func:`load_images` of ``args``, resized to ``--resize H W`` (bilinear) if given."""
    images = load_images(args.images, args.photos)
    if args.resize:
        from PIL import Image
        h, w = args.resize
        images = [(name, np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR)))
                  for name, rgb in images]
    return images
