"""First use without traps: the config's test scale, no silent random weights, colour order,
a clean interrupt of the converter, the CPU log interval."""
import importlib.util

import numpy as np
import pytest

from img2pose_mm.apis import Img2Pose

from .conftest import REPO, synthetic_images

#: the demo recipe (tests at 256 px) with the model of ``conftest.CONFIG``, the tiny
#: checkpoint's (the demo config's own model is narrower)
DEMO_CONFIG = REPO / 'configs' / 'img2pose_r18_demo.py'
DEMO_RECIPE = '''
_base_ = ['{repo}/configs/_base_/models/img2pose_r18_fpn.py',
          '{repo}/configs/_base_/synthetic_demo.py']
'''


def load_script(relpath):
    spec = importlib.util.spec_from_file_location(relpath.replace('/', '_')[:-3], REPO / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def demo_config(tmp_path_factory):
    path = tmp_path_factory.mktemp('demo_recipe') / 'demo_recipe.py'
    path.write_text(DEMO_RECIPE.format(repo=REPO))
    return path


@pytest.fixture(scope='module')
def demo_detector(tiny_checkpoint, demo_config):
    return Img2Pose(config=demo_config, checkpoint=tiny_checkpoint[0], device='cpu',
                    score_threshold=0.05,
                    cfg_options={'model.test_cfg.rpn.nms_pre': 300,
                                 'model.test_cfg.rpn.max_per_img': 60})


def test_the_configs_test_scale_is_the_default(demo_detector):
    """No size arguments: the config's own resize (256 px short side for the demo config),
    not 640."""
    image = synthetic_images(1, size=128, seed=3)[0][0]
    sample, = demo_detector.predict([image])
    assert min(sample.metainfo['img_shape']) == 256
    assert sample.metainfo['scale_factor'] == pytest.approx((2.0, 2.0))
    resize = [s for s in demo_detector.pipeline_cfg if 'Resize' in s['type']]
    assert resize[0]['scale'] == (400, 256)


def test_arrays_in_bgr_order(demo_detector, tiny_checkpoint, demo_config):
    image = synthetic_images(1, size=128, seed=4)[0][0]
    bgr = Img2Pose(config=demo_config, checkpoint=tiny_checkpoint[0], device='cpu',
                   score_threshold=0.05, channel_order='bgr',
                   cfg_options={'model.test_cfg.rpn.nms_pre': 300,
                                'model.test_cfg.rpn.max_per_img': 60})
    faces = demo_detector.detect_faces(image)
    assert len(faces) > 0                  # an empty list on both sides would prove nothing
    assert bgr.detect_faces(np.ascontiguousarray(image[..., ::-1])) == faces
    with pytest.raises(ValueError, match='channel_order'):
        Img2Pose(config=demo_config, checkpoint=tiny_checkpoint[0], channel_order='hsv')


def test_demos_use_the_config_scale_and_need_weights(capsys):
    for script in ('demo/image_demo.py', 'demo/video_demo.py'):
        demo = load_script(script)
        extra = ['--out', 'x.mp4'] if 'video' in script else []
        args = demo.parse_args(['input'] + extra + ['--random-weights'])
        assert args.min_size is None and args.max_size is None
        with pytest.raises(SystemExit) as exc:
            demo.parse_args(['input'] + extra)
        assert exc.value.code != 0
        err = capsys.readouterr().err
        assert '--checkpoint' in err and '--random-weights' in err
    with pytest.raises(SystemExit):
        load_script('demo/image_demo.py').parse_args(['in.jpg', '--random-weights', '--json'])
    assert '--json' in capsys.readouterr().err


def test_random_weights_warn():
    with pytest.warns(UserWarning, match='random'):
        Img2Pose(config=DEMO_CONFIG, device='cpu', cfg_options={
            'model.roi_head.bbox_head.bbox_coder.pose_mean': None,
            'model.roi_head.bbox_head.bbox_coder.pose_stddev': None})


def test_converter_interrupt_is_a_message(monkeypatch, capsys, tmp_path):
    tool = load_script('tools/dataset_converters/json_to_lmdb.py')

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tool, 'convert', interrupted)
    assert tool.main([str(tmp_path / 'x.json'), str(tmp_path), '--name', 'x']) == 130
    err = capsys.readouterr().err
    assert 'interrupted' in err and '--resume' in err and 'Traceback' not in err


def test_cpu_runs_log_often(monkeypatch):
    from mmengine.config import Config
    monkeypatch.syspath_prepend(str(REPO / 'tools'))      # as when run as a script
    train = load_script('tools/train.py')
    cfg = Config.fromfile(str(REPO / 'configs' / 'img2pose_r18.py'))
    assert cfg.default_hooks.logger.interval == 50
    train.scale_log_interval_for_cpu(cfg)
    import torch
    expected = 50 if torch.cuda.is_available() else train.CPU_LOG_INTERVAL
    assert cfg.default_hooks.logger.interval == expected
