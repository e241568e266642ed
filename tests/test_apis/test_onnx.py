"""ONNX export and the onnxruntime backend against the PyTorch detector they come from.

Two graphs are exported (each export takes a while, so once per module): the tiny
checkpoint trained in the session (fractional box centre, SVD nearest rotation) through
``tools/deployment/export_onnx.py``, and seeded original-layout weights converted by the
model converter (integer box centre, Markley rotation) through the library. Both run the
scikit-image photos at two sizes through one dynamic graph and must give what PyTorch
gives: the same detections, boxes within 1 px, scores within 1e-4, rotations within
1e-4 rad, translations within 1e-4 of their length and every pose number within 1e-3.
Measured: boxes equal, scores within 4e-6, every pose number within 7e-5. The absolute
bound is looser because a translation is ~10-250 units long: the runtimes sum
convolutions and MLPs in different orders, the network outputs differ by a few float32
ulps (~1e-6 relative), and the decode scales the box-local translation by the image's
focal length over the box's, which keeps the relative difference only.
"""
import os

import numpy as np
import onnx
import pytest
import torch
from skimage import data as skimage_data

from img2pose_mm.apis import Img2Pose
from img2pose_mm.apis.onnx_backend import OnnxRuntimeDetector
from img2pose_mm.deployment import ExportableImg2Pose, check_exportable, export_onnx
from img2pose_mm.deployment.onnx_export import read_metadata

from .conftest import CONFIG, FAST_CFG, msf
from .test_tools import load_script

PHOTOS = ('astronaut', 'camera', 'coffee', 'chelsea', 'rocket')
SIZES = ((100, 300), (150, 450))          # (min_size, max_size): ~100 and ~150 px photos
# the graphs' score threshold (test_cfg.rcnn.score_thr is baked in at export); PyTorch
# runs with it too (Img2Pose's score_threshold lowers PyTorch's, not a graph's), low
# enough that the seeded converted weights find faces in every photo at ~100 px (their
# best face score on chelsea is 0.009 with 60 proposals)
SCORE_THR = 0.002
EXPORT_CFG = dict(FAST_CFG, **{'model.test_cfg.rcnn.score_thr': SCORE_THR})
FAST_OPTIONS = [f'{k}={v}' for k, v in EXPORT_CFG.items()]


@pytest.fixture(scope='module')
def photos():
    return {name: getattr(skimage_data, name)() for name in PHOTOS}


@pytest.fixture(scope='module')
def tiny_graph(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint exported by the command line tool (dynamic input size)."""
    path, _, _ = tiny_checkpoint
    out = tmp_path_factory.mktemp('onnx') / 'tiny.onnx'
    tool = load_script('tools/deployment/export_onnx.py')
    with msf.torch_threads(2):
        assert tool.main([str(CONFIG), str(path), str(out), '--dynamic', '--shape', '96', '128',
                          '--verify', 'random', '--cfg-options', *FAST_OPTIONS]) == 0
    return out


def original_layout_checkpoint(directory):
    """Seeded original-layout weights (:mod:`tools.fidelity`, scaled like a working
    detector's) converted by tools/model_converters with the original's decode (integer
    box centre) and Markley's nearest rotation."""
    from tools.fidelity import (
        SEEDED_POSE_MEAN,
        SEEDED_POSE_STDDEV,
        save_original_checkpoint,
    )
    converter = load_script('tools/model_converters/img2pose_to_mmdet.py')
    src = save_original_checkpoint(str(directory / 'img2pose_v1.pth'), seed=3)
    dst = directory / 'img2pose_v1_mmdet.pth'
    np.save(directory / 'mean.npy', SEEDED_POSE_MEAN)
    np.save(directory / 'std.npy', SEEDED_POSE_STDDEV)
    converter.convert(src, str(dst), pose_mean=str(directory / 'mean.npy'),
                      pose_stddev=str(directory / 'std.npy'), rotation_method='markley')
    return dst


@pytest.fixture(scope='module')
def converted_graph(tmp_path_factory):
    """A converted original-layout checkpoint exported by :func:`export_onnx`."""
    directory = tmp_path_factory.mktemp('converted')
    checkpoint = original_layout_checkpoint(directory)
    with msf.torch_threads(2):
        detector = Img2Pose(checkpoint=checkpoint, device='cpu', cfg_options=EXPORT_CFG)
        out = export_onnx(detector.model, directory / 'converted.onnx', dynamic=True,
                          input_shape=(96, 128), checkpoint=str(checkpoint))
    return checkpoint, out


def assert_same_detections(reference, exported, what):
    """Equal counts; boxes, scores, rotations and translations within the tolerances."""
    ref, out = reference.pred_instances, exported.pred_instances
    assert len(ref) == len(out), f'{what}: {len(ref)} PyTorch vs {len(out)} onnxruntime'
    if len(ref) == 0:
        return {}
    assert torch.equal(out.labels, ref.labels), what
    deviation = dict(
        boxes=float((out.bboxes - ref.bboxes).abs().max()),
        scores=float((out.scores - ref.scores).abs().max()),
        poses=float((out.poses - ref.poses).abs().max()),
        rotation=float((out.poses[:, :3] - ref.poses[:, :3]).abs().max()),
        translation=float(((out.poses[:, 3:] - ref.poses[:, 3:]).norm(dim=1)
                           / ref.poses[:, 3:].norm(dim=1)).max()))
    assert deviation['boxes'] <= 1.0, (what, deviation)
    assert deviation['scores'] <= 1e-4, (what, deviation)
    assert deviation['rotation'] <= 1e-4, (what, deviation)
    assert deviation['translation'] <= 1e-4, (what, deviation)
    assert deviation['poses'] <= 1e-3, (what, deviation)
    return deviation


def compare_backends(photos, sizes, graph, **pytorch_kwargs):
    """Both backends on every photo at every size; returns the deviations."""
    deviations = {}
    for min_size, max_size in sizes:
        size = dict(min_size=min_size, max_size=max_size, score_threshold=SCORE_THR,
                    device='cpu')
        reference = Img2Pose(batch_size=1, cfg_options=EXPORT_CFG, **size, **pytorch_kwargs)
        exported = Img2Pose(backend='onnxruntime', onnx_file=graph, **size)
        arrays = [reference._load_one(photo) for photo in photos.values()]
        shapes = set()
        for name, ref, out in zip(photos, reference.predict(arrays), exported.predict(arrays)):
            shapes.add(tuple(ref.img_shape))
            assert len(ref.pred_instances) > 0, name
            deviations[name, min_size] = assert_same_detections(ref, out, (name, min_size))
        assert len(shapes) > 1           # several input sizes through the one graph
    worst = {key: max(d[key] for d in deviations.values()) for key in ('boxes', 'scores',
                                                                        'poses', 'rotation',
                                                                        'translation')}
    print(f'{os.path.basename(str(graph))}: {len(deviations)} images, largest deviations '
          f'{worst}')
    return deviations


def test_tiny_checkpoint_graph_equals_pytorch(tiny_graph, tiny_checkpoint, photos):
    path, _, _ = tiny_checkpoint
    with msf.torch_threads(2):
        compare_backends(photos, SIZES, tiny_graph, config=CONFIG, checkpoint=path)
    model = onnx.load(str(tiny_graph))
    meta = read_metadata({prop.key: prop.value for prop in model.metadata_props})
    assert {node.domain for node in model.graph.node} <= {''}          # standard ops only
    assert {'RoiAlign', 'NonMaxSuppression'} <= {node.op_type for node in model.graph.node}
    assert meta['input'] == dict(name='image', dtype='uint8', layout='NCHW', batch=1,
                                 channel_order='bgr', dynamic=True, shape=None)
    assert meta['test_cfg']['nms_pre'] == 300 and meta['test_cfg']['num_proposals'] == 60


def test_converted_checkpoint_graph_equals_pytorch(converted_graph, photos):
    checkpoint, graph = converted_graph
    runner = OnnxRuntimeDetector(graph)
    assert runner.face_model.integer_box_centre
    assert runner.face_model.rotation_method == 'markley'
    with msf.torch_threads(2):
        reference = Img2Pose(checkpoint=checkpoint, device='cpu')
        assert runner.face_model.same_as(reference.face_model)
        compare_backends(photos, SIZES, graph, checkpoint=checkpoint)


def test_alignment_with_the_graph(tiny_graph, tiny_checkpoint, photos):
    """Faces, keypoints and aligned crops of the graph are PyTorch's."""
    path, _, _ = tiny_checkpoint
    image = photos['astronaut']
    size = dict(min_size=150, max_size=450, score_threshold=SCORE_THR, max_faces=3,
                device='cpu')
    with msf.torch_threads(2):
        reference = Img2Pose(config=CONFIG, checkpoint=path, cfg_options=EXPORT_CFG, **size)
        exported = Img2Pose(backend='onnxruntime', onnx_file=tiny_graph, **size)
        faces = reference.detect_and_align(image, output_size=64, return_array=True)
        graph_faces = exported.detect_and_align(image, output_size=64, return_array=True)
        # the face dict's other contents come from the poses: Euler angles, 68 landmarks,
        # poses in a user camera
        extra = dict(euler='XYZ', landmarks=68, camera=900.0)
        user = reference.detect_faces(image, **extra)
        graph_user = exported.detect_faces(image, **extra)
    assert len(faces) == len(graph_faces) == 3
    assert len(user) == len(graph_user) == 3
    for face, graph_face in zip(user, graph_user):
        np.testing.assert_allclose(graph_face['landmarks'], face['landmarks'], atol=1e-2)
        np.testing.assert_allclose(graph_face['pose'], face['pose'], rtol=1e-4, atol=1e-4)
        for name, angle in face['euler'].items():
            assert graph_face['euler'][name] == pytest.approx(angle, abs=1e-2)   # degrees
    torch.testing.assert_close(exported.face_model.points_5.cpu(),
                               reference.face_model.points_5.cpu(), rtol=0, atol=0)
    for face, graph_face in zip(faces, graph_faces):
        assert graph_face['confidence'] == pytest.approx(face['confidence'], abs=1e-4)
        np.testing.assert_allclose(graph_face['box'], face['box'], atol=1.0)
        for name, xy in face['keypoints'].items():
            np.testing.assert_allclose(graph_face['keypoints'][name], xy, atol=1e-2)
        diff = np.abs(graph_face['image'].astype(int) - face['image'].astype(int))
        assert diff.mean() < 0.5, diff.mean()


def test_exportable_module_is_the_detector(random_detector):
    """The export-friendly forward pass gives the detector's own predictions (to float
    rounding), before any export (images whose sides are and are not multiples of 32)."""
    from mmdet.structures import DetDataSample

    model = random_detector.model
    exportable = ExportableImg2Pose(model)
    rng = np.random.default_rng(0)
    for h, w in ((128, 160), (97, 141)):
        image = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        with torch.no_grad(), msf.torch_threads(1):
            batch = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), False)
            ref = model.predict(batch['inputs'], batch['data_samples'], rescale=False)[0]
            boxes, scores, labels, poses = exportable(image[None])
        pred = ref.pred_instances
        assert len(pred) == len(boxes) > 0
        # the detector's CPU RoIAlign is the gather extractor on channels-last levels,
        # the graph's is ONNX RoiAlign on NCHW: equal up to the order of float additions
        torch.testing.assert_close(labels, pred.labels, atol=0, rtol=0)
        torch.testing.assert_close(boxes, pred.bboxes, atol=1e-3, rtol=0)
        torch.testing.assert_close(scores, pred.scores, atol=1e-6, rtol=0)
        torch.testing.assert_close(poses, pred.poses, atol=1e-5, rtol=1e-5)


def test_what_cannot_be_exported():
    with pytest.raises(TypeError, match='two-stage detector'):
        check_exportable(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match='two-stage detector'):
        ExportableImg2Pose(torch.nn.Module())


def fake_graph(path, with_outputs=True):
    """A small valid ONNX model: image in, constant detections out, no img2pose metadata."""
    from onnx import TensorProto, helper
    image = helper.make_tensor_value_info('image', TensorProto.UINT8, [1, 3, 'h', 'w'])
    names = dict(boxes=(TensorProto.FLOAT, [0, 4]), scores=(TensorProto.FLOAT, [0]),
                 labels=(TensorProto.INT64, [0]), poses=(TensorProto.FLOAT, [0, 6]))
    if not with_outputs:
        names = dict(out=(TensorProto.UINT8, [1, 3, 'h', 'w']))
        nodes = [helper.make_node('Identity', ['image'], ['out'])]
    else:
        nodes = [helper.make_node('Constant', [], [name], value=helper.make_tensor(
            name + '_value', kind, shape, []))
            for name, (kind, shape) in names.items()]
    outputs = [helper.make_tensor_value_info(n, kind, shape) for n, (kind, shape) in names.items()]
    model = helper.make_model(helper.make_graph(nodes, 'fake', [image], outputs),
                              opset_imports=[helper.make_opsetid('', 18)])
    onnx.save(model, str(path))
    return path


def test_bad_graphs_and_images(tiny_graph, tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.onnx'):
        Img2Pose(backend='onnxruntime', onnx_file=tmp_path / 'missing.onnx')
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a protobuf' * 10)
    with pytest.raises(ValueError, match='garbage.onnx is not a readable ONNX model'):
        OnnxRuntimeDetector(garbage)
    with pytest.raises(ValueError, match='identity.onnx is not an img2pose_mm graph'):
        OnnxRuntimeDetector(fake_graph(tmp_path / 'identity.onnx', with_outputs=False))
    with pytest.raises(ValueError, match='no_meta.onnx has no img2pose_mm metadata'):
        OnnxRuntimeDetector(fake_graph(tmp_path / 'no_meta.onnx'))
    with pytest.raises(ValueError, match='onnx_file'):
        Img2Pose(backend='onnxruntime')
    with pytest.raises(ValueError, match='takes no checkpoint'):
        Img2Pose(backend='onnxruntime', onnx_file=tiny_graph, checkpoint=tmp_path / 'x.pth')
    with pytest.raises(ValueError, match='backend must be one of'):
        Img2Pose(backend='tensorrt')
    with pytest.warns(UserWarning, match='below the score threshold'):
        detector = Img2Pose(backend='onnxruntime', onnx_file=tiny_graph, score_threshold=0.0005,
                            min_size=96, max_size=128)
    with pytest.raises(TypeError, match='image'):
        detector.detect_faces(object())
    with pytest.raises(NotImplementedError, match='tiny.onnx makes its own proposals'):
        detector.estimate_poses(np.zeros((96, 128, 3), np.uint8), [[10, 10, 50, 60]])
    with pytest.raises(FileNotFoundError, match='nowhere.jpg'):
        detector.detect_faces(tmp_path / 'nowhere.jpg')
    graph = detector.model
    with pytest.raises(ValueError, match=r'uint8 \(1, 3, H, W\)'):
        graph(np.zeros((1, 3, 64, 64), np.float32))
    graph.input_spec = dict(graph.input_spec, dynamic=False, shape=[64, 96])
    with pytest.raises(ValueError, match='64x96 images only.*--dynamic'):
        graph(np.zeros((1, 3, 70, 96), np.uint8))
    assert graph(np.zeros((3, 64, 96), np.uint8))['poses'].shape[1] == 6


def test_image_demo_runs_the_graph(tiny_graph, photos, tmp_path):
    from PIL import Image
    demo = load_script('demo/image_demo.py')
    Image.fromarray(photos['coffee']).save(tmp_path / 'coffee.png')
    out = tmp_path / 'drawn.png'
    assert demo.main([str(tmp_path / 'coffee.png'), '--onnx', str(tiny_graph), '--out',
                      str(out), '--score-thr', '0.05', '--min-size', '96', '--max-size',
                      '200', '--json']) == 0
    assert out.is_file() and out.with_suffix('.json').is_file()
    with pytest.raises(SystemExit):
        demo.parse_args([str(out), '--onnx', str(tiny_graph), '--checkpoint', 'x.pth'])
