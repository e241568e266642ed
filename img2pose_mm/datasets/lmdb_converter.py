"""Convert an img2pose JSON list into a face-pose LMDB (the engine of
``tools/dataset_converters/json_to_lmdb.py``).

Per image: the encoded image bytes as they are in the file, and per face the EPnP
global pose (camera of the full image), the box built from it, the pose local to that
box and the landmarks (layout: :mod:`img2pose_mm.datasets.lmdb_record`). With
``train=True`` the mean and standard deviation of the local poses of all faces with a
pose are written next to the LMDB as ``<name>_pose_mean.npy`` / ``<name>_pose_stddev.npy``.

The LMDB is written as ``<name>.lmdb.partial`` and renamed to ``<name>.lmdb`` only when
complete; ``resume=True`` keeps the records an interrupted run had committed. Bad lines
(malformed JSON, missing or corrupt image, ...) are reported with their line number and
skipped.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
import shutil
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from img2pose_mm.structures import FaceModel, FaceModelLike, FacePoses

from .face_annotations import (
    BOX_PROBLEMS,
    LABELLING_MODES,
    MIN_POSE_BOX_IOU,
    POSE_STATUS,
    AnnotationError,
    annotate_image,
    decode_image,
    iter_json_list,
    parse_json_line,
    pose_statistics,
    read_image_bytes,
    resolve_image_path,
    save_array_atomic,
)
from .lmdb_record import (
    FORMAT_NAME,
    KEYS_KEY,
    LEN_KEY,
    META_KEY,
    VERSION,
    RecordError,
    decode_record,
    encode_record,
    is_meta_key,
    open_lmdb_readonly,
    read_keys,
)

_INITIAL_MAP_SIZE = 1 << 30


def _sha1_file(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def record_key(line_no: int) -> str:
    """LMDB key of the record made from line ``line_no`` (1-based) of the JSON list."""
    return f'{line_no:08d}'


def build_record(line_no: int, text: str, json_path: str, image_root: Optional[str],
                 face_model: FaceModelLike = None, keep_reference_poses: bool = True,
                 labelling: str = 'box', min_pose_iou: float = MIN_POSE_BOX_IOU,
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
    if faces['scores'] is not None:
        arrays['scores'] = faces['scores']
    if keep_reference_poses and faces['poses_reference'] is not None:
        arrays['gt_poses_reference'] = faces['poses_reference']
    if faces['pose_para'] is not None:
        arrays['pose_para'] = faces['pose_para']
    header = dict(image_path=path, source_image_path=ann['image_path'], height=int(height),
                  width=int(width), line=int(line_no))
    return encode_record(header, arrays, img_bytes)


class _Writer:
    """Batched LMDB writes that grow the map when it is full."""

    def __init__(self, path: str, commit_every: int):
        import lmdb
        self._lmdb = lmdb
        self.env = lmdb.open(path, map_size=_INITIAL_MAP_SIZE, subdir=True, meminit=False,
                             max_dbs=0)
        self.commit_every = max(1, int(commit_every))
        self.pending: List[Tuple[bytes, bytes]] = []

    def put(self, key: bytes, value: bytes) -> None:
        self.pending.append((key, value))
        if len(self.pending) >= self.commit_every:
            self.commit()

    def commit(self) -> None:
        while self.pending:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in self.pending:
                        txn.put(key, value)
                self.pending = []
            except self._lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()['map_size'] * 2)

    def get(self, key: bytes) -> Optional[bytes]:
        with self.env.begin() as txn:
            value = txn.get(key)
        return None if value is None else bytes(value)

    def record_keys(self) -> List[str]:
        with self.env.begin() as txn:
            return [bytes(k).decode() for k in txn.cursor().iternext(keys=True, values=False)
                    if not is_meta_key(k)]

    def close(self) -> None:
        self.commit()
        self.env.sync()
        self.env.close()


def _collect(env, keys: Sequence[str]) -> Dict[str, Any]:
    """Counts and the valid local poses over every record of the LMDB."""
    faces = no_pose = 0
    status = np.zeros(len(POSE_STATUS), dtype=np.int64)
    local: List[np.ndarray] = []
    missing: List[Tuple[int, int]] = []
    dropped: List[Tuple[int, int, str]] = []
    with env.begin(buffers=True) as txn:
        for key in keys:
            header, arrays, _ = decode_record(txn.get(key.encode()), key, with_image=False)
            valid = arrays['pose_valid'].astype(bool)
            faces += len(valid)
            no_pose += int((~valid).sum())
            status += np.bincount(arrays['pose_status'].astype(np.int64),
                                  minlength=len(POSE_STATUS))[:len(POSE_STATUS)]
            local_poses = FacePoses.from_numpy(arrays['local_poses'],
                                               (header['height'], header['width']), valid,
                                               torch.float64)
            local.append(local_poses.tensor[local_poses.valid].numpy())
            index = arrays.get('faces', np.arange(len(valid)))      # index in the JSON line
            missing.extend((int(header['line']), int(index[i])) for i in np.flatnonzero(~valid))
            dropped.extend((int(header['line']), int(i), BOX_PROBLEMS[int(r)]) for i, r in
                           zip(arrays.get('dropped', ()), arrays.get('dropped_reasons', ())))
    return dict(faces=faces, faces_without_pose=no_pose,
                without_pose_reasons={POSE_STATUS[i]: int(n) for i, n in enumerate(status)
                                      if i > 0 and n},
                faces_without_pose_records=missing, dropped_faces=dropped,
                local_poses=np.concatenate(local) if local else np.zeros((0, 6)))


def convert(json_path: str, out_dir: str, name: str, train: bool = False,
            resume: bool = False, image_root: Optional[str] = None, *,
            face_model: FaceModelLike = None, labelling: str = 'box',
            min_pose_iou: float = MIN_POSE_BOX_IOU, keep_images_without_pose: bool = False,
            commit_every: int = 100, progress: bool = True, keep_reference_poses: bool = True,
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
        labelling: ``'box'`` (default, the original's: EPnP in the camera of the
            annotated box cast to integers; the stored box-local poses, and so the pose
            statistics, are relative to those boxes), ``'image'`` (EPnP in the full
            image's camera, box-local poses relative to the pose boxes) or
            ``'pose_para'`` (the original's 300W-LP labelling of JSON lists with a
            ``pose_para`` key: rotation from those angles, translation from EPnP in the
            full image's camera, boxes and box-local poses from the roll-aware box of
            the landmarks). See
            :func:`~img2pose_mm.datasets.face_annotations.label_faces`. A list whose
            first line has ``pose_para`` converted with another labelling gets a
            warning (the angles are then ignored).
        min_pose_iou: a pose whose box overlaps its annotated box less is implausible
            and the face gets no pose.
        keep_images_without_pose: keep images where no face has a pose (the original
            skips them; they are reported as skipped).
        commit_every: records per LMDB transaction.
        progress: show a progress bar.
        keep_reference_poses: store a ``poses`` key of the JSON as ``gt_poses_reference``.
        log: where messages go (default: ``print`` to stderr).

    Returns:
        A summary dict: ``lmdb``, ``images``, ``reused``, ``faces``,
        ``faces_without_pose``, ``without_pose_reasons``, ``faces_without_pose_records``
        (``(line, face index)`` pairs), ``dropped_faces`` (``(line, face index, reason)``
        of faces whose box is unusable, see
        :func:`~img2pose_mm.datasets.face_annotations.check_boxes`), ``skipped``
        (``(line, reason)`` pairs of this run), ``pose_mean`` / ``pose_stddev`` (paths or
        ``None``).
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    json_path = osp.abspath(json_path)
    if not osp.isfile(json_path):
        raise FileNotFoundError(f'JSON list not found: {json_path}')
    image_root = osp.abspath(image_root) if image_root is not None else None
    os.makedirs(out_dir, exist_ok=True)
    final = osp.join(out_dir, f'{name}.lmdb')
    partial = final + '.partial'
    if labelling not in LABELLING_MODES:
        raise ValueError(f'labelling must be one of {LABELLING_MODES}, got {labelling!r}')
    face_model = FaceModel.build(face_model)
    source = dict(json=json_path, json_sha1=_sha1_file(json_path), image_root=image_root,
                  face_model=repr(face_model), keep_reference_poses=bool(keep_reference_poses),
                  labelling=labelling, min_pose_iou=float(min_pose_iou),
                  keep_images_without_pose=bool(keep_images_without_pose))
    if resume and osp.exists(final) and not osp.exists(partial):
        return _already_done(final, source, out_dir, name, train, json_path, log)
    if osp.exists(partial) and not resume:
        log(f'removing the unfinished {partial} (pass resume=True / --resume to continue it)')
        shutil.rmtree(partial)
    elif resume and not osp.exists(partial):
        log(f'nothing to resume at {partial}: starting a new conversion')
    writer = _Writer(partial, commit_every)
    mean = std = None
    try:
        meta_raw = writer.get(META_KEY)
        if meta_raw is None:
            writer.put(META_KEY, json.dumps(dict(format=FORMAT_NAME, version=VERSION,
                                                 source=source, complete=False)).encode())
            writer.commit()
        else:
            previous = json.loads(meta_raw.decode()).get('source', {})
            changed = sorted(k for k in source if previous.get(k) != source[k])
            if changed:
                raise ValueError(f'cannot resume {partial}: it was made with different '
                                 f'{", ".join(changed)}; delete it or run without resume')
        done = set(writer.record_keys())
        total = sum(1 for _ in iter_json_list(json_path))
        _warn_ignored_pose_para(json_path, labelling, log)
        bar = None
        if progress and total:
            from mmengine.utils import ProgressBar
            bar = ProgressBar(total, file=sys.stderr)
        skipped: List[Tuple[int, str]] = []
        reused = 0
        for line_no, text in iter_json_list(json_path):
            key = record_key(line_no)
            if key in done:
                reused += 1
            else:
                try:
                    record = build_record(line_no, text, json_path, image_root, face_model,
                                          keep_reference_poses, labelling, min_pose_iou,
                                          keep_images_without_pose)
                except (AnnotationError, RecordError, OSError) as err:
                    skipped.append((line_no, str(err)))
                    log(f'\n{json_path} line {line_no}: skipped: {err}')
                else:
                    writer.put(key.encode(), record)
                    done.add(key)
            if bar is not None:
                bar.update()
        writer.commit()
        if bar is not None:
            sys.stderr.write('\n')

        keys = sorted(done, key=int)
        stats = _collect(writer.env, keys)
        summary: Dict[str, Any] = dict(
            lmdb=final, images=len(keys), reused=reused, faces=stats['faces'],
            faces_without_pose=stats['faces_without_pose'],
            without_pose_reasons=stats['without_pose_reasons'],
            faces_without_pose_records=stats['faces_without_pose_records'],
            dropped_faces=stats['dropped_faces'], skipped=skipped, pose_mean=None,
            pose_stddev=None)
        if train:
            if len(stats['local_poses']):
                mean, std = pose_statistics(stats['local_poses'])
            else:
                log('no face has a pose: pose statistics are not written')
        meta = dict(format=FORMAT_NAME, version=VERSION, source=source, complete=True,
                    skipped=skipped, images=len(keys), faces=stats['faces'],
                    faces_without_pose=stats['faces_without_pose'],
                    pose_mean=None if mean is None else mean.tolist(),
                    pose_stddev=None if std is None else std.tolist())
        writer.put(KEYS_KEY, json.dumps(keys).encode())
        writer.put(LEN_KEY, str(len(keys)).encode())
        writer.put(META_KEY, json.dumps(meta).encode())
    finally:
        writer.close()

    if mean is not None:
        _save_statistics(summary, out_dir, name, mean, std)
    if osp.exists(final):
        log(f'replacing the previous {final}')
        old = f'{final}.old{os.getpid()}'
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old)
    else:
        os.replace(partial, final)
    log(format_summary(summary, json_path))
    return summary


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


def _save_statistics(summary: Dict[str, Any], out_dir: str, name: str, mean: np.ndarray,
                     std: np.ndarray) -> None:
    summary['pose_mean'] = osp.join(out_dir, f'{name}_pose_mean.npy')
    summary['pose_stddev'] = osp.join(out_dir, f'{name}_pose_stddev.npy')
    save_array_atomic(summary['pose_mean'], mean)
    save_array_atomic(summary['pose_stddev'], std)


def _already_done(final: str, source: Dict[str, Any], out_dir: str, name: str, train: bool,
                  json_path: str, log: Callable[[str], None]) -> Dict[str, Any]:
    """``resume`` on a finished conversion: check it matches, (re)write the statistics."""
    env = open_lmdb_readonly(final)
    try:
        with env.begin() as txn:
            keys = read_keys(txn, final)
            raw = txn.get(META_KEY)
        meta = json.loads(bytes(raw).decode()) if raw is not None else {}
        changed = sorted(k for k in source if meta.get('source', {}).get(k) != source[k])
        if changed:
            raise ValueError(f'cannot resume: {final} was made with different '
                             f'{", ".join(changed)}; run without resume to rebuild it')
        stats = _collect(env, keys)
    finally:
        env.close()
    summary: Dict[str, Any] = dict(
        lmdb=final, images=len(keys), reused=len(keys), faces=stats['faces'],
        faces_without_pose=stats['faces_without_pose'],
        without_pose_reasons=stats['without_pose_reasons'],
        faces_without_pose_records=stats['faces_without_pose_records'],
        dropped_faces=stats['dropped_faces'],
        skipped=[tuple(s) for s in meta.get('skipped', [])], pose_mean=None, pose_stddev=None)
    if train and len(stats['local_poses']):
        _save_statistics(summary, out_dir, name, *pose_statistics(stats['local_poses']))
    log(f'{final} is already complete')
    log(format_summary(summary, json_path))
    return summary


def format_summary(summary: Dict[str, Any], json_path: str = '', max_examples: int = 10) -> str:
    """Human-readable summary of :func:`convert`."""
    lines = [f'JSON list -> LMDB done: {json_path}',
             f'  images: {summary["images"]}'
             + (f' ({summary["reused"]} kept from the interrupted run)'
                if summary['reused'] else ''),
             f'  faces: {summary["faces"]}',
             f'  faces without pose: {summary["faces_without_pose"]}']
    for reason, count in summary['without_pose_reasons'].items():
        lines.append(f'    {reason}: {count}')
    records = summary['faces_without_pose_records']
    if records:
        shown = ', '.join(f'line {ln} face {i}' for ln, i in records[:max_examples])
        more = f' and {len(records) - max_examples} more' if len(records) > max_examples else ''
        lines.append(f'    ({shown}{more})')
    dropped = summary.get('dropped_faces', [])
    lines.append(f'  faces dropped for their box: {len(dropped)}')
    for line_no, index, reason in dropped[:max_examples]:
        lines.append(f'    line {line_no} face {index}: {reason}')
    if len(dropped) > max_examples:
        lines.append(f'    ... and {len(dropped) - max_examples} more')
    lines.append(f'  skipped images: {len(summary["skipped"])}')
    for line_no, reason in summary['skipped'][:max_examples]:
        lines.append(f'    line {line_no}: {reason}')
    if len(summary['skipped']) > max_examples:
        lines.append(f'    ... and {len(summary["skipped"]) - max_examples} more')
    lines.append(f'  lmdb: {summary["lmdb"]}')
    if summary['pose_mean']:
        lines.append(f'  pose mean: {summary["pose_mean"]}')
        lines.append(f'  pose stddev: {summary["pose_stddev"]}')
    return '\n'.join(lines)


__all__ = ['convert', 'build_record', 'record_key', 'format_summary']
