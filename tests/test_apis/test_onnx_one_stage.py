"""ONNX export of one-stage models (RetinaNet + DoFRetinaHead) against PyTorch.

Two graphs, each exported once per module from seeded random weights whose face
classifier is shifted so that about 80 anchors of a photo pass the score threshold
(:func:`~img2pose_mm.deployment.frame_rate.calibrate_face_scores`): ResNet-18 FPN with
the config's pose voting, through ``tools/deployment/export_onnx.py``, and MobileNetV2
FPN with plain NMS, through :func:`export_onnx`. Both dynamic graphs run the
scikit-image photos at two sizes and must give what PyTorch gives: the same detections,
boxes within 1 px, scores within 1e-4 and every pose number within 1e-4.
"""
import json

import cv2
import numpy as np
import onnx
import pytest
import torch
from skimage import data as skimage_data

from img2pose_mm.apis import Img2Pose
from img2pose_mm.deployment import (
    ExportableRetinaImg2Pose,
    build_exportable,
    check_exportable,
    export_onnx,
)
from img2pose_mm.deployment.exportable_voting import (
    principal_eigenvectors,
    weighted_rotation_mean_graph,
)
from img2pose_mm.deployment.frame_rate import calibrate_face_scores, sample_frame
from img2pose_mm.deployment.onnx_export import read_metadata
from img2pose_mm.test_time_augs.box_voting import weighted_rotation_mean

from .conftest import REPO, msf
from .test_onnx import assert_same_detections
from .test_tools import load_script

PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket')
SIZES = ((100, 300), (150, 450))          # (min_size, max_size)
CONFIGS = dict(r18=REPO / 'configs' / 'retina_img2pose_r18_fpn.py',
               mobilenetv2=REPO / 'configs' / 'retina_img2pose_mobilenetv2.py')
CODER = 'model.bbox_head.bbox_coder.'
STATS = {CODER + 'pose_mean': [0.0, 0.0, 0.0, 0.0, 0.0, 5.0],
         CODER + 'pose_stddev': [0.2, 0.4, 0.2, 0.3, 0.3, 1.0]}
NO_VOTING = {'model.test_cfg.pose_voting': None}
SCORE_THR = 0.05                          # the configs' test_cfg.score_thr
TRACE = (160, 224)                        # above the coarsest anchor stride (128)


@pytest.fixture(scope='module')
def photos():
    return {name: getattr(skimage_data, name)() for name in PHOTOS}


def seeded_checkpoint(name, options, directory):
    """Seeded random weights of a one-stage config, ~80 anchors of a photo above the
    score threshold; returns the checkpoint path."""
    from mmengine.runner import save_checkpoint
    from mmengine.runner.checkpoint import weights_to_cpu
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='random'):
        detector = Img2Pose(config=CONFIGS[name], device='cpu', cfg_options=options,
                            min_size=SIZES[0][0], max_size=SIZES[0][1])
    frame = sample_frame(120, 160)
    assert calibrate_face_scores(detector, frame, 80) == 80
    path = directory / f'retina_{name}.pth'
    meta = dict(dataset_meta={'classes': ('face',), 'palette': [(0, 255, 0)]})
    save_checkpoint({'meta': meta, 'state_dict': weights_to_cpu(detector.model.state_dict())},
                    str(path))
    return path


@pytest.fixture(scope='module')
def r18_graph(tmp_path_factory):
    """ResNet-18 FPN with pose voting, exported by the command line tool."""
    directory = tmp_path_factory.mktemp('retina_r18')
    options = [f'{k}={json.dumps(v).replace(" ", "")}' for k, v in STATS.items()]
    with msf.torch_threads(2):
        checkpoint = seeded_checkpoint('r18', STATS, directory)
        tool = load_script('tools/deployment/export_onnx.py')
        out = directory / 'retina_r18.onnx'
        assert tool.main([str(CONFIGS['r18']), str(checkpoint), str(out), '--dynamic',
                          '--shape', *map(str, TRACE), '--verify', 'random',
                          '--cfg-options', *options]) == 0
    return checkpoint, out, STATS


@pytest.fixture(scope='module')
def mobilenet_graph(tmp_path_factory):
    """MobileNetV2 FPN with plain NMS, exported by :func:`export_onnx`."""
    directory = tmp_path_factory.mktemp('retina_mobilenetv2')
    options = dict(STATS, **NO_VOTING)
    with msf.torch_threads(2):
        checkpoint = seeded_checkpoint('mobilenetv2', options, directory)
        detector = Img2Pose(config=CONFIGS['mobilenetv2'], checkpoint=checkpoint, device='cpu',
                            cfg_options=options)
        out = export_onnx(detector.model, directory / 'retina_mobilenetv2.onnx', dynamic=True,
                          input_shape=TRACE, checkpoint=str(checkpoint))
    return checkpoint, out, options


def compare_one_stage(photos, name, checkpoint, graph, options):
    """PyTorch and the graph on every photo at every size; returns the deviations."""
    deviations = {}
    for min_size, max_size in SIZES:
        size = dict(min_size=min_size, max_size=max_size, score_threshold=SCORE_THR,
                    device='cpu')
        reference = Img2Pose(config=CONFIGS[name], checkpoint=checkpoint, cfg_options=options,
                             batch_size=1, **size)
        exported = Img2Pose(backend='onnxruntime', onnx_file=graph, num_threads=1, **size)
        arrays = [reference._load_one(photo) for photo in photos.values()]
        for photo, ref, out in zip(photos, reference.predict(arrays), exported.predict(arrays)):
            assert len(ref.pred_instances) > 0, photo
            deviation = assert_same_detections(ref, out, (photo, min_size))
            assert deviation['poses'] <= 1e-4, (photo, min_size, deviation)
            deviations[photo, min_size] = dict(deviation, count=len(ref.pred_instances))
    worst = {key: max(d[key] for d in deviations.values())
             for key in ('boxes', 'scores', 'poses', 'rotation', 'translation')}
    counts = [d['count'] for d in deviations.values()]
    print(f'{name}: {len(deviations)} images, {min(counts)}-{max(counts)} detections, '
          f'largest deviations {worst}')
    return deviations


def graph_facts(graph):
    model = onnx.load(str(graph))
    meta = read_metadata({prop.key: prop.value for prop in model.metadata_props})
    return {node.op_type for node in model.graph.node}, \
        {node.domain for node in model.graph.node}, meta


def test_voting_graph_equals_pytorch(r18_graph, photos):
    checkpoint, graph, options = r18_graph
    with msf.torch_threads(2):
        compare_one_stage(photos, 'r18', checkpoint, graph, options)
    ops, domains, meta = graph_facts(graph)
    assert domains <= {''}                                          # standard ops only
    assert {'NonMaxSuppression', 'ScatterElements', 'MatMul'} <= ops
    assert meta['architecture'] == 'one_stage'
    assert meta['test_cfg'] == dict(nms_pre=1000, score_thr=SCORE_THR, min_bbox_size=0.0,
                                    iou_threshold=0.5, pose_voting_iou_thr=0.5, max_per_img=-1)
    assert meta['input']['dynamic'] is True


def test_nms_graph_equals_pytorch(mobilenet_graph, photos):
    checkpoint, graph, options = mobilenet_graph
    with msf.torch_threads(2):
        compare_one_stage(photos, 'mobilenetv2', checkpoint, graph, options)
    ops, domains, meta = graph_facts(graph)
    assert domains <= {''} and 'NonMaxSuppression' in ops
    assert meta['test_cfg']['pose_voting_iou_thr'] is None


@pytest.mark.parametrize('voting', [True, False])
def test_exportable_retina_is_the_detector(voting):
    """The export-friendly forward pass gives the detector's own predictions, before any
    export: NMS or pose voting, sides that are and are not multiples of 32, no faces."""
    from mmdet.structures import DetDataSample

    options = STATS if voting else dict(STATS, **NO_VOTING)
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='random'):
        detector = Img2Pose(config=CONFIGS['r18'], device='cpu', cfg_options=options,
                            min_size=96, max_size=160)
    calibrate_face_scores(detector, sample_frame(96, 128), 60)
    model = detector.model
    exportable = build_exportable(model)
    assert isinstance(exportable, ExportableRetinaImg2Pose)
    assert (exportable.voting_iou is not None) == voting
    for h, w, shift in ((128, 160, 0.0), (97, 141, 0.0), (96, 128, -40.0)):
        model.bbox_head.retina_cls.bias.data += shift                # -40: no face at all
        frame = sample_frame(h, w, photo='coffee', seed=h)
        image = torch.from_numpy(np.ascontiguousarray(frame[..., ::-1].transpose(2, 0, 1)))
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                             scale_factor=(1.0, 1.0)))
        with torch.no_grad():
            batch = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), False)
            ref = model.predict(batch['inputs'], batch['data_samples'], rescale=False)[0]
            boxes, scores, labels, poses = exportable(image[None])
        pred = ref.pred_instances
        assert len(pred) == len(boxes) and (len(boxes) > 0) == (shift == 0)
        torch.testing.assert_close(labels, pred.labels, atol=0, rtol=0)
        torch.testing.assert_close(boxes, pred.bboxes, atol=1e-3, rtol=0)
        torch.testing.assert_close(scores, pred.scores, atol=1e-6, rtol=0)
        torch.testing.assert_close(poses, pred.poses, atol=1e-5, rtol=1e-5)


def test_rotation_mean_without_eigh():
    """Repeated squaring finds eigh's principal eigenvector: the voted rotations agree."""
    generator = torch.Generator().manual_seed(0)
    groups = torch.randint(0, 7, (200, ), generator=generator)
    centres = (torch.rand(7, 3, generator=generator) - 0.5) * 4
    rotvecs = centres[groups] + 0.3 * torch.randn(200, 3, generator=generator)
    weights = torch.rand(200, generator=generator)
    expected = weighted_rotation_mean(rotvecs.double(), weights, groups, 7)
    found = weighted_rotation_mean_graph(rotvecs.double(), weights, groups, 7)
    torch.testing.assert_close(found, expected, atol=2e-6, rtol=0)
    # one rotation per group, and a nearly flat spectrum (ratio 0.999)
    matrices = torch.diag_embed(torch.tensor([[1.0, 0.999, 0.2, 0.1]], dtype=torch.float64))
    vector = principal_eigenvectors(matrices)
    torch.testing.assert_close(vector.abs(), torch.tensor([[1.0, 0, 0, 0]],
                                                          dtype=torch.float64))


def test_one_stage_export_checks(r18_graph):
    checkpoint, graph, options = r18_graph
    with pytest.warns(UserWarning, match=r"other test settings.*'pose_voting': \(False, True\)"):
        Img2Pose(backend='onnxruntime', onnx_file=graph, config=CONFIGS['r18'],
                 cfg_options=NO_VOTING)
    detector = Img2Pose(config=CONFIGS['r18'], checkpoint=checkpoint, device='cpu',
                        cfg_options=options)
    check_exportable(detector.model)
    with pytest.raises(ValueError, match='traced at 129 px or more'):
        export_onnx(detector.model, '/nonexistent/x.onnx', dynamic=True, input_shape=(96, 128))
    detector.model.bbox_head.test_cfg['nms'] = dict(type='soft_nms', iou_threshold=0.5)
    with pytest.raises(TypeError, match='test_cfg.nms must be'):
        check_exportable(detector.model)


def test_graph_without_faces(r18_graph, tmp_path):
    """A graph whose classifier scores nothing above the threshold gives no face."""
    from onnx import numpy_helper
    _, graph, _ = r18_graph
    model = onnx.load(str(graph))
    for init in model.graph.initializer:
        if init.name.endswith('retina_cls.bias'):
            init.CopyFrom(numpy_helper.from_array(
                np.full(numpy_helper.to_array(init).shape, -40, np.float32), init.name))
    silent = tmp_path / 'silent.onnx'
    onnx.save(model, str(silent))
    detector = Img2Pose(backend='onnxruntime', onnx_file=silent, score_threshold=SCORE_THR,
                        min_size=100, max_size=300)
    assert detector.detect_faces(sample_frame(120, 160)) == []


def test_video_demo_smooths_the_graph(r18_graph, tmp_path, capsys):
    """demo/video_demo.py runs a one-stage graph with --smooth on a generated clip."""
    _, graph, _ = r18_graph
    demo = load_script('demo/video_demo.py')
    video = tmp_path / 'clip.avi'
    frames = [sample_frame(120, 160, photo=name, seed=i)
              for i, name in enumerate(('astronaut', 'astronaut', 'coffee', 'coffee'))]
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 10, (160, 120))
    for frame in frames:
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    lines, out = tmp_path / 'faces.jsonl', tmp_path / 'clip_pose.avi'
    assert demo.main([str(video), '--onnx', str(graph), '--threads', '1', '--smooth',
                      '--score-thr', str(SCORE_THR), '--min-size', '120', '--max-size', '320',
                      '--json-out', str(lines), '--out', str(out)]) == 0
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [r['frame'] for r in records] == [0, 1, 2, 3]
    assert records[0]['faces'] and all('track_id' in f for r in records for f in r['faces'])
    assert out.is_file() and 'fps (detection + tracking)' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        demo.parse_args([str(video), '--onnx', str(graph), '--random-weights', '--show'])


def test_benchmark_fps_side_by_side(r18_graph, tmp_path, monkeypatch, capsys):
    """benchmark.py --fps: PyTorch and onnxruntime on the same weights, one run."""
    import sys
    checkpoint, graph, _ = r18_graph
    tool = load_script('tools/analysis_tools/benchmark.py')
    out = tmp_path / 'fps.json'
    monkeypatch.setattr(sys, 'argv', [
        'benchmark.py', str(CONFIGS['r18']), '--fps', '--backend', 'pytorch', 'onnxruntime',
        '--checkpoint', str(checkpoint), '--onnx', str(graph), '--img-size', '120', '160',
        '--threads', '1', '--device', 'cpu', '--repeats', '2', '--warmup', '0',
        '--out', str(out)])
    tool.main()
    result = json.loads(out.read_text())
    assert set(result['backends']) == {'pytorch', 'onnxruntime'}
    for backend in result['backends'].values():
        assert backend['fps'] > 0 and len(backend['runs_ms']) == 2 and backend['faces'] > 0
    agreement = result['agreement']
    assert agreement['count_a'] == agreement['count_b'] and agreement['boxes'] <= 1.0
    assert result['img_size'] == [120, 160] and result['threads'] == 1
    assert 'onnxruntime' in capsys.readouterr().out
