"""What Img2Pose does to a config, for two-stage, cascade and one-stage models."""
import numpy as np
import pytest
from mmengine.config import Config

from img2pose_mm.apis.model_config import drop_missing_files, lower_score_thr, pose_coder_cfgs

from .conftest import REPO


def config(name):
    return Config.fromfile(str(REPO / 'configs' / name))


@pytest.mark.parametrize('name, paths', [
    ('img2pose_r18.py', ['model.roi_head.bbox_head.bbox_coder']),
    ('cascade_img2pose_r50.py', [f'model.roi_head.bbox_head.{i}.bbox_coder' for i in range(3)]),
    ('retina_img2pose_r18_fpn.py', ['model.bbox_head.bbox_coder']),
])
def test_pose_coders_are_found_as_cfg_option_keys(name, paths):
    cfg = config(name)
    found = pose_coder_cfgs(cfg.model)
    assert [path for path, _ in found] == paths
    # the paths are --cfg-options keys that reach those very coders
    cfg.merge_from_dict({f'{path}.pose_mean': [float(i)] * 6 for i, path in enumerate(paths)})
    assert [c['pose_mean'] for _, c in pose_coder_cfgs(cfg.model)] == \
        [[float(i)] * 6 for i in range(len(paths))]


def test_missing_statistics_files_are_dropped_in_one_stage_configs(tmp_path):
    cfg = config('retina_img2pose_r18_fpn.py')
    coder = cfg.model.bbox_head.bbox_coder
    np.save(tmp_path / 'std.npy', np.ones(6))
    coder.update(pose_mean=str(tmp_path / 'missing_mean.npy'), pose_stddev=str(tmp_path / 'std.npy'))
    assert drop_missing_files(cfg.model) == [str(tmp_path / 'missing_mean.npy')]
    assert coder.pose_mean is None and coder.pose_stddev == str(tmp_path / 'std.npy')


@pytest.mark.parametrize('name, key', [('img2pose_r18.py', 'rcnn'),
                                       ('retina_img2pose_r18_fpn.py', None)])
def test_score_threshold_follows_the_api_threshold(name, key):
    cfg = config(name)
    stage = cfg.model.test_cfg if key is None else cfg.model.test_cfg[key]
    lower_score_thr(cfg, 0.01)
    assert stage.score_thr == 0.01
    lower_score_thr(cfg, 0.5)           # never raised: the API filters higher itself
    assert stage.score_thr == 0.01
    assert 'score_thr' not in cfg.model.test_cfg or key is None
