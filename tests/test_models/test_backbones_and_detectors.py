"""Every backbone / detector config builds and takes a training step on a 128 px image."""
import pytest
import torch
from mmengine.config import Config

from img2pose_mm.apis.model_config import pose_coder_cfgs

from .utils import REPO, build_model, make_batch, make_sample

POSES = torch.tensor([[0.1, 0.3, 0.0, 0.0, 0.0, 5.0]])
CONFIGS = ['img2pose_r18.py', 'img2pose_r50.py', 'img2pose_r101.py', 'img2pose_x101_32x4d.py',
           'img2pose_regnetx_3.2gf.py', 'img2pose_mobilenetv2.py', 'img2pose_swin_t.py',
           'cascade_img2pose_r50.py', 'retina_img2pose_r18_fpn.py',
           'retina_img2pose_mobilenetv2.py']


def _no_stats(cfg_name):
    """The configs point the pose statistics at the generated dataset; the tests do not
    need it: every pose coder of the model gets the defaults."""
    cfg = Config.fromfile(str(REPO / 'configs' / cfg_name))
    return {f'{path}.{key}': None for path, _ in pose_coder_cfgs(cfg.model)
            for key in ('pose_mean', 'pose_stddev')}


@pytest.mark.parametrize('cfg_name', CONFIGS)
def test_config_trains_one_step(cfg_name):
    torch.manual_seed(0)
    model = build_model(REPO / 'configs' / cfg_name, **_no_stats(cfg_name))
    model.train()
    images = torch.randint(0, 256, (1, 3, 128, 128), dtype=torch.uint8)
    batch = make_batch(model, images, [make_sample(POSES, img_shape=(128, 128))])
    losses = model(**batch, mode='loss')
    total, log_vars = model.parse_losses(losses)
    assert torch.isfinite(total)
    assert any(k.endswith('loss_dof') for k in log_vars)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    model.eval()
    with torch.no_grad():
        out = model(**make_batch(model, images, [make_sample(POSES, img_shape=(128, 128))],
                                 training=False), mode='predict')
    assert 'poses' in out[0].pred_instances
