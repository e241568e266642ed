#!/usr/bin/env python
"""img2pose video demo: faces, 6DoF pose axes and the face mesh on every frame of a
video file or a webcam, with track ids and optionally smoothed poses.

Faces are tracked across frames (IoU matching of their boxes, a track survives
``--max-age`` frames without a detection); ``--smooth`` filters each track's pose with a
One-Euro filter (rotations as rotations: no jumps at +-180 degrees), and the boxes,
keypoints, landmarks and Euler angles then follow the smoothed pose. ``--json-out``
writes one JSON line per frame: ``{"frame": i, "time": seconds, "faces": [face dicts
with "track_id"]}``.

Examples::

    python demo/video_demo.py clip.mp4 --checkpoint img2pose_r18.pth --out clip_pose.mp4
    python demo/video_demo.py clip.mp4 --checkpoint img2pose_r18.pth --smooth \
        --json-out clip_poses.jsonl --out clip_pose.mp4
    python demo/video_demo.py 0 --checkpoint img2pose_r18.pth --show      # webcam 0
    python demo/video_demo.py 0 --onnx retina_r18.onnx --threads 2 --smooth --show
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Union

FOURCC = {'.mp4': 'mp4v', '.m4v': 'mp4v', '.mov': 'mp4v', '.avi': 'MJPG', '.mkv': 'XVID'}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('video', help='video file, or a webcam index such as 0')
    parser.add_argument('--config', default=None,
                        help='model config (default: the packaged configs/img2pose_r18.py)')
    parser.add_argument('--checkpoint', default=None,
                        help='model weights (.pth): trained by tools/train.py or converted from '
                             'the original release')
    parser.add_argument('--onnx', default=None, metavar='GRAPH',
                        help='run an exported graph (tools/deployment/export_onnx.py) with '
                             'onnxruntime instead of --checkpoint')
    parser.add_argument('--threads', type=int, default=None,
                        help="CPU threads of onnxruntime (--onnx) or PyTorch (default: the "
                             "runtime's, one per core)")
    parser.add_argument('--random-weights', action='store_true',
                        help='run without --checkpoint on random weights (meaningless output; '
                             'for trying the pipeline only)')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda', 'cuda:0' or 'auto'")
    parser.add_argument('--score-thr', type=float, default=0.5, help='minimum face confidence')
    parser.add_argument('--max-faces', type=int, default=-1, help='faces per frame (<= 0: all)')
    parser.add_argument('--min-size', type=int, default=None,
                        help="test resize: short side (default: the config's test scale)")
    parser.add_argument('--max-size', type=int, default=None,
                        help="test resize: long side cap (default: the config's test scale)")
    parser.add_argument('--out', default=None,
                        help='output video (.mp4 mp4v, .avi MJPG, .mkv XVID)')
    parser.add_argument('--fps', type=float, default=None,
                        help='output frame rate (default: the input\'s, 25 for webcams)')
    parser.add_argument('--max-frames', type=int, default=-1, help='stop after this many frames')
    parser.add_argument('--show', action='store_true', help='show the frames (q / Esc quits)')
    parser.add_argument('--no-mesh', action='store_true', help='do not draw the face mesh')
    parser.add_argument('--no-axes', action='store_true', help='do not draw the pose axes')
    parser.add_argument('--json-out', default=None,
                        help='write the faces of every frame as JSON lines (with track ids)')
    parser.add_argument('--smooth', action='store_true',
                        help="smooth each track's pose (One-Euro filter)")
    parser.add_argument('--smooth-min-cutoff', type=float, default=1.0,
                        help='One-Euro cutoff of a still face, Hz (lower: steadier, more lag)')
    parser.add_argument('--smooth-beta-rot', type=float, default=0.5,
                        help='One-Euro speed coefficient of the rotation, Hz per rad/s')
    parser.add_argument('--smooth-beta-trans', type=float, default=0.1,
                        help='One-Euro speed coefficient of the translation, Hz per unit/s')
    parser.add_argument('--track-iou', type=float, default=0.3,
                        help='IoU that matches a face to a track')
    parser.add_argument('--max-age', type=int, default=5,
                        help='frames a track survives without a detection')
    parser.add_argument('--landmarks', action='store_true',
                        help='add (and draw) the 68 projected landmarks of each face')
    parser.add_argument('--euler', default='aflw',
                        help="Euler convention of face['euler'] ('aflw' or e.g. 'XYZ')")
    parser.add_argument('--camera', type=float, nargs='+', default=None, metavar='K',
                        help='express poses in this camera: a focal length in pixels, or the '
                             '9 numbers of a 3x3 intrinsic matrix row by row')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.out is None and not args.show and args.json_out is None:
        parser.error('nothing to do: give --out, --json-out and/or --show')
    if args.onnx is not None and (args.checkpoint is not None or args.random_weights):
        parser.error('--onnx runs the weights of the graph: drop --checkpoint/--random-weights')
    if args.checkpoint is None and args.onnx is None and not args.random_weights:
        parser.error('give --checkpoint <weights.pth> (trained, or converted from the original '
                     'release), --onnx <exported graph>, or --random-weights to try the '
                     'pipeline on random weights')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    return args


def video_source(video: str) -> Union[int, str]:
    """A webcam index (all digits) or a file path (which must exist)."""
    if video.isdigit():
        return int(video)
    if not Path(video).is_file():
        raise FileNotFoundError(f'video file not found: {video}')
    return video


def track_faces(detector, tracker, rgb, timestamp: float, smooth: bool) -> List[dict]:
    """The faces of one frame with their ``track_id`` (and smoothed poses with ``smooth``).

    Detection and tracking use img2pose's camera of the frame; the faces are then built
    (camera, Euler angles, landmarks) from the tracked poses.
    """
    raw = detector.detect_faces(rgb, euler=None, landmarks=None, camera=None)
    boxes = [face['box'] for face in raw]
    poses = [face['pose'] for face in raw]
    scores = [face['confidence'] for face in raw]
    update = tracker.update(boxes, poses, timestamp=timestamp)
    if smooth:      # boxes follow the smoothed poses
        faces = detector.faces_from_poses(update.poses, scores, rgb.shape[:2])
    else:
        faces = detector.faces_from_poses(poses, scores, rgb.shape[:2], boxes=boxes)
    for face, track_id in zip(faces, update.ids.tolist()):
        face['track_id'] = int(track_id)
    return faces


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    import cv2

    from img2pose_mm.apis import FaceTracker, Img2Pose, OneEuro, camera_from_values, draw_faces

    try:
        source = video_source(args.video)
        camera = camera_from_values(args.camera)
        tracker = FaceTracker(
            iou_threshold=args.track_iou, max_age=args.max_age, smooth=args.smooth,
            rotation=OneEuro(args.smooth_min_cutoff, args.smooth_beta_rot),
            translation=OneEuro(args.smooth_min_cutoff, args.smooth_beta_trans))
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        print(f'error: cannot open video {args.video!r}', file=sys.stderr)
        return 2
    if args.threads is not None and args.onnx is None:
        import torch
        torch.set_num_threads(args.threads)
    detector = Img2Pose(config=args.config, checkpoint=args.checkpoint, device=args.device,
                        score_threshold=args.score_thr, max_faces=args.max_faces,
                        min_size=args.min_size, max_size=args.max_size,
                        cfg_options=args.cfg_options, euler=args.euler,
                        landmarks=68 if args.landmarks else None, camera=camera,
                        backend='pytorch' if args.onnx is None else 'onnxruntime',
                        onnx_file=args.onnx,
                        num_threads=args.threads if args.onnx is not None else None)
    input_fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    if not 0 < input_fps < 1000:
        input_fps = 25.0
    fps = args.fps or input_fps
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if isinstance(source, str) else 0
    if args.max_frames > 0:
        total = min(total, args.max_frames) if total > 0 else args.max_frames
    bar = None
    if total > 0:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(total)

    writer = tmp_out = json_file = tmp_json = None
    frames = faces_total = 0
    seconds = 0.0           # detection and tracking, from the decoded frame to the faces
    try:
        if args.json_out is not None:
            json_path = Path(args.json_out)
            json_path.parent.mkdir(parents=True, exist_ok=True)
            tmp_json = json_path.with_name(f'.tmp{os.getpid()}_{json_path.name}')
            json_file = open(tmp_json, 'w')
        while args.max_frames <= 0 or frames < args.max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = frame[..., ::-1]
            timestamp = frames / input_fps
            start = time.perf_counter()
            faces = track_faces(detector, tracker, rgb, timestamp, args.smooth)
            seconds += time.perf_counter() - start
            if json_file is not None:
                json_file.write(json.dumps(dict(frame=frames, time=timestamp, faces=faces))
                                + '\n')
            drawn = draw_faces(rgb, faces, mesh=not args.no_mesh, axes=not args.no_axes,
                               camera=camera)
            bgr = drawn[..., ::-1].copy()
            frames += 1
            faces_total += len(faces)
            if args.out is not None:
                if writer is None:
                    out = Path(args.out)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    tmp_out = out.with_name(f'.tmp{os.getpid()}_{out.name}')
                    fourcc = cv2.VideoWriter_fourcc(*FOURCC.get(out.suffix.lower(), 'mp4v'))
                    writer = cv2.VideoWriter(str(tmp_out), fourcc, fps,
                                             (bgr.shape[1], bgr.shape[0]))
                    if not writer.isOpened():
                        raise RuntimeError(f'cannot write video {out} (codec for '
                                           f'{out.suffix!r} unavailable?)')
                writer.write(bgr)
            if args.show:
                cv2.imshow('img2pose', bgr)
                if cv2.waitKey(1) & 0xFF in (27, ord('q')):
                    break
            if bar is not None:
                bar.update()
    except BaseException:
        if tmp_out is not None and tmp_out.exists():
            if writer is not None:
                writer.release()
            tmp_out.unlink()
        if json_file is not None:
            json_file.close()
            tmp_json.unlink()
        raise
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if json_file is not None:
            json_file.close()
        if args.show:
            cv2.destroyAllWindows()
    if bar is not None:
        print(flush=True)
    if writer is not None and frames:
        os.replace(tmp_out, args.out)
    elif tmp_out is not None and tmp_out.exists():
        tmp_out.unlink()
    if tmp_json is not None and tmp_json.exists():
        if frames:
            os.replace(tmp_json, args.json_out)
        else:
            tmp_json.unlink()
    rate = f' at {frames / seconds:.1f} fps (detection + tracking)' if seconds > 0 else ''
    print(f'{frames} frame(s), {faces_total} face(s), {tracker.next_id} track(s){rate}' +
          (f' -> {args.out}' if args.out is not None and frames else '') +
          (f' -> {args.json_out}' if args.json_out is not None and frames else ''))
    if frames == 0:
        print(f'error: no frame could be read from {args.video!r}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
