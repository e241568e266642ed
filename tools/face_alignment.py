#!/usr/bin/env python
"""Detect and align the faces of a set of images with img2pose.

Unreadable images are reported and skipped; a summary ends the run. Writes are atomic.

    python tools/face_alignment.py data/lfw aligned/ --checkpoint img2pose_r18.pth --max-faces 1
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm',
                    '.pbm', '.gif')
LIST_EXTENSIONS = ('.txt', '.lst', '.list')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('images', help='an image, a folder (searched recursively) or a list '
                        'file (.txt/.lst/.list: one path per line, relative to its folder; # comments)')
    parser.add_argument('out_dir', help='output folder, mirroring the input folders: '
                        '<root>/a/b/img.jpg -> <out_dir>/a/b/img_<k>.<ext> (k = rank in --order), '
                        'or img.<ext> with --max-faces 1')
    parser.add_argument('--config', default=None,
                        help='model config (default: the packaged configs/img2pose_r18.py)')
    parser.add_argument('--checkpoint', default=None,
                        help='model weights (.pth): trained by tools/train.py or converted from '
                             'the original release')
    parser.add_argument('--random-weights', action='store_true',
                        help='run without --checkpoint on random weights (meaningless output; '
                             'for trying the pipeline only)')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda', 'cuda:0' or 'auto'")
    parser.add_argument('--det-threshold', type=float, default=0.7,
                        help='minimum face confidence')
    parser.add_argument('--max-faces', type=int, default=1,
                        help='faces kept per image (<= 0: all)')
    parser.add_argument('--order', choices=('position', 'confidence'), default='position',
                        help='which faces come first (and survive --max-faces): box centre '
                             'nearest the image centre, or most confident')
    parser.add_argument('--face-size', type=int, default=224, help='side of the aligned crops')
    parser.add_argument('--template', default='auto',
                        help="'auto' (best of the 5 multi-pose templates) or one template name")
    parser.add_argument('--min-size', type=int, default=400,
                        help="test resize: short side (400 as the original's alignment script; "
                             "0: the config's test scale)")
    parser.add_argument('--max-size', type=int, default=1400, help='test resize: long side cap')
    parser.add_argument('--ext', default=None,
                        help='output image extension (default: the input\'s, png if unknown)')
    parser.add_argument('--draw-landmarks', action='store_true',
                        help='draw the 68 projected landmarks on each crop')
    parser.add_argument('--json', action='store_true',
                        help='write <crop>.json: the face (box, confidence, pose, Euler angles, '
                             'keypoints, 68 landmarks; input pixels), the 2 x 3 image -> crop '
                             'matrix, the keypoints and landmarks in crop pixels')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    if args.checkpoint is None and not args.random_weights:
        parser.error('give --checkpoint <weights.pth> (trained, or converted from the original '
                     'release), or --random-weights to try the pipeline on random weights')
    if args.face_size < 1:
        parser.error(f'--face-size must be positive, got {args.face_size}')
    return args


def collect_inputs(source: str) -> Tuple[List[Path], Path]:
    """Image paths and the root their output paths are relative to.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: ``source`` holds no image.
    """
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob('*') if p.is_file()
                       and p.suffix.lower() in IMAGE_EXTENSIONS
                       and not any(part.startswith('.') for part in p.relative_to(path).parts))
        if not files:
            raise ValueError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) under {path}')
        return files, path
    if not path.is_file():
        raise FileNotFoundError(f'no such file or folder: {path}')
    if path.suffix.lower() in LIST_EXTENSIONS:
        files = []
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            entry = Path(line)
            files.append(entry if entry.is_absolute() else path.parent / entry)
        if not files:
            raise ValueError(f'{path} lists no image')
        root = Path(os.path.commonpath([str(f.parent.resolve()) for f in files]))
        return files, root
    return [path], path.parent


def order_faces(faces: List[dict], img_shape: Tuple[int, int], order: str,
                max_faces: int) -> List[dict]:
    """Sort faces by ``order`` and keep ``max_faces`` (<= 0: all)."""
    if order == 'position' and faces:
        h, w = img_shape
        boxes = np.array([f['box'] for f in faces], dtype=np.float64)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        dist = np.hypot(centres[:, 0] - w / 2, centres[:, 1] - h / 2)
        faces = [faces[i] for i in np.argsort(dist, kind='stable')]
    elif order == 'confidence':
        faces = sorted(faces, key=lambda f: -f['confidence'])
    elif order != 'position':
        raise ValueError(f"order must be 'position' or 'confidence', got {order!r}")
    return faces[:max_faces] if max_faces > 0 else faces


def output_paths(image: Path, root: Path, out_dir: Path, num: int, single: bool,
                 ext: Optional[str]) -> List[Path]:
    """Where the ``num`` crops of ``image`` go."""
    try:
        rel = image.resolve().relative_to(root.resolve())
    except ValueError:      # outside the root: keep just the name
        rel = Path(image.name)
    suffix = ext if ext else image.suffix.lower()
    if suffix and not suffix.startswith('.'):
        suffix = '.' + suffix
    if suffix not in ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp'):
        suffix = '.png'
    folder = out_dir / rel.parent
    if single:
        return [folder / f'{rel.stem}{suffix}'][:num]
    return [folder / f'{rel.stem}_{k}{suffix}' for k in range(num)]


def crop_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Image pixels ``(M, 2)`` mapped into a crop by its ``(2, 3)`` alignment matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def face_record(face: dict, matrix: np.ndarray, source: Path) -> dict:
    """The ``--json`` content of one crop."""
    keypoints = np.array(list(face['keypoints'].values()), dtype=np.float64)
    record = {'source': str(source), 'face': face, 'alignment_matrix': matrix.tolist(),
              'keypoints_crop': crop_points(keypoints, matrix).tolist()}
    if face.get('landmarks') is not None:
        record['landmarks_crop'] = crop_points(np.array(face['landmarks']), matrix).tolist()
    return record


def run(args: argparse.Namespace) -> Dict[str, object]:
    """Align every input; returns the summary (also printed)."""
    import json

    from img2pose_mm.apis import Img2Pose, align_faces, load_image, require_cv2
    from img2pose_mm.utils import atomic_write, with_progress, write_rgb_image
    from img2pose_mm.visualization import draw_landmarks
    require_cv2()
    files, root = collect_inputs(args.images)
    out_dir = Path(args.out_dir)
    with_landmarks = args.draw_landmarks or args.json
    detector = Img2Pose(config=args.config, checkpoint=args.checkpoint, device=args.device,
                        score_threshold=args.det_threshold, max_faces=-1,
                        min_size=args.min_size or None,
                        max_size=args.max_size if args.min_size else None,
                        cfg_options=args.cfg_options,
                        landmarks=68 if with_landmarks else None)
    summary: Dict[str, object] = dict(images=len(files), processed=0, faces=0, no_face=0,
                                      failures=0, failed=[])
    for path in with_progress(files, len(files), not args.no_progress):
        try:
            image = load_image(path)
            faces = order_faces(detector.detect_faces(image), image.shape[:2], args.order,
                                args.max_faces)
            crops, alignment = align_faces(image, faces, args.face_size,
                                           template=args.template, return_alignment=True)
            targets = output_paths(path, root, out_dir, len(crops), args.max_faces == 1,
                                   args.ext)
            for crop, target, face, matrix in zip(crops, targets, faces, alignment.matrices):
                if args.draw_landmarks:
                    crop = draw_landmarks(crop, crop_points(np.array(face['landmarks']), matrix),
                                          color=(255, 80, 200))
                write_rgb_image(target, crop)
                if args.json:
                    atomic_write(target.with_suffix('.json'),
                                 json.dumps(face_record(face, matrix, path), indent=1).encode())
            summary['processed'] += 1
            summary['faces'] += len(crops)
            summary['no_face'] += int(len(crops) == 0)
        except (OSError, ValueError) as err:
            summary['failures'] += 1
            summary['failed'].append((str(path), str(err)))
            print(f'\nskipped {path}: {err}', file=sys.stderr, flush=True)
    print(f"images: {summary['images']}  processed: {summary['processed']}  "
          f"faces written: {summary['faces']}  images without a face: {summary['no_face']}  "
          f"failures: {summary['failures']}  -> {out_dir}", flush=True)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        summary = run(args)
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    # every image failing is an error; some failing is reported in the summary
    return 1 if summary['failures'] and not summary['processed'] else 0


if __name__ == '__main__':
    sys.exit(main())
