#!/usr/bin/env python
"""img2pose image demo: detect faces and draw their boxes, 6DoF pose axes and the
reference-face mesh at each pose.

Examples::

    python demo/image_demo.py photo.jpg --checkpoint img2pose_r18.pth --out result.jpg
    python demo/image_demo.py photos/ --checkpoint img2pose_r18.pth --out results/
    python demo/image_demo.py photo.jpg --checkpoint img2pose_r18.pth --show
    python demo/image_demo.py photo.jpg --onnx img2pose_r18.onnx --out result.jpg
    python demo/image_demo.py photo.jpg --checkpoint img2pose_r18.pth --out r.jpg --json \
        --landmarks --camera 1400                      # 68 points, poses in a 1400 px camera
    python demo/image_demo.py photo.jpg --checkpoint img2pose_r18.pth --out r.jpg --json \
        --boxes boxes.json                             # poses of faces found by another detector

``--boxes`` reads a JSON file with the face boxes of each image: a list of boxes
``[[x1, y1, x2, y2], ...]`` (one input image; a fifth number, a score, is ignored; face
dicts with a ``"box"`` work too) or an object mapping image file names (or the paths as
given) to such lists. Every box gets exactly one face, in the order given; images
without an entry are skipped.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

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
    parser.add_argument('--boxes', default=None,
                        help='JSON file of given face boxes (see above): estimate their poses '
                             'instead of detecting faces')
    parser.add_argument('--landmarks', action='store_true',
                        help='add (and draw) the 68 projected landmarks of each face')
    parser.add_argument('--euler', default='aflw',
                        help="Euler convention of face['euler']: 'aflw' (the paper's yaw, "
                             "pitch, roll) or a scipy order such as 'XYZ'")
    parser.add_argument('--camera', type=float, nargs='+', default=None, metavar='K',
                        help='express poses in this camera: a focal length in pixels, or the '
                             '9 numbers of a 3x3 intrinsic matrix row by row')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    args = parser.parse_args(argv)
    if args.onnx is not None and (args.checkpoint is not None or args.random_weights):
        parser.error('--onnx runs the weights of the graph: drop --checkpoint/--random-weights')
    if args.checkpoint is None and args.onnx is None and not args.random_weights:
        parser.error('give --checkpoint <weights.pth> (trained, or converted from the original '
                     'release), --onnx <exported graph>, or --random-weights to try the '
                     'pipeline on random weights')
    if args.onnx is not None and args.boxes is not None:
        parser.error('--boxes needs the PyTorch detector (--checkpoint): an exported graph '
                     'makes its own proposals')
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


def _box_list(value, where: str) -> list:
    """Boxes of one image from JSON: numbers ``[x1, y1, x2, y2(, score)]`` or face dicts
    with a ``"box"``."""
    if not isinstance(value, list):
        raise ValueError(f'{where}: expected a list of boxes, got {type(value).__name__}')
    return [item['box'] if isinstance(item, dict) and 'box' in item else item for item in value]


def load_boxes(path: str, files: Sequence[Path]) -> dict:
    """``{image path: boxes}`` from a ``--boxes`` JSON file (see the module docstring).

    Raises:
        ValueError: unreadable JSON, a list for several images, entries that name no
            input image.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f'cannot read --boxes {path}: {err}') from err
    if isinstance(data, list):
        if len(files) != 1:
            raise ValueError(f'--boxes {path} is one list of boxes but there are {len(files)} '
                             'images: map image names to boxes')
        return {files[0]: _box_list(data, path)}
    if not isinstance(data, dict):
        raise ValueError(f'--boxes {path}: expected a list of boxes or an object mapping '
                         'image names to boxes')
    by_name = {}
    for file in files:
        for key in (str(file), file.name):
            if key in data:
                by_name[file] = _box_list(data[key], f'{path}[{key!r}]')
                break
    unknown = sorted(set(data) - {k for f in files for k in (str(f), f.name)})
    if unknown:
        raise ValueError(f'--boxes {path} names images that are not inputs: {unknown}')
    return by_name


def output_path(out: Optional[str], image: Path, many: bool) -> Optional[Path]:
    if out is None:
        return None
    out_path = Path(out)
    if many or out_path.is_dir() or not out_path.suffix:
        return out_path / f'{image.stem}_img2pose{image.suffix or ".png"}'
    return out_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from img2pose_mm.apis import Img2Pose, camera_from_values, draw_faces, load_image
    from img2pose_mm.utils import write_rgb_image

    files = collect_images(args.inputs)
    if not files:
        print('error: no input images', file=sys.stderr)
        return 2
    try:
        camera = camera_from_values(args.camera)
        given = load_boxes(args.boxes, files) if args.boxes else None
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    detector = Img2Pose(config=args.config, checkpoint=args.checkpoint, device=args.device,
                        score_threshold=args.score_thr, max_faces=args.max_faces,
                        min_size=args.min_size, max_size=args.max_size,
                        cfg_options=args.cfg_options, euler=args.euler,
                        landmarks=68 if args.landmarks else None, camera=camera,
                        backend='pytorch' if args.onnx is None else 'onnxruntime',
                        onnx_file=args.onnx)
    failures = 0
    for path in files:
        if given is not None and path not in given:
            print(f'skipped {path}: no boxes for it in {args.boxes}', file=sys.stderr)
            failures += 1
            continue
        try:
            image = load_image(path)
            if given is None:
                faces = detector.detect_faces(image)
            else:
                faces = detector.estimate_poses(image, given[path])
        except (OSError, ValueError) as err:
            print(f'skipped {path}: {err}', file=sys.stderr)
            failures += 1
            continue
        drawn = draw_faces(image, faces, mesh=not args.no_mesh, axes=not args.no_axes,
                           camera=camera)
        print(f'{path}: {len(faces)} face(s)')
        for face in faces:
            angles = face.get('euler')
            print('  confidence {:.3f}  box [{}]  pose [{}]{}'.format(
                face['confidence'], ', '.join(f'{v:.1f}' for v in face['box']),
                ', '.join(f'{v:.3f}' for v in face['pose']),
                '' if angles is None else '  yaw {yaw:.1f} pitch {pitch:.1f} roll {roll:.1f}'
                .format(**angles)))
        target = output_path(args.out, path, len(files) > 1)
        if target is not None:
            write_rgb_image(target, drawn)
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
