"""Training equals the original's: the same weights, batch and sampler draws give the same
loss terms, gradients and SGD steps.

The original's side is stored in ``tests/data/original/training_r18_seed0.npz`` (numbers
only; the command that made it is in that folder's README): seeded original-layout weights
(:func:`tools.fidelity.original_state_dict`), two small photos with synthetic faces, the
loss terms of 10 steps of its ``train.py`` recipe, its sampled anchors and RoIs, and
sketches (norm + seeded projections) of every gradient after the first backward and of
every parameter's change over the 10 steps. Here img2pose_mm converts the same weights,
replays the original's sampler draws and trains with its config's ``optim_wrapper``
(:mod:`tools.fidelity.training`), with the default config (CPU speed branches; 10 steps) and the
all-stock one (the first step). Tolerances (relative): loss terms 1e-5, gradients 1e-4, parameters after
10 steps 1e-4 (:mod:`tools.fidelity.training_report`).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tools.fidelity.inputs import seeded_converted
from tools.fidelity.training import CONFIGS, build_ours, ours_trace
from tools.fidelity.training_report import (
    compare_to_fixture,
    fixture_picks,
    gradient_errors,
    passes,
)

from .utils import REPO

FIXTURE = REPO / 'tests' / 'data' / 'original' / 'training_r18_seed0.npz'


@pytest.fixture(scope='module')
def stored(tmp_path_factory):
    fixture = dict(np.load(FIXTURE))
    settings = json.loads(str(fixture['settings']))
    converted, _ = seeded_converted(tmp_path_factory.mktemp('weights'), settings['seed'],
                                    settings['rotation_method'])
    images = list(fixture['images'])
    faces = [(fixture[f'faces/{i}/poses'], fixture[f'faces/{i}/boxes'])
             for i in range(int(fixture['num_images']))]
    options = {}
    if settings['frozen_bn_eps'] is not None:
        options['model.backbone.norm_cfg.eps'] = float(settings['frozen_bn_eps'])
    return dict(fixture=fixture, settings=settings, converted=converted, images=images,
                faces=faces, options=options)


def _train(stored, parts: str, steps: int, equalised: bool = True):
    model, optim_wrapper = build_ours(CONFIGS[parts], stored['converted'], stored['options'])
    picks = fixture_picks(stored['fixture']) if equalised else None
    return ours_trace(model, optim_wrapper, stored['images'], stored['faces'], steps,
                      picks=picks, seed=stored['settings']['seed'])


def test_training_equivalence(stored):
    """The default config (CPU speed branches): 10 steps, against the original's."""
    trace = _train(stored, 'fast', stored['settings']['steps'])
    assert trace.notes['label_mismatches'] == 0      # both assigners label the draws alike
    assert trace.notes['max_box_error'] < 1e-2       # the original's RoIs are among ours
    result = compare_to_fixture(stored['fixture'], trace, trace.initial)
    assert result['loss']['max'] <= 1e-5, result['loss']
    assert result['loss_all_steps']['max'] <= 1e-5, result['loss_all_steps']
    assert result['grad']['max'] <= 1e-4, result['grad']
    assert result['param']['max'] <= 1e-4, result['param']
    # the sketches see a wrong gradient: one tensor's gradient 1e-3 off fails
    key = 'backbone.layer3.0.conv1.weight'
    errors = gradient_errors(stored['fixture'], {key: trace.grads[key] * (1 + 1e-3)})
    assert errors[key] > 1e-4


def test_training_equivalence_stock_parts(stored):
    """The all-stock config (mmdet's code throughout): the first step's loss terms and
    gradients (its 10 steps are compared by ``compare_with_original.py --training``)."""
    trace = _train(stored, 'stock', 1)
    assert trace.notes['label_mismatches'] == 0
    result = compare_to_fixture(stored['fixture'], trace, trace.initial)
    assert result['loss']['max'] <= 1e-5, result['loss']
    assert result['grad']['max'] <= 1e-4, result['grad']
    assert passes(result)


def test_training_equivalence_negative_control(stored):
    """img2pose_mm's own sampler draws (the same seed, not equalised): the first step's
    losses and gradients are not the original's."""
    trace = _train(stored, 'fast', 1, equalised=False)
    result = compare_to_fixture(stored['fixture'], trace, trace.initial)
    assert result['loss']['max'] > 1e-5
    assert result['grad']['max'] > 1e-4
    assert not passes(result)


def test_training_fixture_is_small():
    assert FIXTURE.stat().st_size < 2 * 2**20
    assert torch.from_numpy(np.load(FIXTURE)['losses']).shape[1] == 5
