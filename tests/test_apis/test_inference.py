"""Img2Pose end to end: random weights and a tiny trained checkpoint."""
import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from img2pose_mm.apis import Img2Pose, default_config_path, resolve_device
from img2pose_mm.structures import FIVE_POINT_NAMES, load_reference_points, pose_to_bbox

from .conftest import CONFIG, FAST_CFG, TEST_SIZE, synthetic_images

FACE_KEYS = {'box', 'confidence', 'pose', 'euler', 'keypoints'}


def projected_keypoints(poses: np.ndarray, img_shape, points5=None) -> np.ndarray:
    """The 5 reference points under global poses, by ``cv2.projectPoints`` in img2pose's
    camera of the image, ``K = [[w + h, 0, w // 2], [0, w + h, h // 2], [0, 0, 1]]``."""
    h, w = img_shape
    if points5 is None:
        points5 = load_reference_points(num_points=5)
    points5 = np.asarray(points5, dtype=np.float64)
    camera = np.array([[w + h, 0, w // 2], [0, w + h, h // 2], [0, 0, 1]], dtype=np.float64)
    return np.stack([cv2.projectPoints(points5, pose[:3], pose[3:], camera, None)[0][:, 0]
                     for pose in poses])


def check_faces(faces, img_shape, threshold, max_faces=-1, points5=None):
    """Types, keys, sorting, and the geometry of every face."""
    assert isinstance(faces, list)
    if max_faces > 0:
        assert len(faces) <= max_faces
    scores = [f['confidence'] for f in faces]
    assert scores == sorted(scores, reverse=True)
    for face in faces:
        assert set(face) == FACE_KEYS
        assert isinstance(face['confidence'], float) and face['confidence'] >= threshold
        assert isinstance(face['box'], list) and len(face['box']) == 4
        assert isinstance(face['pose'], list) and len(face['pose']) == 6
        assert list(face['euler']) == ['yaw', 'pitch', 'roll']
        assert all(type(v) is float for v in face['euler'].values())
        assert all(type(v) is float for v in face['box'] + face['pose'])
        assert list(face['keypoints']) == list(FIVE_POINT_NAMES)
        for xy in face['keypoints'].values():
            assert isinstance(xy, list) and len(xy) == 2 and all(type(v) is float for v in xy)
    if faces:
        poses = np.array([f['pose'] for f in faces])
        kps = np.array([[f['keypoints'][n] for n in FIVE_POINT_NAMES] for f in faces])
        np.testing.assert_allclose(kps, projected_keypoints(poses, img_shape, points5), atol=1e-6)
        # boxes are the pose-projected boxes (docs/reference.md §3) in the input image's frame
        points68 = torch.as_tensor(load_reference_points(), dtype=torch.float64)
        boxes = pose_to_bbox(torch.as_tensor(poses), points68, img_shape).numpy()
        scale = max(1.0, max(img_shape) / TEST_SIZE)
        assert np.abs(np.array([f['box'] for f in faces]) - boxes).max() <= 1.5 * scale + 1


def same_faces(a, b, tol=1e-9):
    """Equal face lists up to float rounding: the numbers of a face are computed in a batch
    of faces, and vectorised kernels may round the last bit by position in the batch."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(
            same_faces(a[k], b[k], tol) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(
            same_faces(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float):
        return isinstance(b, float) and abs(a - b) <= tol * max(1.0, abs(a))
    return a == b


@pytest.fixture(scope='module')
def images():
    return [img for img, _ in synthetic_images(3, seed=11)]


def test_random_weights_end_to_end(random_detector, images, tmp_path):
    det = random_detector
    assert det.device == 'cpu' and det.model.dataset_meta['classes'] == ('face',)
    faces = det.detect_faces(images[0])
    assert len(faces) > 0
    check_faces(faces, images[0].shape[:2], 0.0)
    assert det(images[0]) == faces                              # __call__
    # path, PIL and array inputs: the same faces
    path = tmp_path / 'face.png'
    Image.fromarray(images[0]).save(path)
    assert det.detect_faces(str(path)) == faces
    assert det.detect_faces(path) == faces
    assert det.detect_faces(Image.open(path)) == faces
    # threshold and cap: a prefix of the full, sorted list
    old = det.score_threshold, det.max_faces
    try:
        det.score_threshold = faces[len(faces) // 2]['confidence']
        kept = det.detect_faces(images[0])
        assert same_faces(kept, [f for f in faces if f['confidence'] >= det.score_threshold])
        det.max_faces = 2
        assert same_faces(det.detect_faces(images[0]), kept[:2])
    finally:
        det.score_threshold, det.max_faces = old


def assert_same_faces(a, b, atol=1e-3):
    assert len(a) == len(b)
    for fa, fb in zip(a, b):
        np.testing.assert_allclose(fa['box'], fb['box'], atol=atol * 100)
        np.testing.assert_allclose(fa['pose'], fb['pose'], atol=atol, rtol=1e-4)
        assert abs(fa['confidence'] - fb['confidence']) < atol


def test_batch_equals_singles(random_detector, images):
    det = random_detector
    singles = [det.detect_faces(img) for img in images]
    batch = det.detect_faces(images)
    assert isinstance(batch, list) and len(batch) == len(images)
    for one, many in zip(singles, batch):
        assert_same_faces(one, many)
    # a tuple is a batch too; chunks give the same
    det.batch_size = 2
    try:
        for one, many in zip(singles, det.detect_faces(tuple(images))):
            assert_same_faces(one, many)
    finally:
        det.batch_size = None
    # images of different sizes in one batch: each result in its own image's frame
    small = images[1][:100, :120]
    mixed = det.detect_faces([images[0], small])
    check_faces(mixed[0], images[0].shape[:2], 0.0)
    check_faces(mixed[1], small.shape[:2], 0.0)


def test_align_and_detect_and_align(random_detector, images):
    det = random_detector
    faces = det.detect_faces(images[0])[:3]
    crops = det.align_faces(images[0], faces)
    assert len(crops) == 3 and all(isinstance(c, Image.Image) and c.size == (224, 224)
                                   for c in crops)
    arrays = det.align_faces(images[0], faces, output_size=112, return_array=True)
    assert arrays.shape == (3, 112, 112, 3) and arrays.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(det.align_faces(Image.fromarray(images[0]), faces,
                                                             112)[0]), arrays[0])
    det.max_faces = 3
    try:
        results = det.detect_and_align(images[0])
        assert same_faces([{k: v for k, v in r.items() if k != 'image'} for r in results],
                          faces)
        assert all(list(r) == ['image', 'box', 'confidence', 'pose', 'euler', 'keypoints']
                   for r in results)
        assert all(isinstance(r['image'], Image.Image) for r in results)
        as_arrays = det.detect_and_align(images[0], output_size=112, return_array=True)
        np.testing.assert_array_equal(np.stack([r['image'] for r in as_arrays]), arrays)
        per_image = det.detect_faces(images[:2])
        batch = det.align_faces_batch(images[:2], per_image, output_size=64)
        assert [b.shape for b in batch] == [(len(f), 64, 64, 3) for f in per_image]
        pil_batch = det.align_faces_batch(images[:2], per_image, 64, return_array=False)
        np.testing.assert_array_equal(np.asarray(pil_batch[1][0]), batch[1][0])
    finally:
        det.max_faces = -1
    assert det.align_faces(images[0], []).__len__() == 0
    assert det.align_faces(images[0], [], return_array=True).shape == (0, 224, 224, 3)


def test_trained_checkpoint(tiny_checkpoint, images):
    """A checkpoint trained in the session: its pose statistics come back although the
    config's statistics files do not exist, and the API gives exactly what mmdet's
    ``inference_detector`` gives on the BGR image (same pipeline)."""
    from mmdet.apis import inference_detector
    from mmengine.dataset import Compose

    path, mean, std = tiny_checkpoint
    options = dict(FAST_CFG)
    options['model.roi_head.bbox_head.bbox_coder.pose_mean'] = '/nonexistent/mean.npy'
    options['model.roi_head.bbox_head.bbox_coder.pose_stddev'] = '/nonexistent/std.npy'
    det = Img2Pose(config=None, checkpoint=path, device='auto', score_threshold=0.05,
                   max_faces=5, min_size=160, max_size=320, cfg_options=options)
    head = det.model.roi_head.bbox_head
    torch.testing.assert_close(head.bbox_coder.pose_mean, mean)
    torch.testing.assert_close(head.bbox_coder.pose_stddev, std)
    assert det.device == resolve_device('auto') == ('cuda' if torch.cuda.is_available() else 'cpu')
    image = images[2]                                  # 128 px, run at 160: rescaled results
    faces = det.detect_faces(image)
    check_faces(faces, image.shape[:2], 0.05, max_faces=5,
                points5=det.face_model.points_5.cpu().numpy())
    reference = inference_detector(det.model, np.ascontiguousarray(image[..., ::-1]),
                                   test_pipeline=Compose(det.pipeline_cfg))
    pred = reference.pred_instances
    order = torch.argsort(pred.scores, descending=True)
    order = order[pred.scores[order] >= 0.05][:5]
    assert len(faces) == len(order) > 0
    for face, i in zip(faces, order.tolist()):
        assert face['confidence'] == pytest.approx(float(pred.scores[i]), abs=1e-6)
        np.testing.assert_allclose(face['pose'], pred.poses[i].cpu().numpy(), atol=1e-5)
        np.testing.assert_allclose(face['box'], pred.bboxes[i].cpu().numpy(), atol=1e-4)
    assert reference.metainfo['scale_factor'] == pytest.approx((1.25, 1.25))
    assert default_config_path() == CONFIG


def test_constructor_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing_config.py'):
        Img2Pose(config=tmp_path / 'missing_config.py')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        Img2Pose(config=CONFIG, checkpoint=tmp_path / 'missing.pth', device='cpu')
    original = tmp_path / 'img2pose_v1.pth'
    torch.save({'fpn_model': {'module.backbone.body.conv1.weight': torch.zeros(64, 3, 7, 7)}},
               original)
    with pytest.raises(ValueError, match='img2pose_to_mmdet'):
        Img2Pose(config=CONFIG, checkpoint=original, device='cpu')
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='CUDA'):
            resolve_device('cuda')


def test_inference_pipeline():
    from mmengine.config import Config

    from img2pose_mm.apis import build_inference_pipeline

    cfg = Config.fromfile(str(CONFIG))
    default = build_inference_pipeline(cfg, 640, 1400)           # Img2Pose's defaults (docs/reference.md §2)
    assert [s['type'] for s in default] == ['mmdet.LoadImageFromNDArray', 'PoseResize',
                                            'PackFacePoseInputs']
    assert default[1]['scale'] == (1400, 640) and default[1]['keep_ratio']
    assert 'instances' not in default[2]['meta_keys']
    assert 'scale_factor' in default[2]['meta_keys']
    assert build_inference_pipeline(cfg, 400, None)[1]['scale'] == (1400, 400)
    assert build_inference_pipeline(cfg)[1]['scale'] == (1400, 640)   # the config's own
    with pytest.raises(ValueError, match='min_size'):
        build_inference_pipeline(cfg, 800, 400)
    cfg.test_dataloader.dataset.pipeline = [dict(type='LoadFacePoseImage'),
                                            dict(type='TestTimeAug', transforms=[])]
    with pytest.raises(ValueError, match='TestTimeAug'):
        build_inference_pipeline(cfg, 640, 1400)
