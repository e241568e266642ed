"""The LMDB side of the JSON -> LMDB conversion: batched writes, the statistics read
back from the records, the pose statistics files and the conversion summary."""
from __future__ import annotations

import io
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from img2pose_mm.structures import FacePoses
from img2pose_mm.utils import atomic_write

from .face_labelling import BOX_PROBLEMS, POSE_STATUS
from .lmdb_record import decode_record, is_meta_key

_INITIAL_MAP_SIZE = 1 << 30


class LMDBWriter:
    """Batched LMDB writes that grow the map when it is full."""

    def __init__(self, path: str, commit_every: int):
        import lmdb
        self._lmdb = lmdb
        self.env = lmdb.open(path, map_size=_INITIAL_MAP_SIZE, subdir=True, meminit=False,
                             max_dbs=0)
        self.commit_every = max(1, int(commit_every))
        self.pending: List[Tuple[bytes, bytes]] = []

    def put(self, key: bytes, value: bytes) -> None:
        """Queue one record; commit when ``commit_every`` are queued."""
        self.pending.append((key, value))
        if len(self.pending) >= self.commit_every:
            self.commit()

    def commit(self) -> None:
        """Write the queued records (doubling the map size while it is full)."""
        while self.pending:
            try:
                with self.env.begin(write=True) as txn:
                    for key, value in self.pending:
                        txn.put(key, value)
                self.pending = []
            except self._lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()['map_size'] * 2)

    def get(self, key: bytes) -> Optional[bytes]:
        """The committed value of ``key`` or ``None``."""
        with self.env.begin() as txn:
            value = txn.get(key)
        return None if value is None else bytes(value)

    def record_keys(self) -> List[str]:
        """Keys of the committed records (meta keys left out)."""
        with self.env.begin() as txn:
            return [bytes(k).decode() for k in txn.cursor().iternext(keys=True, values=False)
                    if not is_meta_key(k)]

    def close(self) -> None:
        """Commit, sync and close."""
        self.commit()
        self.env.sync()
        self.env.close()


def collect_statistics(env, keys: Sequence[str]) -> Dict[str, Any]:
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


def pose_statistics(local_poses: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (numpy's, ``ddof=0``) of local poses ``(K, 6)``."""
    local_poses = np.asarray(local_poses, dtype=np.float64).reshape(-1, 6)
    if len(local_poses) == 0:
        raise ValueError('no face with a pose: pose statistics are undefined')
    return local_poses.mean(0), local_poses.std(0)


def save_statistics(summary: Dict[str, Any], out_dir: str, name: str, mean: np.ndarray,
                    std: np.ndarray) -> None:
    """Write ``<name>_pose_mean.npy`` / ``<name>_pose_stddev.npy``; note them in ``summary``."""
    for key, array in (('pose_mean', mean), ('pose_stddev', std)):
        summary[key] = osp.join(out_dir, f'{name}_{key}.npy')
        buf = io.BytesIO()
        np.save(buf, array)
        atomic_write(summary[key], buf.getvalue())


def make_summary(final: str, keys: Sequence[str], reused: int, stats: Dict[str, Any],
                 skipped: List[Tuple[int, str]]) -> Dict[str, Any]:
    """The summary dict that :func:`~img2pose_mm.datasets.lmdb_converter.convert` returns."""
    return dict(lmdb=final, images=len(keys), reused=reused, faces=stats['faces'],
                faces_without_pose=stats['faces_without_pose'],
                without_pose_reasons=stats['without_pose_reasons'],
                faces_without_pose_records=stats['faces_without_pose_records'],
                dropped_faces=stats['dropped_faces'], skipped=skipped, pose_mean=None,
                pose_stddev=None)


def format_conversion_summary(summary: Dict[str, Any], json_path: str = '',
                              max_examples: int = 10) -> str:
    """Human-readable summary of a JSON -> LMDB conversion."""
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


__all__ = ['LMDBWriter', 'collect_statistics', 'pose_statistics', 'save_statistics',
           'make_summary', 'format_conversion_summary']
