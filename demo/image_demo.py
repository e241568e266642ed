#!/usr/bin/env python
"""img2pose image demo: detect faces and draw their boxes, 6DoF pose axes and the
reference-face mesh at each pose.

Examples::

    python demo/image_demo.py photo.jpg --checkpoint img2pose_r18.pth --out result.jpg
    python demo/image_demo.py photos/ --checkpoint img2pose_r18.pth --out results/
    python demo/image_demo.py photo.jpg --checkpoint img2pose_r18.pth --show
    python demo/image_demo.py photo.jpg --onnx img2pose_r18.onnx --out result.jpg
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('inputs', nargs='+', help='image files or folders')
    parser.add_argument('--config', default=None,
                        help='model config (default: the packaged configs/img2pose_r18.py)')
    parser.add_argument('--checkpoint', default=None,
                        help='model weights (.pth): trained by tools/train.py or converted from '
                             'the original release')
    parser.add_argument('--onnx', default=None, metavar='GRAPH',
                        help='run an exported graph (tools/deployment/export_onnx.py) with '
                             'onnxruntime instead of --checkpoint')
    parser.add_argument('--random-weights', action='store_true',
                        help='run without --checkpoint on random weights (meaningless output; '
                             'for trying the pipeline only)')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda', 'cuda:0' or 'auto'")
    parser.add_argument('--score-thr', type=float, default=0.5, help='minimum face confidence')
    parser.add_argument('--max-faces', type=int, default=-1, help='faces per image (<= 0: all)')
    parser.add_argument('--min-size', type=int, default=None,
                        help="test resize: short side (default: the config's test scale)")
    parser.add_argument('--max-size', type=int, default=None,
                        help="test resize: long side cap (default: the config's test scale)")
    parser.add_argument('--out', default=None,
                        help='output image (one input) or folder (several inputs)')
    parser.add_argument('--json', action='store_true',
                        help='also write the faces as <output>.json next to each image')
    parser.add_argument('--show', action='store_true', help='show the results in a window')
    parser.add_argument('--no-mesh', action='store_true', help='do not draw the face mesh')
    parser.add_argument('--no-axes', action='store_true', help='do not draw the pose axes')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.onnx is not None and (args.checkpoint is not None or args.random_weights):
        parser.error('--onnx runs the weights of the graph: drop --checkpoint/--random-weights')
    if args.checkpoint is None and args.onnx is None and not args.random_weights:
        parser.error('give --checkpoint <weights.pth> (trained, or converted from the original '
                     'release), --onnx <exported graph>, or --random-weights to try the '
                     'pipeline on random weights')
    if args.json and args.out is None:
        parser.error('--json writes next to the output images: give --out too')
    return args


def collect_images(inputs: Sequence[str]) -> List[Path]:
    """Files as given, folders expanded to their images (sorted)."""
    files: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            files.append(path)   # a missing file is reported when it is read
    return files


def output_path(out: Optional[str], image: Path, many: bool) -> Optional[Path]:
    if out is None:
        return None
    out_path = Path(out)
    if many or out_path.is_dir() or not out_path.suffix:
        return out_path / f'{image.stem}_img2pose{image.suffix or ".png"}'
    return out_path


def save_rgb(path: Path, image: np.ndarray) -> None:
    """Write an RGB image atomically (temporary file + rename)."""
    import cv2
    ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError(f'cannot encode an image as {path.suffix!r}')
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
    with open(tmp, 'wb') as f:
        f.write(buf.tobytes())
    os.replace(tmp, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from img2pose_mm.apis import Img2Pose, draw_faces, load_image

    files = collect_images(args.inputs)
    if not files:
        print('error: no input images', file=sys.stderr)
        return 2
    detector = Img2Pose(config=args.config, checkpoint=args.checkpoint, device=args.device,
                        score_threshold=args.score_thr, max_faces=args.max_faces,
                        min_size=args.min_size, max_size=args.max_size,
                        cfg_options=args.cfg_options,
                        backend='pytorch' if args.onnx is None else 'onnxruntime',
                        onnx_file=args.onnx)
    failures = 0
    for path in files:
        try:
            image = load_image(path)
        except (OSError, ValueError) as err:
            print(f'skipped {path}: {err}', file=sys.stderr)
            failures += 1
            continue
        faces = detector.detect_faces(image)
        drawn = draw_faces(image, faces, mesh=not args.no_mesh, axes=not args.no_axes)
        print(f'{path}: {len(faces)} face(s)')
        for face in faces:
            print('  confidence {:.3f}  box [{}]  pose [{}]'.format(
                face['confidence'], ', '.join(f'{v:.1f}' for v in face['box']),
                ', '.join(f'{v:.3f}' for v in face['pose'])))
        target = output_path(args.out, path, len(files) > 1)
        if target is not None:
            save_rgb(target, drawn)
            if args.json:
                target.with_suffix('.json').write_text(json.dumps(faces, indent=1))
            print(f'  -> {target}')
        if args.show:
            import cv2
            cv2.imshow('img2pose', drawn[..., ::-1])
            if cv2.waitKey(0) & 0xFF in (27, ord('q')):
                break
    if args.show:
        import cv2
        cv2.destroyAllWindows()
    return 1 if failures == len(files) else 0


if __name__ == '__main__':
    sys.exit(main())
