"""The original-weights converter against torchvision's own modules."""
import importlib.util
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from tools.fidelity import load_torchvision, original_checkpoint, original_state_dict

from .utils import MODEL_CFG, REPO, build_model

spec = importlib.util.spec_from_file_location(
    'img2pose_to_mmdet', REPO / 'tools' / 'model_converters' / 'img2pose_to_mmdet.py')
converter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converter)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    # seeded weights under today's torchvision names, and torchvision's modules holding them
    ckpt = original_checkpoint(seed=0, legacy_names=False, module_prefix=True)
    backbone, rpn = load_torchvision(ckpt['fpn_model'])
    src = tmp_path_factory.mktemp('ckpt') / 'img2pose_v1.pth'
    torch.save(ckpt, src)
    dst = src.with_name('converted.pth')
    mean, std = src.with_name('mean.npy'), src.with_name('std.npy')
    np.save(mean, np.array([0.1, -0.2, 0.05, 0.0, 0.1, 5.0]))
    np.save(std, np.array([0.3, 0.4, 0.2, 0.2, 0.2, 1.5]))
    notes = converter.convert(str(src), str(dst), config=str(MODEL_CFG), pose_mean=str(mean),
                              pose_stddev=str(std))
    model = build_model()
    result = model.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=True)
    return backbone, rpn, ckpt, model.eval(), notes, result


def test_every_key_used_and_loads_strictly(converted):
    _, _, ckpt, model, notes, result = converted
    assert not result.missing_keys and not result.unexpected_keys
    # the pose statistics and the original's face model travel in the checkpoint
    coder = model.roi_head.bbox_head.bbox_coder
    assert coder.face_model.integer_box_centre and coder.face_model.rotation_method == 'svd'
    torch.testing.assert_close(coder.pose_mean, torch.tensor([0.1, -0.2, 0.05, 0.0, 0.1, 5.0]))
    torch.testing.assert_close(coder.pose_stddev, torch.tensor([0.3, 0.4, 0.2, 0.2, 0.2, 1.5]))
    state, _ = converter.convert_state_dict(converter.extract_state_dict(ckpt))
    assert len([k for k in state if not k.endswith('num_batches_tracked')]) == \
        len([k for k in ckpt['fpn_model'] if not k.endswith('num_batches_tracked')])
    assert any('[background, face]' in n or 'face' in n for n in notes)
    # class rows reordered, pose rows of the face class kept
    orig = ckpt['fpn_model']
    head = model.roi_head.bbox_head
    torch.testing.assert_close(head.fc_cls.weight[0],
                               orig['module.roi_heads.class_predictor.cls_score.weight'][1])
    torch.testing.assert_close(head.fc_pose[3].weight,
                               orig['module.roi_heads.box_predictor.dof_pred.3.weight'][6:])


def test_old_torchvision_key_names_convert():
    # the release's names (torchvision 0.8: plain FPN convs, the original's RPN head)
    state = original_state_dict(seed=0, legacy_names=True)
    assert 'backbone.fpn.inner_blocks.0.weight' in state and 'rpn.head.conv.weight' in state
    state, _ = converter.convert_state_dict(converter.extract_state_dict(state))
    assert 'neck.lateral_convs.0.conv.weight' in state and 'rpn_head.rpn_conv.weight' in state


def test_unknown_key_is_an_error():
    with pytest.raises(KeyError, match='no mapping'):
        converter.convert_state_dict({'roi_heads.mystery.weight': torch.zeros(1)})
    with pytest.raises(ValueError, match='not an img2pose checkpoint'):
        converter.extract_state_dict({'model': 3})


def test_features_and_proposals_match_torchvision(converted):
    backbone, rpn, _, model, _, _ = converted
    torch.manual_seed(3)
    h, w = 256, 320          # a multiple of 64: no resize/pad difference between the two
    image = torch.rand(1, 3, h, w)
    with torch.no_grad():
        ref = list(backbone(image).values())
        ours = model.neck(model.backbone(image))
        assert len(ref) == len(ours) == 5
        for r, o in zip(ref, ours):
            scale = r.abs().max()
            torch.testing.assert_close(o / scale, r / scale, atol=1e-5, rtol=0)
        ref_boxes, _ = rpn(ImageList(image, [(h, w)]), OrderedDict(zip('01234', ref)))
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1., 1.)))
        ours_rpn = model.rpn_head.predict(ours, [sample], rescale=False)[0]
    ref_boxes = ref_boxes[0]
    assert len(ref_boxes) == len(ours_rpn.bboxes) > 100
    # same boxes (order can differ only between equal scores)
    torch.testing.assert_close(ours_rpn.bboxes[:50], ref_boxes[:50], atol=1e-3, rtol=0)
    nearest = (ours_rpn.bboxes[:, None] - ref_boxes[None]).abs().amax(-1).min(1).values
    assert (nearest < 1e-3).all()


@pytest.mark.parametrize('h,w', [(256, 320), (800, 1216), (672, 992)])
def test_anchors_equal_torchvision(h, w):
    """Rounded base anchors, no centre offset, and torchvision's strides (P6 of 800 px: 61)."""
    tv = AnchorGenerator(sizes=((16,), (32,), (64,), (128,), (256,)),
                         aspect_ratios=((0.5, 1.0, 2.0),) * 5)
    feats = [torch.zeros(1, 1, -(-h // s), -(-w // s)) for s in (4, 8, 16, 32)]
    feats.append(torch.zeros(1, 1, -(-feats[-1].shape[2] // 2), -(-feats[-1].shape[3] // 2)))
    ref = tv(ImageList(torch.zeros(1, 3, h, w), [(h, w)]), feats)[0]
    model = build_model()
    ours = model.rpn_head.prior_generator.grid_priors([f.shape[-2:] for f in feats],
                                                       device='cpu')
    torch.testing.assert_close(torch.cat(ours), ref, atol=0, rtol=0)


def test_seeded_original_weights_are_reproducible():
    """Same seed -> bit-identical tensors under either naming; another seed differs."""
    first = original_state_dict(seed=0, legacy_names=False)
    again = original_state_dict(seed=0, legacy_names=True, module_prefix=True)
    assert len(first) == len(again)
    for (key, value), (other_key, other) in zip(first.items(), again.items()):
        assert other_key.startswith('module.')
        assert value.dtype == other.dtype and torch.equal(value, other), key
    assert not torch.equal(original_state_dict(seed=1)['roi_heads.box_head.fc7.weight'],
                           first['roi_heads.box_head.fc7.weight'])
