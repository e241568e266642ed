"""Convert an img2pose JSON list into a face-pose LMDB (the engine of
``tools/dataset_converters/json_to_lmdb.py``; docs/datasets.md, "The face-pose LMDB").
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import os.path as osp
import shutil
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from img2pose_mm.structures import FaceModel, FaceModelLike, FacePoses
from img2pose_mm.utils import with_progress

from .face_annotations import (
    AnnotationError,
    check_same_source,
    iter_json_list,
    parse_json_line,
    resolve_image_path,
)
from .face_labelling import (
    BOX_PROBLEMS,
    LABELLING_MODES,
    MIN_POSE_BOX_IOU,
    POSE_STATUS,
    annotate_image,
)
from .image_files import decode_image, read_image_bytes
from .lmdb_record import (
    FORMAT_NAME,
    KEYS_KEY,
    LEN_KEY,
    META_KEY,
    VERSION,
    RecordError,
    encode_record,
    open_lmdb_readonly,
    read_keys,
)
from .lmdb_writer import (
    LMDBWriter,
    collect_statistics,
    format_conversion_summary,
    make_summary,
    pose_statistics,
    save_statistics,
)


def _sha1_file(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def build_record(line_no: int, text: str, json_path: str, image_root: Optional[str],
                 face_model: FaceModelLike = None, labelling: str = 'box',
                 min_pose_iou: float = MIN_POSE_BOX_IOU,
                 keep_images_without_pose: bool = False) -> bytes:
    """The LMDB record of one JSON-list line (see :func:`convert` for the options).

    Raises:
        AnnotationError: the line or its image cannot be used, or (by default) no face of
            it has a pose (message without the line number, which the caller adds).
    """
    ann = parse_json_line(text)
    path = resolve_image_path(ann['image_path'], image_root, json_path)
    img_bytes = read_image_bytes(path)
    try:
        img = decode_image(img_bytes, check_truncation=True)
    except AnnotationError as err:
        raise AnnotationError(f'{path}: {err}') from None
    height, width = img.shape[:2]
    try:
        faces = annotate_image(ann, (height, width), face_model, labelling, min_pose_iou)
    except (cv2.error, ValueError) as err:
        raise AnnotationError(f'pose estimation failed: {err}') from None
    poses: FacePoses = faces['poses']
    if not keep_images_without_pose and not poses.valid.any():
        reasons = [POSE_STATUS[c] for c in faces['pose_status']] + [
            BOX_PROBLEMS[c] for c in faces['dropped_reasons']]
        raise AnnotationError('no face with a pose' + (f' ({", ".join(sorted(set(reasons)))})'
                                                       if reasons else ' (no face)'))
    arrays = dict(bboxes=faces['bboxes'], poses=poses.numpy(),
                  local_poses=faces['local_poses'].numpy(), landmarks=faces['landmarks'],
                  pose_valid=poses.valid.numpy(), pose_status=faces['pose_status'],
                  faces=faces['faces'].astype(np.int64), dropped=faces['dropped'].astype(np.int64),
                  dropped_reasons=faces['dropped_reasons'])
    if faces['pose_para'] is not None:
        arrays['pose_para'] = faces['pose_para']
    header = dict(image_path=path, source_image_path=ann['image_path'], height=int(height),
                  width=int(width), line=int(line_no))
    return encode_record(header, arrays, img_bytes)


def convert(json_path: str, out_dir: str, name: str, train: bool = False,
            resume: bool = False, image_root: Optional[str] = None, *,
            face_model: FaceModelLike = None, labelling: str = 'box',
            min_pose_iou: float = MIN_POSE_BOX_IOU, keep_images_without_pose: bool = False,
            commit_every: int = 100, progress: bool = True,
            log: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Convert a JSON list into ``<out_dir>/<name>.lmdb`` (and pose statistics).

    Args:
        json_path: the JSON list (one object per line).
        out_dir: output folder (created).
        name: base name of the outputs.
        train: also write ``<name>_pose_mean.npy`` / ``<name>_pose_stddev.npy``.
        resume: continue an interrupted conversion from ``<name>.lmdb.partial``; on a
            finished ``<name>.lmdb`` of the same source, only (re)write the statistics.
            Without it an existing ``<name>.lmdb`` is rebuilt (and replaced once the new
            one is complete).
        image_root: folder relative image paths start from (default: the JSON's folder).
        face_model: the face model that labels the faces (default: the packaged face);
            e.g. ``dict(reference_points=..., reference_points_5=...)`` with the original
            img2pose ``pose_references`` files.
        labelling: ``'box'`` (default, the original's), ``'image'`` or ``'pose_para'``
            (docs/datasets.md, "Labelling"). A list whose first line has ``pose_para``
            converted with another labelling gets a warning (the angles are ignored).
        min_pose_iou: a pose whose box overlaps its annotated box less is implausible
            and the face gets no pose.
        keep_images_without_pose: keep images where no face has a pose (the original
            skips them; they are reported as skipped).
        commit_every: records per LMDB transaction.
        progress: show a progress bar.
        log: where messages go (default: ``print`` to stderr).

    Returns:
        A summary dict: ``lmdb``, ``images``, ``reused``, ``faces``,
        ``faces_without_pose``, ``without_pose_reasons``, ``faces_without_pose_records``
        (``(line, face index)`` pairs), ``dropped_faces`` (``(line, face index, reason)``
        of faces whose box is unusable, see
        :func:`~img2pose_mm.datasets.face_labelling.clean_annotated_boxes`), ``skipped``
        (``(line, reason)`` pairs of this run), ``pose_mean`` / ``pose_stddev`` (paths or
        ``None``).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    json_path = osp.abspath(json_path)
    if not osp.isfile(json_path):
        raise FileNotFoundError(f'JSON list not found: {json_path}')
    if labelling not in LABELLING_MODES:
        raise ValueError(f'labelling must be one of {LABELLING_MODES}, got {labelling!r}')
    image_root = osp.abspath(image_root) if image_root is not None else None
    os.makedirs(out_dir, exist_ok=True)
    final = osp.join(out_dir, f'{name}.lmdb')
    partial = final + '.partial'
    face_model = FaceModel.build(face_model)
    source = dict(json=json_path, json_sha1=_sha1_file(json_path), image_root=image_root,
                  face_model=repr(face_model), labelling=labelling,
                  min_pose_iou=float(min_pose_iou),
                  keep_images_without_pose=bool(keep_images_without_pose))
    if resume and osp.exists(final) and not osp.exists(partial):
        return _already_done(final, source, out_dir, name, train, json_path, log)
    if osp.exists(partial) and not resume:
        log(f'removing the unfinished {partial} (pass resume=True / --resume to continue it)')
        shutil.rmtree(partial)
    elif resume and not osp.exists(partial):
        log(f'nothing to resume at {partial}: starting a new conversion')
    writer = LMDBWriter(partial, commit_every)
    mean = std = None
    try:
        _start_or_check_meta(writer, source, partial)
        _warn_ignored_pose_para(json_path, labelling, log)
        build = functools.partial(build_record, json_path=json_path, image_root=image_root,
                                  face_model=face_model, labelling=labelling,
                                  min_pose_iou=min_pose_iou,
                                  keep_images_without_pose=keep_images_without_pose)
        keys, reused, skipped = _write_records(writer, json_path, build, progress, log)
        stats = collect_statistics(writer.env, keys)
        summary = make_summary(final, keys, reused, stats, skipped)
        if train:
            if len(stats['local_poses']):
                mean, std = pose_statistics(stats['local_poses'])
            else:
                log('no face has a pose: pose statistics are not written')
        _finish_meta(writer, source, keys, skipped, stats, mean, std)
    finally:
        writer.close()
    if mean is not None:
        save_statistics(summary, out_dir, name, mean, std)
    _publish(partial, final, log)
    log(format_conversion_summary(summary, json_path))
    return summary


def _start_or_check_meta(writer: LMDBWriter, source: Dict[str, Any], partial: str) -> None:
    """Write the "incomplete" meta of a new conversion, or check a resumed one's source."""
    meta_raw = writer.get(META_KEY)
    if meta_raw is None:
        writer.put(META_KEY, json.dumps(dict(format=FORMAT_NAME, version=VERSION,
                                             source=source, complete=False)).encode())
        writer.commit()
        return
    check_same_source(json.loads(meta_raw.decode()).get('source', {}), source, partial)


def _write_records(writer: LMDBWriter, json_path: str, build: Callable[[int, str], bytes],
                   progress: bool, log: Callable[[str], None]
                   ) -> Tuple[List[str], int, List[Tuple[int, str]]]:
    """Write the record of every JSON line not yet in the LMDB.

    Returns:
        the sorted keys of all records, how many were already there, and the skipped
        ``(line, reason)`` pairs.
    """
    done = set(writer.record_keys())
    total = sum(1 for _ in iter_json_list(json_path))
    skipped: List[Tuple[int, str]] = []
    reused = 0
    for line_no, text in with_progress(iter_json_list(json_path), total, progress, sys.stderr):
        key = f'{line_no:08d}'          # the record key: the zero-padded line number
        if key in done:
            reused += 1
        else:
            try:
                record = build(line_no, text)
            except (AnnotationError, RecordError, OSError) as err:
                skipped.append((line_no, str(err)))
                log(f'\n{json_path} line {line_no}: skipped: {err}')
            else:
                writer.put(key.encode(), record)
                done.add(key)
    writer.commit()
    return sorted(done, key=int), reused, skipped


def _finish_meta(writer: LMDBWriter, source: Dict[str, Any], keys: List[str],
                 skipped: List[Tuple[int, str]], stats: Dict[str, Any],
                 mean: Optional[np.ndarray], std: Optional[np.ndarray]) -> None:
    """The key list, length and "complete" meta of a finished conversion."""
    meta = dict(format=FORMAT_NAME, version=VERSION, source=source, complete=True,
                skipped=skipped, images=len(keys), faces=stats['faces'],
                faces_without_pose=stats['faces_without_pose'],
                pose_mean=None if mean is None else mean.tolist(),
                pose_stddev=None if std is None else std.tolist())
    writer.put(KEYS_KEY, json.dumps(keys).encode())
    writer.put(LEN_KEY, str(len(keys)).encode())
    writer.put(META_KEY, json.dumps(meta).encode())


def _publish(partial: str, final: str, log: Callable[[str], None]) -> None:
    """Rename the finished ``.partial`` LMDB into place (replacing an older one)."""
    if osp.exists(final):
        log(f'replacing the previous {final}')
        old = f'{final}.old{os.getpid()}'
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old)
    else:
        os.replace(partial, final)


def _warn_ignored_pose_para(json_path: str, labelling: str,
                            log: Callable[[str], None]) -> None:
    """Warn when the first line carries 300W-LP angles that ``labelling`` ignores."""
    if labelling == 'pose_para':
        return
    for line_no, text in iter_json_list(json_path):
        try:
            entry = json.loads(text)
        except json.JSONDecodeError:
            return
        if isinstance(entry, dict) and entry.get('pose_para') is not None:
            log(f'warning: {json_path} line {line_no} has "pose_para" (300W-LP angles), '
                f"which labelling {labelling!r} ignores; label with labelling='pose_para' "
                '(--labelling pose_para) to use them')
        return


def _already_done(final: str, source: Dict[str, Any], out_dir: str, name: str, train: bool,
                  json_path: str, log: Callable[[str], None]) -> Dict[str, Any]:
    """``resume`` on a finished conversion: check it matches, (re)write the statistics."""
    env = open_lmdb_readonly(final)
    try:
        with env.begin() as txn:
            keys = read_keys(txn, final)
            raw = txn.get(META_KEY)
        meta = json.loads(bytes(raw).decode()) if raw is not None else {}
        check_same_source(meta.get('source', {}), source, final,
                          'run without resume to rebuild it')
        stats = collect_statistics(env, keys)
    finally:
        env.close()
    summary = make_summary(final, keys, len(keys), stats,
                           [tuple(s) for s in meta.get('skipped', [])])
    if train and len(stats['local_poses']):
        save_statistics(summary, out_dir, name, *pose_statistics(stats['local_poses']))
    log(f'{final} is already complete')
    log(format_conversion_summary(summary, json_path))
    return summary


__all__ = ['convert', 'build_record']
