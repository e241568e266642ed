"""Behaviour of the individual transforms (geometry is in test_pose_invariant.py)."""
import numpy as np
import pytest
import torch
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.dataset import Compose

from img2pose_mm.datasets import make_data_info
from img2pose_mm.structures import FacePoses, pose_to_bbox

from .conftest import REF68, project, synthetic_poses

SHAPE = (120, 160)


def loaded(rng, num=3, shape=SHAPE, without_pose=(), img=None):
    """Results after LoadFacePoseAnnotations for synthetic faces."""
    poses = synthetic_poses(rng, shape, num)
    lm = project(poses, shape)
    valid = np.ones(num, bool)
    valid[list(without_pose)] = False
    lm[~valid] = -1
    boxes = pose_to_bbox(poses, REF68, shape).numpy()
    info = make_data_info('7', 'x.png', shape[0], shape[1], boxes,
                          FacePoses(poses, valid, shape), lm)
    info['img'] = (np.full((*shape, 3), 200, np.uint8) if img is None else img)
    info['img_shape'] = info['ori_shape'] = shape
    return TRANSFORMS.build(dict(type='LoadFacePoseAnnotations'))(info), poses


def test_load_annotations(rng):
    results, poses = loaded(rng, without_pose=[1])
    assert isinstance(results['gt_bboxes'], HorizontalBoxes)
    assert results['gt_bboxes_labels'].dtype == np.int64
    gt_poses = results['gt_poses']
    assert isinstance(gt_poses, FacePoses) and gt_poses.img_shape == SHAPE
    assert gt_poses.dtype == torch.float32 and gt_poses.shape == (3, 6)
    assert results['gt_landmarks'].dtype == np.float32
    assert results['gt_landmarks'].shape == (3, 68, 2)
    assert results['gt_ignore_flags'].tolist() == [False, True, False]
    assert gt_poses.valid.tolist() == [True, False, True]
    np.testing.assert_allclose(gt_poses.tensor[[0, 2]].numpy(), poses[[0, 2]].numpy(),
                               rtol=1e-6)
    # a copy: the dataset's poses are never moved by the transforms
    assert gt_poses is not results['poses']
    empty = TRANSFORMS.build(dict(type='LoadFacePoseAnnotations'))(
        dict(instances=[], height=10, width=10, poses=FacePoses.empty((10, 10)),
             landmarks=np.zeros((0, 5, 2))))
    assert len(empty['gt_poses']) == 0 and empty['gt_landmarks'].shape == (0, 5, 2)
    no_poses = TRANSFORMS.build(dict(type='LoadFacePoseAnnotations'))(
        dict(instances=[dict(bbox=[0, 0, 5, 5], bbox_label=0, ignore_flag=0)], height=10,
             width=10, ori_shape=(10, 10)))
    assert not no_poses['gt_poses'].valid.any() and no_poses['gt_ignore_flags'].tolist() == [True]


def test_annotations_of_another_image_are_refused(rng):
    results, _ = loaded(rng)
    info = {k: results[k] for k in ('instances', 'height', 'width', 'img_id', 'img_path',
                                    'poses')}
    info['img'] = np.zeros((SHAPE[1], SHAPE[0], 3), np.uint8)     # e.g. EXIF-rotated
    info['img_shape'] = info['ori_shape'] = info['img'].shape[:2]
    with pytest.raises(ValueError, match=r"image '7' \(x.png\) decodes to \(160, 120\)"):
        TRANSFORMS.build(dict(type='LoadFacePoseAnnotations'))(info)


def test_multiscale_resize_follows_spec():
    """Short side = min_size unless the long side would pass max_size (docs/reference.md §2)."""
    resize = TRANSFORMS.build(dict(type='PoseMultiScaleResize', min_size=(640, 800),
                                   max_size=1400))
    seen = set()
    np.random.seed(0)
    for _ in range(20):
        out = resize(dict(img=np.zeros((300, 400, 3), np.uint8)))
        seen.add(min(out['img'].shape[:2]))
    assert seen == {640, 800}
    out = resize(dict(img=np.zeros((100, 400, 3), np.uint8)))     # long side capped
    assert out['img'].shape[:2] == (350, 1400)


def test_crop_geometry_and_face_rule(rng):
    crop = TRANSFORMS.build(dict(type='PoseRandomCrop', scale_range=(0.7, 1.0)))
    offsets, scales = [], []
    np.random.seed(1)
    for _ in range(40):
        results, _ = loaded(rng, num=4)
        lm_before = results['gt_landmarks'].copy()
        out = crop(results)
        h, w = out['img'].shape[:2]
        scales.append(h / SHAPE[0])
        hom = out.get('homography_matrix')
        if hom is None:
            continue
        x0, y0 = -hom[0, 2], -hom[1, 2]
        offsets.append(y0)
        assert abs(w / SHAPE[1] - h / SHAPE[0]) < 0.02
        # kept faces: centre and landmarks inside; the others are dropped or, when still
        # visible, ignored
        inside = ((lm_before[..., 0] >= x0) & (lm_before[..., 0] <= x0 + w)
                  & (lm_before[..., 1] >= y0) & (lm_before[..., 1] <= y0 + h)).all(-1)
        assert len(out['gt_poses']) == len(out['gt_landmarks']) == len(out['gt_bboxes'])
        kept = ~out['gt_ignore_flags']
        assert kept.sum() <= inside.sum()
        lm = out['gt_landmarks'][kept]
        assert (lm >= 0).all()
        assert (lm[..., 0] <= w).all() and (lm[..., 1] <= h).all()
    assert min(scales) >= 0.69 and max(scales) <= 1.0
    assert max(offsets) > 5          # not top-anchored


def test_crop_keeps_image_when_no_crop_keeps_a_face():
    """A face covering the whole image cannot survive a crop: after the retries the
    image is left as it is."""
    poses = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0, 1.2]], dtype=torch.float64)
    lm = project(poses, SHAPE)
    assert lm[..., 0].min() < 5 and lm[..., 0].max() > SHAPE[1] - 5
    info = make_data_info('0', 'x', SHAPE[0], SHAPE[1], np.array([[0, 0, 160, 120]]),
                          FacePoses(poses, img_shape=SHAPE), lm)
    info.update(img=np.zeros((*SHAPE, 3), np.uint8))
    results = TRANSFORMS.build(dict(type='LoadFacePoseAnnotations'))(info)
    out = TRANSFORMS.build(dict(type='PoseRandomCrop', scale_range=(0.7, 0.8),
                                max_attempts=5))(results)
    assert out['img'].shape[:2] == SHAPE and len(out['gt_poses']) == 1


def test_flip_only_horizontal():
    with pytest.raises(ValueError, match='horizontal'):
        TRANSFORMS.build(dict(type='PoseRandomFlip', prob=0.5, direction='vertical'))


def test_pose_to_bbox(rng):
    results, poses = loaded(rng, without_pose=[2])
    results['gt_bboxes'] = HorizontalBoxes(torch.zeros(3, 4) + torch.tensor([1., 2., 30., 40.]))
    out = TRANSFORMS.build(dict(type='PoseToBBox'))(results)
    expected = pose_to_bbox(poses[:2], REF68, SHAPE).float()
    torch.testing.assert_close(out['gt_bboxes'].tensor[:2], expected)
    assert out['gt_bboxes'].tensor[2].tolist() == [1., 2., 30., 40.]      # no pose: kept
    # a face projected outside the image has an empty box and is dropped
    results, _ = loaded(rng)
    results['gt_poses'].tensor[0, 3] = 50.0
    out = TRANSFORMS.build(dict(type='PoseToBBox'))(results)
    assert len(out['gt_poses']) == len(out['gt_landmarks']) == len(out['gt_bboxes']) == 2


def test_black_out_faces_without_pose(rng):
    img = np.full((*SHAPE, 3), 200, np.uint8)
    results, _ = loaded(rng, num=3, without_pose=[1], img=img)
    boxes = results['gt_bboxes'].tensor.numpy()
    kept = [boxes[0], boxes[2]]
    out = TRANSFORMS.build(dict(type='BlackOutFacesWithoutPose'))(dict(results))
    x1, y1, x2, y2 = boxes[1]
    region = out['img'][int(np.ceil(y1)):int(y2), int(np.ceil(x1)):int(x2)]
    assert region.size and (region == 0).all()
    assert len(out['gt_poses']) == 2 and not out['gt_ignore_flags'].any()
    np.testing.assert_allclose(out['gt_bboxes'].tensor.numpy(), np.stack(kept))
    outside = np.ones(SHAPE, bool)
    outside[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))] = False
    assert (out['img'][outside] == 200).all()
    results, _ = loaded(rng, num=3, without_pose=[1], img=img)
    out = TRANSFORMS.build(dict(type='BlackOutFacesWithoutPose', drop=False))(results)
    assert len(out['gt_poses']) == 3 and out['gt_ignore_flags'].tolist() == [False, True, False]


def test_pack(rng):
    results, poses = loaded(rng, without_pose=[0])
    out = TRANSFORMS.build(dict(type='PackFacePoseInputs'))(results)
    gt, ignored = out['data_samples'].gt_instances, out['data_samples'].ignored_instances
    assert isinstance(gt.poses, FacePoses) and gt.poses.img_shape == SHAPE
    assert gt.poses.dtype == torch.float32 and gt.poses.shape == (2, 6)
    assert gt.landmarks.shape == (2, 68, 2)
    torch.testing.assert_close(gt.poses.tensor, poses[1:].float())
    assert len(ignored) == 1 and not ignored.poses.valid.any()
    assert out['inputs'].shape == (3, *SHAPE)


def test_non_pose_aware_geometry_is_refused(rng):
    results, _ = loaded(rng)
    results = TRANSFORMS.build(dict(type='Resize', scale=(80, 60), keep_ratio=True))(results)
    with pytest.raises(RuntimeError, match='not pose-aware'):
        TRANSFORMS.build(dict(type='PoseToBBox'))(results)
    with pytest.raises(RuntimeError, match='not pose-aware'):
        TRANSFORMS.build(dict(type='PoseRandomFlip', prob=1.0))(results)
    results, _ = loaded(rng)
    results['gt_bboxes'] = results['gt_bboxes'][:1]      # e.g. mmdet's FilterAnnotations
    with pytest.raises(ValueError, match='disagree'):
        TRANSFORMS.build(dict(type='PoseToBBox'))(results)


def test_test_pipeline_keeps_original_frame(rng):
    """Annotations loaded after the resize stay in the original image's frame (mmdet's
    test-time convention: predictions are rescaled to ori_shape)."""
    results, poses = loaded(rng)
    info = {k: results[k] for k in ('instances', 'height', 'width', 'img', 'img_shape',
                                    'ori_shape', 'img_id', 'img_path', 'poses')}
    pipeline = Compose([dict(type='PoseResize', scale=(400, 300), keep_ratio=True),
                        dict(type='LoadFacePoseAnnotations'),
                        dict(type='PackFacePoseInputs',
                             meta_keys=('img_shape', 'ori_shape', 'scale_factor'))])
    out = pipeline(info)
    assert out['data_samples'].img_shape == (300, 400)
    gt_poses = out['data_samples'].gt_instances.poses
    assert gt_poses.img_shape == SHAPE
    torch.testing.assert_close(gt_poses.tensor, poses.float())


def test_random_contrast():
    img = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    assert (TRANSFORMS.build(dict(type='RandomContrast', prob=0.0))(dict(img=img))['img']
            == img).all()
    np.random.seed(0)
    out = TRANSFORMS.build(dict(type='RandomContrast', contrast_range=(0.5, 0.5), prob=1.0))(
        dict(img=img.copy()))['img']
    assert out.dtype == np.uint8
    assert out.astype(float).std() == pytest.approx(0.5 * img.astype(float).std(), rel=0.02)
    grey = (img.reshape(-1, 3).astype(float).mean(0) * [0.114, 0.587, 0.299]).sum()
    assert out.astype(float).mean() == pytest.approx(0.5 * img.mean() + 0.5 * grey, abs=0.6)


@pytest.mark.parametrize('mode', ['gaussian', 'salt_pepper', 'poisson'])
def test_random_noise_defaults_are_the_originals(mode):
    """img2pose's noise on the 0..255 scale: Gaussian of variance 0.1, salt-and-pepper on
    0.4% of the pixels (half salt), Poisson with 2**ceil(log2(#distinct values)) levels."""
    rng = np.random.default_rng(3)
    img = rng.integers(60, 200, (120, 120, 3)).astype(np.uint8)    # 140 distinct values
    noise = TRANSFORMS.build(dict(type='RandomNoise', prob=1.0, modes=(mode,)))
    np.random.seed(0)
    out = noise(dict(img=img.copy()))['img']
    assert out.dtype == np.uint8 and out.shape == img.shape
    diff = out.astype(float) - img
    if mode == 'gaussian':
        # std sqrt(0.1) = 0.32 grey levels: rounding keeps a pixel unless |noise| > 0.5
        from scipy.stats import norm
        assert (diff != 0).mean() == pytest.approx(2 * norm.sf(0.5 / np.sqrt(0.1)), abs=0.01)
        assert np.abs(diff).max() <= 2
    elif mode == 'salt_pepper':
        changed = (diff != 0).any(-1)
        assert changed.mean() == pytest.approx(0.004, abs=0.002)
        assert set(np.unique(out[changed])) <= {0, 255}
    else:
        # Poisson(x * 256) / 256: variance x / 256, mean x
        expected = np.sqrt(img.astype(float) / 256).mean()
        assert np.sqrt((diff ** 2).mean()) == pytest.approx(expected, rel=0.2)
        assert abs(diff.mean()) < 0.1
    assert (TRANSFORMS.build(dict(type='RandomNoise', prob=0.0))(dict(img=img))['img']
            == img).all()
    with pytest.raises(ValueError):
        TRANSFORMS.build(dict(type='RandomNoise', modes=('speckle',)))
