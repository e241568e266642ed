"""Converted original weights give the original img2pose's detections.

``tests/data/original/detections_r18_seed0.npz`` holds what the original implementation
(run from its own checkout by ``tools/analysis_tools/compare_with_original.py``, see
``tests/data/original/README.md``) detected on five scikit-image photos with seeded random
weights in its checkpoint layout. Here the same weights are regenerated
(:mod:`tools.fidelity`), converted, and run through ``Img2Pose(checkpoint=...)`` with
no config, at native size: no file or code of the original is needed.
"""
from __future__ import annotations

import importlib.util
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from img2pose_mm.structures import FaceModel
from img2pose_mm.structures.reference_face import DEFAULT_5, DEFAULT_68
from tools.fidelity import (
    SEEDED_POSE_MEAN,
    SEEDED_POSE_STDDEV,
    native_size_pipeline,
    sample_photos,
    save_original_checkpoint,
)
from tools.fidelity.compare import match_detections

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / 'tests' / 'data' / 'original' / 'detections_r18_seed0.npz'
CODER = 'roi_head.bbox_head.bbox_coder.'

spec = importlib.util.spec_from_file_location(
    'img2pose_to_mmdet', REPO / 'tools' / 'model_converters' / 'img2pose_to_mmdet.py')
converter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converter)


@pytest.fixture(scope='module')
def fixture():
    data = np.load(FIXTURE)
    settings = json.loads(str(data['settings']))
    names = [str(n) for n in data['image_names']]
    detections = {n: {k: data[f'{n}/{k}'] for k in ('boxes', 'scores', 'poses')} for n in names}
    return settings, detections


@pytest.fixture(scope='module')
def converted(fixture, tmp_path_factory):
    """The fixture's seeded original weights, converted (one checkpoint for the module)."""
    settings, _ = fixture
    # the fixture was made with the statistics the package still defines
    np.testing.assert_array_equal(settings['pose_mean'], SEEDED_POSE_MEAN)
    np.testing.assert_array_equal(settings['pose_stddev'], SEEDED_POSE_STDDEV)
    tmp = tmp_path_factory.mktemp('original')
    src = save_original_checkpoint(str(tmp / 'img2pose_seeded.pth'), settings['seed'],
                                   module_prefix=True)
    np.save(tmp / 'mean.npy', SEEDED_POSE_MEAN)
    np.save(tmp / 'std.npy', SEEDED_POSE_STDDEV)
    dst = tmp / 'converted.pth'
    converter.convert(src, str(dst), pose_mean=str(tmp / 'mean.npy'),
                      pose_stddev=str(tmp / 'std.npy'), reference_points=str(DEFAULT_68),
                      reference_points_5=str(DEFAULT_5),
                      rotation_method=settings['rotation_method'])
    return dst


@pytest.fixture(scope='module')
def detector(fixture, converted):
    from img2pose_mm.apis import Img2Pose
    settings, _ = fixture
    return Img2Pose(checkpoint=converted, device='cpu', score_threshold=settings['score_thr'],
                    cfg_options={'test_dataloader.dataset.pipeline': native_size_pipeline(),
                                 'model.test_cfg.rpn.max_per_img': settings['proposals']})


def test_converted_checkpoint_decodes_like_the_original(detector):
    face = detector.face_model
    assert face.integer_box_centre and face.rotation_method == 'svd'
    coder = detector.model.roi_head.bbox_head.bbox_coder
    torch.testing.assert_close(coder.pose_mean.double(), torch.from_numpy(SEEDED_POSE_MEAN))


@pytest.mark.parametrize('name', ['astronaut', 'camera', 'coffee', 'chelsea', 'rocket'])
def test_detections_match_the_original(name, fixture, detector):
    settings, reference = fixture
    assert name in settings['images']
    (_, image), = sample_photos([name])
    faces = detector.detect_faces(image)
    ours = dict(boxes=np.array([f['box'] for f in faces]).reshape(-1, 4),
                scores=np.array([f['confidence'] for f in faces]),
                poses=np.array([f['pose'] for f in faces]).reshape(-1, 6))
    ref = reference[name]
    match = match_detections(ref, ours)
    assert match['num_ref'] > 100          # a meaningful number of faces to compare
    assert match['num_ours'] == match['num_ref'], match
    # box 1 px, score 1e-4, rotation 1e-4 rad (geodesic), translation 1e-4 relative
    assert match['share_within'] >= 0.99, {k: match[k] for k in ('within', 'max', 'num_within')}


def _project_checkpoint(converted: Path, tmp: Path) -> Path:
    """A checkpoint as ``tools/train.py`` saves it: the converted weights with the project's
    own face (packaged points, fractional box centre) and the project config in its meta."""
    from mmengine.config import Config
    ckpt = torch.load(converted, map_location='cpu', weights_only=False)
    state = dict(ckpt['state_dict'])
    state[CODER + 'face_model._extra_state'] = FaceModel().get_extra_state()
    cfg = Config.fromfile(str(REPO / 'configs' / 'img2pose_r18.py'))
    path = tmp / 'trained.pth'
    torch.save(dict(state_dict=state, meta=dict(cfg=cfg.pretty_text)), path)
    return path


def test_declared_other_face_warns_and_the_checkpoint_face_decodes(converted, tmp_path):
    from img2pose_mm.apis import Img2Pose
    trained = _project_checkpoint(converted, tmp_path)
    other = tmp_path / 'other_face_68.npy'
    np.save(other, np.load(DEFAULT_68) * np.float32(1.2))
    options = {'test_dataloader.dataset.pipeline': native_size_pipeline(),
               'model.test_cfg.rpn.max_per_img': 200}
    image = sample_photos(['astronaut'])[0][1][150:310, 170:330]   # 160 x 160, a face
    reference = Img2Pose(checkpoint=trained, device='cpu', score_threshold=0.05,
                         cfg_options=options)
    expected_face = reference.face_model
    declared_face = FaceModel(reference_points=str(other))
    with pytest.warns(UserWarning) as record:
        declared = Img2Pose(config=REPO / 'configs' / 'img2pose_r18.py', checkpoint=trained,
                            device='cpu', score_threshold=0.05,
                            cfg_options=dict(options, **{
                                'model.' + CODER + 'face_model': dict(
                                    reference_points=str(other))}))
    messages = [str(w.message) for w in record if 'declares' in str(w.message)]
    assert len(messages) == 1, [str(w.message) for w in record]
    # both faces named: the checkpoint's and the config's (file name and fingerprint)
    assert re.search(rf'checkpoint.*#{expected_face.fingerprint()}', messages[0])
    assert 'other_face_68.npy' in messages[0] and declared_face.fingerprint() in messages[0]
    assert declared.face_model.same_as(expected_face)
    assert not declared.face_model.same_as(declared_face)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        want, got = reference.detect_faces(image), declared.detect_faces(image)
    assert len(want) > 0 and len(got) == len(want)
    for a, b in zip(want, got):
        assert a['box'] == b['box'] and a['pose'] == b['pose']
        assert a['keypoints'] == b['keypoints']
