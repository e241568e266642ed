"""300W-LP: the release's files read into the img2pose JSON list with the ground-truth
angles (``pose_para``), the engine of ``tools/dataset_converters/300wlp_to_json.py``
(layout, landmark sources and output: docs/datasets.md, "The releases").
"""
from __future__ import annotations

import json
import os
import os.path as osp
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from img2pose_mm.utils import with_progress

from .face_annotations import AnnotationError, check_same_source, number_array

#: Where the landmarks of a sample come from (docs/datasets.md).
LANDMARK_SOURCES = ('pt2d', 'pts_2d', 'pts_3d')
#: Suffix of the folders that hold the mirrored copies.
FLIP_SUFFIX = '_Flip'
#: Folders of the release that hold no samples.
IGNORED_FOLDERS = ('landmarks', 'Code')
IMAGE_EXTENSION = '.jpg'
NUM_LANDMARKS = 68


# ----------------------------------------------------------------------------- reading
def load_mat(path: str, names: Sequence[str]) -> Dict[str, Any]:
    """The variables ``names`` of a ``.mat``; :class:`AnnotationError` naming the file when
    it is missing or unreadable or lacks one of them."""
    from scipy.io import loadmat
    if not osp.isfile(path):
        raise AnnotationError(f'{path}: file not found')
    try:
        mat = loadmat(path, variable_names=list(names))
    except Exception as err:  # scipy raises several types on a corrupt file
        raise AnnotationError(f'{path}: cannot read .mat file ({err})') from None
    for name in names:
        if name not in mat:
            raise AnnotationError(f'{path}: missing variable {name!r}')
    return mat


def mat_pose_para(mat: Dict[str, Any], path: str) -> np.ndarray:
    """``Pose_Para`` of a 3DDFA ``.mat`` (300W-LP, AFLW2000-3D) as float64 ``(K,)``, checked:
    K >= 3 (pitch, yaw, roll, ...) and finite angles (:class:`AnnotationError` if not)."""
    pose_para = number_array(mat['Pose_Para'], f'{path}: Pose_Para').ravel()
    if pose_para.size < 3:
        raise AnnotationError(f'{path}: Pose_Para must hold at least pitch, yaw, roll, got '
                              f'{pose_para.size} values')
    if not np.isfinite(pose_para[:3]).all():
        raise AnnotationError(f'{path}: Pose_Para angles contain NaN or inf')
    return pose_para


def _landmark_array(value: Any, path: str, name: str, shape: Tuple[int, int]) -> np.ndarray:
    """``value`` as float64 of ``shape``; :class:`AnnotationError` naming the file if not."""
    arr = number_array(value, f'{path}: {name}')
    if arr.shape != shape:
        raise AnnotationError(f'{path}: {name} must be {shape[0]} x {shape[1]}, got '
                              + ' x '.join(str(n) for n in arr.shape))
    if not np.isfinite(arr).all():
        raise AnnotationError(f'{path}: {name} contains NaN or inf')
    return arr


def read_300wlp_mat(path: str, with_landmarks: bool = True) -> Dict[str, Any]:
    """``Pose_Para`` and ``pt2d`` of one 300W-LP ``.mat``.

    Returns:
        dict with ``pose_para`` ``(K,)`` float64 (K >= 3: pitch, yaw, roll, ...) and
        ``landmarks`` ``(68, 2)`` (the transposed ``pt2d``; ``None`` without
        ``with_landmarks``).

    Raises:
        AnnotationError: the file is missing or unreadable, lacks a variable, or holds
            a ``pt2d`` that is not 2 x 68 or angles / landmarks that are not finite (the
            message names the file).
    """
    mat = load_mat(path, ('Pose_Para', 'pt2d') if with_landmarks else ('Pose_Para',))
    pose_para = mat_pose_para(mat, path)
    landmarks = None
    if with_landmarks:
        landmarks = _landmark_array(mat['pt2d'], path, 'pt2d', (2, NUM_LANDMARKS)).T
    return dict(pose_para=pose_para, landmarks=landmarks)


def read_300wlp_pts(path: str, name: str = 'pts_3d') -> np.ndarray:
    """The ``(68, 2)`` ``pts_2d`` or ``pts_3d`` of a ``landmarks/<subset>/<stem>_pts.mat``.

    Raises:
        AnnotationError: missing or unreadable file, missing variable, wrong shape or
            values that are not finite (the message names the file).
    """
    if name not in ('pts_2d', 'pts_3d'):
        raise ValueError(f"name must be 'pts_2d' or 'pts_3d', got {name!r}")
    return _landmark_array(load_mat(path, (name,))[name], path, name, (NUM_LANDMARKS, 2))


# ----------------------------------------------------------------------------- samples
def find_300wlp_subsets(root: str, subsets: Optional[Sequence[str]] = None,
                        flipped: bool = True) -> List[str]:
    """The sample folders under ``root`` (sorted): every folder with ``.jpg`` or ``.mat``
    files except ``landmarks`` and ``Code``; only ``subsets`` when given; without the
    ``_Flip`` folders when ``flipped`` is false.

    Raises:
        FileNotFoundError: ``root`` or a named subset does not exist, or no folder holds
            samples.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'300W-LP folder not found: {root}')
    if subsets:
        missing = [s for s in subsets if not osp.isdir(osp.join(root, s))]
        if missing:
            raise FileNotFoundError(f'300W-LP subsets not found under {root}: {missing}')
        names = sorted(set(subsets))
    else:
        names = sorted(n for n in os.listdir(root) if osp.isdir(osp.join(root, n))
                       and n not in IGNORED_FOLDERS and not n.startswith('.')
                       and any(f.endswith((IMAGE_EXTENSION, '.mat'))
                               for f in os.listdir(osp.join(root, n))))
    if not flipped:
        names = [n for n in names if not n.endswith(FLIP_SUFFIX)]
    if not names:
        raise FileNotFoundError(f'no 300W-LP sample folder (with .jpg / .mat files) under {root}')
    return names


def find_300wlp_samples(root: str, subsets: Optional[Sequence[str]] = None,
                        flipped: bool = True) -> List[Tuple[str, str]]:
    """``(subset, stem)`` of every image or ``.mat`` of the sample folders, sorted.

    Stems with only an image or only a ``.mat`` are listed too, so that the conversion
    reports them.
    """
    samples = []
    for subset in find_300wlp_subsets(root, subsets, flipped):
        files = os.listdir(osp.join(root, subset))
        stems = {f[:-len(ext)] for f in files for ext in (IMAGE_EXTENSION, '.mat')
                 if f.endswith(ext)}
        samples.extend((subset, stem) for stem in sorted(stems))
    return samples


def sample_entry(root: str, subset: str, stem: str, landmarks: str = 'pt2d'
                 ) -> Tuple[Dict[str, Any], bool]:
    """The JSON-list entry of one sample (docs/datasets.md).

    Returns:
        the entry and whether a ``pts_*`` source fell back to the sample's ``pt2d``.

    Raises:
        AnnotationError: the sample cannot be used (the message names the file).
    """
    if landmarks not in LANDMARK_SOURCES:
        raise ValueError(f'landmarks must be one of {LANDMARK_SOURCES}, got {landmarks!r}')
    stem_path = osp.join(root, subset, stem)
    mat_path, image_path = stem_path + '.mat', stem_path + IMAGE_EXTENSION
    if not osp.isfile(mat_path):
        raise AnnotationError(f'{image_path}: annotation not found ({mat_path})')
    if not osp.isfile(image_path):
        raise AnnotationError(f'{mat_path}: image not found ({image_path})')
    pts = osp.join(root, 'landmarks', subset, f'{stem}_pts.mat') if landmarks != 'pt2d' else None
    fell_back = pts is not None and not osp.isfile(pts)
    ann = read_300wlp_mat(mat_path, with_landmarks=pts is None or fell_back)
    points = ann['landmarks'] if pts is None or fell_back else read_300wlp_pts(pts, landmarks)
    box = [float(points[:, 0].min()), float(points[:, 1].min()),
           float(points[:, 0].max()), float(points[:, 1].max())]
    entry = dict(image_path=f'{subset}/{stem}{IMAGE_EXTENSION}', bboxes=[box],
                 landmarks=[points.tolist()],
                 pose_para=[[float(v) for v in ann['pose_para'][:3]]])
    return entry, fell_back


# ----------------------------------------------------------------------------- conversion
def _read_partial(path: str) -> Tuple[List[str], Set[str]]:
    """Complete lines of an interrupted run's list and the images they cover (a last line
    cut by the interruption is dropped)."""
    lines, done = [], set()
    with open(path, encoding='utf-8') as f:
        for text in f:
            try:
                entry = json.loads(text)
                image_path = entry['image_path']
            except (json.JSONDecodeError, KeyError, TypeError):
                break
            if not text.endswith('\n'):
                break
            lines.append(text)
            done.add(image_path)
    return lines, done


def convert_300wlp(root: str, out_json: str, landmarks: str = 'pt2d',
                   subsets: Optional[Sequence[str]] = None, flipped: bool = True,
                   strict: bool = False, resume: bool = False, progress: bool = True,
                   log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Write the JSON list of a 300W-LP release (docs/datasets.md).

    Args:
        root: the release folder (``AFW/``, ``AFW_Flip/``, ..., ``landmarks/``).
        out_json: the JSON list to write (written as ``<out_json>.partial`` first).
        landmarks: ``'pt2d'``, ``'pts_2d'`` or ``'pts_3d'`` (docs/datasets.md).
        subsets: only these folders (e.g. ``['AFW', 'AFW_Flip']``); default: all.
        flipped: include the ``_Flip`` folders.
        strict: stop at the first bad sample (:class:`AnnotationError`); the lines
            written so far stay in ``<out_json>.partial`` for ``resume``. Default: report
            it and go on.
        resume: continue ``<out_json>.partial`` of an interrupted run made with the same
            options.
        progress: show a progress bar.
        log: where messages go (default: stderr).

    Returns:
        dict with ``json`` (the list), ``images`` (lines written, reused included),
        ``reused``, ``skipped`` (``(subset/stem, reason)`` of the bad samples; the
        reason names the file), ``fallbacks``
        (images whose ``pts_*`` file is missing and whose ``pt2d`` was used) and
        ``subsets``.

    Raises:
        FileNotFoundError: no 300W-LP folder or sample folder.
        ValueError: ``resume`` of a run made with other options.
        AnnotationError: a bad sample with ``strict``.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if landmarks not in LANDMARK_SOURCES:
        raise ValueError(f'landmarks must be one of {LANDMARK_SOURCES}, got {landmarks!r}')
    root = osp.abspath(root)
    names = find_300wlp_subsets(root, subsets, flipped)
    samples = find_300wlp_samples(root, names)
    out_json = osp.abspath(out_json)
    os.makedirs(osp.dirname(out_json), exist_ok=True)
    partial, meta_path = out_json + '.partial', out_json + '.partial.meta'
    options = dict(root=root, landmarks=landmarks, subsets=names)
    lines: List[str] = []
    done: Set[str] = set()
    if resume and osp.exists(partial):
        previous = {}
        if osp.isfile(meta_path):
            with open(meta_path, encoding='utf-8') as f:
                previous = json.load(f)
        check_same_source(previous, options, partial)
        lines, done = _read_partial(partial)
        log(f'resuming {partial}: {len(lines)} images already written')
    elif osp.exists(partial):
        log(f'removing the unfinished {partial} (resume=True / --resume continues it)')
    with open(meta_path, 'w', encoding='utf-8') as f:
        json.dump(options, f)
    skipped: List[Tuple[str, str]] = []
    fallbacks: List[str] = []
    written = len(lines)
    with open(partial, 'w', encoding='utf-8') as out:
        out.writelines(lines)          # the complete lines of the interrupted run
        out.flush()
        for subset, stem in with_progress(samples, len(samples), progress, sys.stderr):
            if f'{subset}/{stem}{IMAGE_EXTENSION}' not in done:
                try:
                    entry, fell_back = sample_entry(root, subset, stem, landmarks)
                except AnnotationError as err:
                    if strict:
                        raise
                    skipped.append((f'{subset}/{stem}', str(err)))
                    log(f'\nskipped: {err}')
                else:
                    out.write(json.dumps(entry) + '\n')
                    out.flush()
                    written += 1
                    if fell_back:
                        fallbacks.append(entry['image_path'])
    os.replace(partial, out_json)
    os.remove(meta_path)
    summary = dict(json=out_json, images=written, reused=len(lines), skipped=skipped,
                   fallbacks=fallbacks, subsets=names)
    log(format_300wlp_summary(summary, landmarks))
    return summary


def format_300wlp_summary(summary: Dict[str, Any], landmarks: str = 'pt2d',
                          max_examples: int = 10) -> str:
    """Human-readable summary of :func:`convert_300wlp`."""
    lines = [f'300W-LP -> JSON list done: {summary["json"]}',
             f'  folders: {", ".join(summary["subsets"])}',
             f'  images: {summary["images"]}'
             + (f' ({summary["reused"]} kept from the interrupted run)'
                if summary['reused'] else ''),
             f'  landmarks: {landmarks}']
    if summary['fallbacks']:
        lines.append(f'  images without a landmarks/ file (their pt2d used): '
                     f'{len(summary["fallbacks"])}')
    lines.append(f'  skipped samples: {len(summary["skipped"])}')
    for _, reason in summary['skipped'][:max_examples]:
        lines.append(f'    {reason}')
    if len(summary['skipped']) > max_examples:
        lines.append(f'    ... and {len(summary["skipped"]) - max_examples} more')
    return '\n'.join(lines)


__all__ = ['LANDMARK_SOURCES', 'FLIP_SUFFIX', 'load_mat', 'mat_pose_para', 'read_300wlp_mat',
           'read_300wlp_pts', 'find_300wlp_subsets', 'find_300wlp_samples', 'sample_entry',
           'convert_300wlp', 'format_300wlp_summary']
