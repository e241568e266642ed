"""The original's outputs stored as numbers only (``tests/data/original/``), with the
settings and software stack that made them."""
from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Dict, List, Mapping

import numpy as np

FIXTURE_NAME = 'detections_r18_seed{seed}.npz'
LABELS_FIXTURE = 'original_labels.npz'


def stack_versions() -> Dict[str, str]:
    """Versions of the packages whose numbers a fixture depends on."""
    import scipy
    import torch
    import torchvision
    return dict(python=platform.python_version(), torch=torch.__version__,
                torchvision=torchvision.__version__, scipy=scipy.__version__,
                numpy=np.__version__)


def write_detections_fixture(out_dir: Path, seed: int, names: List[str],
                             detections: List[Dict[str, np.ndarray]], settings: Dict) -> Path:
    """The original's detections as float32 arrays, one group per image, plus settings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = dict(image_names=np.array(names), seed=np.array(seed),
                  settings=np.array(json.dumps(settings, sort_keys=True)))
    for name, det in zip(names, detections):
        for key in ('boxes', 'scores', 'poses'):
            arrays[f'{name}/{key}'] = det[key].astype(np.float32)
    path = out_dir / FIXTURE_NAME.format(seed=seed)
    np.savez_compressed(path, **arrays)
    return path


def write_labels_fixture(out_dir: Path, names: List[str], result: Mapping[str, object],
                         settings: Dict) -> Path:
    """The original's labels (:func:`tools.fidelity.labels.run_original_labelling`): per
    image its boxes, poses and kept faces, whether it was skipped, the pose statistics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays = dict(image_names=np.array(names),
                  skipped=np.array([i['skipped'] for i in result['images']]),
                  pose_mean=result['pose_mean'].astype(np.float64),
                  pose_stddev=result['pose_stddev'].astype(np.float64),
                  settings=np.array(json.dumps(settings, sort_keys=True)))
    for name, image in zip(names, result['images']):
        for key in ('boxes', 'local_poses', 'global_poses', 'kept'):
            arrays[f'{name}/{key}'] = image[key]
    path = out_dir / LABELS_FIXTURE
    np.savez(path, **arrays)
    return path
