#!/usr/bin/env python
"""Inference latency with a per-stage breakdown, training iteration time and peak memory.

    python tools/analysis_tools/benchmark.py configs/img2pose_r18.py \\
        configs/retina_img2pose_r18_fpn.py --img-size 640 960 [--train] [--fps]

The stages, ``--train`` and ``--fps``: docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
import warnings
from typing import Callable, Dict, List, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox2roi
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.structures import InstanceData

import img2pose_mm  # noqa: F401
from img2pose_mm.apis.model_config import pose_coder_cfgs
from img2pose_mm.structures import FacePoses, load_reference_points, pose_to_bbox

# Without a checkpoint: statistics of the WIDER-like range (faces in front of the camera),
# so that random weights decode into distinct boxes and NMS does real work.
RANDOM_WEIGHT_STATS = dict(pose_mean=[0.0, 0.0, 0.0, 0.0, 0.0, 5.0],
                           pose_stddev=[0.2, 0.4, 0.2, 0.3, 0.3, 1.0])


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed_call(fn: Callable, device: torch.device) -> Tuple[object, float]:
    """``fn()``'s result and its wall time (ms), the device synchronised around the call."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, (time.perf_counter() - start) * 1e3


def time_it(fn: Callable, device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time (ms) of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed_call(fn, device)[1] for _ in range(repeats))


def peak_memory_mb(device: torch.device) -> float:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # kB on Linux


def build_model(cfg: Config, checkpoint: str | None, device: torch.device):
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    return model.to(device)


def face_sample(h: int, w: int, num_faces: int, generator: torch.Generator) -> DetDataSample:
    """A data sample with random faces (poses, boxes from the poses) in an ``h x w`` image."""
    rot = (torch.rand(num_faces, 3, generator=generator) - 0.5) * 1.0
    xy = (torch.rand(num_faces, 2, generator=generator) - 0.5) * 3
    z = 6 + torch.rand(num_faces, 1, generator=generator) * 10
    poses = torch.cat([rot, xy, z], 1)
    boxes = pose_to_bbox(poses, torch.from_numpy(load_reference_points()), (h, w))
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                         batch_input_shape=(h, w), scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.zeros(num_faces, dtype=torch.long),
                                       poses=FacePoses(poses, img_shape=(h, w)))
    return sample


def face_batch(num: int, h: int, w: int, seed: int) -> dict:
    """``num`` random ``h x w`` images with three faces each (a ``test_step``/``train_step``
    batch)."""
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=[torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
                        for _ in range(num)],
                data_samples=[face_sample(h, w, 3, g) for _ in range(num)])


TWO_STAGE_STAGES = ('backbone_fpn', 'rpn', 'roi_features', 'heads', 'decode_nms')
ONE_STAGE_STAGES = ('backbone_fpn', 'dense_head', 'decode_nms')


def stage_names(model) -> Tuple[str, ...]:
    return TWO_STAGE_STAGES if getattr(model, 'with_rpn', False) else ONE_STAGE_STAGES


def bench_inference(model, h: int, w: int, device, args) -> Dict[str, float]:
    """Per-stage and end-to-end latency of a two-stage or a one-stage model."""
    model.eval()
    data = face_batch(1, h, w, seed=0)
    batch = model.data_preprocessor(data, False)
    inputs, samples = batch['inputs'], batch['data_samples']
    timed = dict()
    with torch.no_grad():
        feats = model.extract_feat(inputs)
        if getattr(model, 'with_rpn', False):
            stages, counts = two_stage_stages(model, feats, samples)
        else:
            stages, counts = one_stage_stages(model, feats, samples)
        stages = dict(backbone_fpn=lambda: model.extract_feat(inputs), **stages)
        for name, fn in stages.items():
            timed[name] = time_it(fn, device, args.warmup, args.repeats)
        timed['end_to_end'] = time_it(lambda: model.test_step(data), device, args.warmup,
                                      args.repeats)
    out: Dict[str, float] = dict(counts)
    out.update(timed)
    out['sum_of_stages'] = sum(timed[k] for k in stages)
    out['decode_nms_share'] = out['decode_nms'] / out['sum_of_stages']
    out['peak_memory_mb'] = peak_memory_mb(device)
    return out


def two_stage_stages(model, feats, samples) -> Tuple[Dict[str, Callable], Dict[str, int]]:
    """RPN, RoIAlign, RoI MLPs and pose decode + NMS, each on the previous one's output."""
    metas = [s.metainfo for s in samples]
    roi_head = model.roi_head
    head = roi_head.bbox_head
    extractor = roi_head.bbox_roi_extractor
    rcnn_cfg = roi_head.test_cfg
    proposals = model.rpn_head.predict(feats, samples, rescale=False)
    rois = bbox2roi([p.bboxes for p in proposals])
    roi_feats = extractor(feats[:extractor.num_inputs], rois)
    cls_score, pose_pred = head(roi_feats)

    def decode_nms():
        return head.predict_by_feat((rois, ), (cls_score, ), (pose_pred, ), metas,
                                    rcnn_test_cfg=rcnn_cfg, rescale=False)

    counts = dict(num_proposals=int(rois.shape[0]), num_detections=len(decode_nms()[0]))
    return dict(rpn=lambda: model.rpn_head.predict(feats, samples, rescale=False),
                roi_features=lambda: extractor(feats[:extractor.num_inputs], rois),
                heads=lambda: head(roi_feats),
                decode_nms=decode_nms), counts


def one_stage_stages(model, feats, samples) -> Tuple[Dict[str, Callable], Dict[str, int]]:
    """The dense head's convs, then top-k, pose decode and NMS on their output."""
    metas = [s.metainfo for s in samples]
    head = model.bbox_head
    outs = head(feats)
    num_anchors = sum(int(s.shape[1]) // head.cls_out_channels * int(s.shape[2] * s.shape[3])
                      for s in outs[0])
    decoded = head.predict_by_feat(*outs, batch_img_metas=metas, rescale=False, with_nms=False)
    counts = dict(num_anchors=num_anchors, num_proposals=len(decoded[0]),
                  num_detections=len(head.predict_by_feat(*outs, batch_img_metas=metas)[0]))
    return dict(dense_head=lambda: head(feats),
                decode_nms=lambda: head.predict_by_feat(*outs, batch_img_metas=metas,
                                                        rescale=False)), counts


def bench_training(model, h: int, w: int, device, args) -> Dict[str, float]:
    model.train()
    data = face_batch(args.batch_size, h, w, seed=1)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)

    def step():
        batch = model.data_preprocessor(data, True)
        loss, _ = model.parse_losses(model(**batch, mode='loss'))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10)
        optimizer.step()

    iter_ms = time_it(step, device, max(1, args.warmup), max(1, args.repeats // 4))
    return dict(iter_ms=iter_ms, batch_size=args.batch_size,
                images_per_s=args.batch_size / iter_ms * 1e3,
                peak_memory_mb=peak_memory_mb(device))


def set_pose_statistics(cfg: Config, checkpoint: str | None) -> Config:
    """``cfg`` with the pose coders' statistics files replaced: by the checkpoint's
    (``None``) or, for random weights, by :data:`RANDOM_WEIGHT_STATS`."""
    for _, coder_cfg in pose_coder_cfgs(cfg.model):
        for key in ('pose_mean', 'pose_stddev'):     # statistics come from the checkpoint
            if isinstance(coder_cfg.get(key), str):
                coder_cfg[key] = RANDOM_WEIGHT_STATS[key] if checkpoint is None else None
    return cfg


def load_bench_config(path: str, args) -> Config:
    """The config with the benchmark's test settings (random-weight pose statistics)."""
    cfg = set_pose_statistics(Config.fromfile(path), args.checkpoint)
    test_cfg = cfg.model.test_cfg
    if 'rpn' in test_cfg:
        test_cfg.rpn.max_per_img = args.num_proposals
        test_cfg.rcnn.score_thr = args.score_thr
    else:
        test_cfg.score_thr = args.score_thr
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def benchmark(path: str, device: torch.device, args) -> dict:
    """Inference (and with ``--train`` training) numbers of one config."""
    h, w = args.img_size
    model = build_model(load_bench_config(path, args), args.checkpoint, device)
    result = dict(config=path, checkpoint=args.checkpoint, img_size=[h, w],
                  device=str(device), torch=torch.__version__, threads=torch.get_num_threads(),
                  cpu=platform.processor() or platform.machine(),
                  stages=list(stage_names(model)),
                  inference=bench_inference(model, h, w, device, args))
    if args.train:
        result['training'] = bench_training(model, h, w, device, args)

    inf = result['inference']
    print(f'{path} @ {h}x{w} on {device} ({result["threads"]} threads), '
          f'{inf["num_proposals"]} proposals, {inf["num_detections"]} detections after NMS:')
    for key in result['stages']:
        print(f'  {key:14s} {inf[key]:9.1f} ms  {inf[key] / inf["sum_of_stages"]:6.1%}')
    print(f'  {"end_to_end":14s} {inf["end_to_end"]:9.1f} ms  (peak memory '
          f'{inf["peak_memory_mb"]:.0f} MB)')
    if args.train:
        tr = result['training']
        print(f'  training iteration, batch {tr["batch_size"]}: {tr["iter_ms"]:.0f} ms '
              f'({tr["images_per_s"]:.2f} images/s, peak memory {tr["peak_memory_mb"]:.0f} MB)')
    return result


def model_score_thr(cfg: Config) -> float:
    """The detector's final score threshold (``test_cfg.score_thr`` or ``.rcnn.score_thr``)."""
    test_cfg = cfg.model.get('test_cfg') or {}
    return float(test_cfg.get('score_thr', (test_cfg.get('rcnn') or {}).get('score_thr', 0.05)))


def bench_fps(path: str, args) -> dict:
    """Frames per second of ``Img2Pose.detect_faces`` with each backend of ``--backend``."""
    from img2pose_mm.apis import Img2Pose
    from img2pose_mm.deployment import export_onnx
    from img2pose_mm.deployment.frame_rate import (
        calibrate_face_scores,
        compare_faces,
        sample_frame,
        spread_objectness,
        summarise,
        time_backends,
    )
    h, w = args.img_size
    cfg = set_pose_statistics(Config.fromfile(path), args.checkpoint)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    frame = sample_frame(h, w)
    common = dict(min_size=min(h, w), max_size=max(h, w), device=args.device,
                  score_threshold=model_score_thr(cfg))
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Img2Pose without a checkpoint')
        pytorch = Img2Pose(config=cfg, checkpoint=args.checkpoint, **common)
    candidates = None
    if args.checkpoint is None and args.candidates >= 0:
        if getattr(pytorch.model, 'with_rpn', False):
            spread_objectness(pytorch)
        else:
            candidates = calibrate_face_scores(pytorch, frame, args.candidates)
    result = dict(config=path, checkpoint=args.checkpoint, img_size=[h, w],
                  threads=args.threads or torch.get_num_threads(), device=args.device,
                  torch=torch.__version__, cpu=platform.processor() or platform.machine(),
                  candidates=candidates, backends={})
    runs = {}
    if 'pytorch' in args.backend:
        runs['pytorch'] = lambda: pytorch.detect_faces(frame)
    if 'onnxruntime' in args.backend:
        import onnxruntime
        onnx_file = args.onnx or os.path.join(
            args.work_dir, f'{os.path.splitext(os.path.basename(path))[0]}_{h}x{w}.onnx')
        if args.onnx is None:
            start = time.perf_counter()
            export_onnx(pytorch.model, onnx_file, dynamic=True, input_shape=(h, w),
                        checkpoint=args.checkpoint)
            result['export_s'] = time.perf_counter() - start
        graph = Img2Pose(backend='onnxruntime', onnx_file=onnx_file, num_threads=args.threads,
                         **common)
        runs['onnxruntime'] = lambda: graph.detect_faces(frame)
        result.update(onnx_file=onnx_file, onnxruntime=onnxruntime.__version__)
    faces = {name: run() for name, run in runs.items()}
    times = time_backends(runs, args.warmup, args.repeats)
    for name in runs:
        result['backends'][name] = dict(summarise(times[name]), faces=len(faces[name]))
    if len(faces) == 2:
        result['agreement'] = compare_faces(faces['pytorch'], faces['onnxruntime'])
    base = next(iter(result['backends'].values()))['median_ms']
    print(f'{path} @ {h}x{w} on {args.device}, {result["threads"]} threads'
          + ('' if candidates is None else f', {candidates} anchors above the score threshold')
          + f', median of {args.repeats} frames:')
    for name, res in result['backends'].items():
        print(f'  {name:12s} {res["median_ms"]:8.1f} ms  {res["fps"]:6.1f} fps  '
              f'{base / res["median_ms"]:5.2f}x  ({res["faces"]} faces)')
    if 'agreement' in result:
        agree = result['agreement']
        print(f'  faces {agree["count_a"]} vs {agree["count_b"]}; max |diff| box '
              f'{agree["boxes"]:.3g} px, confidence {agree["scores"]:.3g}, pose '
              f'{agree["poses"]:.3g}')
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('configs', nargs='+', metavar='config')
    parser.add_argument('--checkpoint', help='weights (random initialisation without); '
                        'one config only')
    parser.add_argument('--img-size', type=int, nargs=2, default=(640, 960), metavar=('H', 'W'))
    parser.add_argument('--num-proposals', type=int, default=1000,
                        help='test proposals of two-stage models')
    parser.add_argument('--score-thr', type=float, default=0.0,
                        help='test score threshold (0: decode every proposal, the worst case)')
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--train', action='store_true', help='also time a training iteration')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--fps', action='store_true',
                        help='frames per second of the Img2Pose API (docs/benchmarks.md)')
    parser.add_argument('--backend', nargs='+', default=['pytorch', 'onnxruntime'],
                        choices=['pytorch', 'onnxruntime'], help='--fps: backends to time')
    parser.add_argument('--onnx', help='--fps: a graph exported before (one config only)')
    parser.add_argument('--work-dir', default='work_dirs/bench_fps',
                        help='--fps: where the exported graphs go')
    parser.add_argument('--candidates', type=int, default=200,
                        help='--fps, random one-stage weights: anchors of the frame above the '
                             'score threshold; random two-stage weights get a spread RPN '
                             'objectness (-1: the weights as initialised)')
    parser.add_argument('--out', help='write the numbers as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    if args.checkpoint and len(args.configs) > 1:
        parser.error('--checkpoint needs a single config')
    if args.fps and (args.train or (args.onnx and len(args.configs) > 1)):
        parser.error('--fps times inference only, and --onnx needs a single config')

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bench = bench_fps if args.fps else (lambda path, args: benchmark(path, device, args))
    results: List[dict] = [bench(path, args) for path in args.configs]
    if len(results) > 1 and not args.fps:
        base = results[0]['inference']['end_to_end']
        print('end to end:')
        for res in results:
            ms = res['inference']['end_to_end']
            print(f'  {res["config"]:48s} {ms:9.1f} ms  {base / ms:5.2f}x')
        if device.type == 'cpu':
            print('  (peak memory is the process\'s: only the first config\'s is its own)')
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(results[0] if len(results) == 1 else results, f, indent=2)


if __name__ == '__main__':
    main()
