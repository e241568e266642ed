#!/usr/bin/env python
"""img2pose video demo: faces, 6DoF pose axes and the face mesh on every frame of a
video file or a webcam.

Examples::

    python demo/video_demo.py clip.mp4 --checkpoint img2pose_r18.pth --out clip_pose.mp4
    python demo/video_demo.py 0 --checkpoint img2pose_r18.pth --show      # webcam 0
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence, Union

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
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.out is None and not args.show:
        parser.error('nothing to do: give --out and/or --show')
    if args.checkpoint is None and not args.random_weights:
        parser.error('give --checkpoint <weights.pth> (trained, or converted from the original '
                     'release), or --random-weights to try the pipeline on random weights')
    return args


def video_source(video: str) -> Union[int, str]:
    """A webcam index (all digits) or a file path (which must exist)."""
    if video.isdigit():
        return int(video)
    if not Path(video).is_file():
        raise FileNotFoundError(f'video file not found: {video}')
    return video


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    import cv2

    from img2pose_mm.apis import Img2Pose, draw_faces

    try:
        source = video_source(args.video)
    except FileNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        print(f'error: cannot open video {args.video!r}', file=sys.stderr)
        return 2
    detector = Img2Pose(config=args.config, checkpoint=args.checkpoint, device=args.device,
                        score_threshold=args.score_thr, max_faces=args.max_faces,
                        min_size=args.min_size, max_size=args.max_size,
                        cfg_options=args.cfg_options)
    fps = args.fps or capture.get(cv2.CAP_PROP_FPS) or 25.0
    if not 0 < fps < 1000:
        fps = 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if isinstance(source, str) else 0
    if args.max_frames > 0:
        total = min(total, args.max_frames) if total > 0 else args.max_frames
    bar = None
    if total > 0:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(total)

    writer = tmp_out = None
    frames = faces_total = 0
    try:
        while args.max_frames <= 0 or frames < args.max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = frame[..., ::-1]
            faces = detector.detect_faces(rgb)
            drawn = draw_faces(rgb, faces, mesh=not args.no_mesh, axes=not args.no_axes)
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
        raise
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if args.show:
            cv2.destroyAllWindows()
    if bar is not None:
        print(flush=True)
    if writer is not None and frames:
        os.replace(tmp_out, args.out)
    elif tmp_out is not None and tmp_out.exists():
        tmp_out.unlink()
    print(f'{frames} frame(s), {faces_total} face(s)' +
          (f' -> {args.out}' if args.out is not None and frames else ''))
    if frames == 0:
        print(f'error: no frame could be read from {args.video!r}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
