"""The face-pose LMDB: record layout (docs/datasets.md) and safe (pickle-free)
serialisation: nothing is unpickled when reading.
"""
from __future__ import annotations

import io
import json
import os
import struct
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

MAGIC = b'I2PM'
VERSION = 1
FORMAT_NAME = 'img2pose_mm.face_pose_lmdb'
KEYS_KEY = b'__keys__'
LEN_KEY = b'__len__'
META_KEY = b'__meta__'
_PREFIX = struct.Struct('<4sBI')

Buffer = Union[bytes, bytearray, memoryview]


class RecordError(ValueError):
    """A record of the face-pose LMDB that cannot be decoded."""


def is_meta_key(key: Union[bytes, str]) -> bool:
    """Whether ``key`` is one of the meta keys (``__...__``) rather than a record."""
    key = key.encode() if isinstance(key, str) else bytes(key)
    return key.startswith(b'__')


def encode_record(header: Dict[str, Any], arrays: Dict[str, np.ndarray],
                  image_bytes: bytes) -> bytes:
    """Serialise one image record (docs/datasets.md)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    array_bytes = buf.getvalue()
    header = dict(header, arrays_size=len(array_bytes), image_size=len(image_bytes))
    header_bytes = json.dumps(header, sort_keys=True).encode('utf-8')
    return b''.join([_PREFIX.pack(MAGIC, VERSION, len(header_bytes)), header_bytes,
                     array_bytes, bytes(image_bytes)])


def decode_record(data: Buffer, key: str = '?', with_arrays: bool = True,
                  with_image: bool = True
                  ) -> Tuple[Dict[str, Any], Optional[Dict[str, np.ndarray]], Optional[bytes]]:
    """Parse a record into ``(header, arrays, image_bytes)``.

    ``arrays`` / ``image_bytes`` are ``None`` when not requested; only the requested
    parts are copied out of ``data`` (which may be an LMDB buffer).

    Raises:
        RecordError: naming ``key`` when the record is malformed.
    """
    view = memoryview(data)
    if len(view) < _PREFIX.size:
        raise RecordError(f'LMDB record {key!r}: too short ({len(view)} bytes)')
    magic, version, header_len = _PREFIX.unpack(view[:_PREFIX.size])
    if magic != MAGIC:
        raise RecordError(f'LMDB record {key!r}: not an img2pose_mm face-pose record')
    if version != VERSION:
        raise RecordError(f'LMDB record {key!r}: unsupported record version {version}')
    start = _PREFIX.size
    try:
        header = json.loads(bytes(view[start:start + header_len]).decode('utf-8'))
        arrays_size, image_size = int(header['arrays_size']), int(header['image_size'])
    except (ValueError, KeyError, TypeError) as err:
        raise RecordError(f'LMDB record {key!r}: bad header ({err})') from None
    a0 = start + header_len
    i0 = a0 + arrays_size
    if i0 + image_size != len(view):
        raise RecordError(f'LMDB record {key!r}: size mismatch (header says '
                          f'{i0 + image_size} bytes, record has {len(view)})')
    arrays = None
    if with_arrays:
        try:
            with np.load(io.BytesIO(bytes(view[a0:i0])), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except Exception as err:
            raise RecordError(f'LMDB record {key!r}: bad annotation arrays ({err})') from None
    image = bytes(view[i0:]) if with_image else None
    return header, arrays, image


def open_lmdb_readonly(path: str):
    """Open a face-pose LMDB for reading (no lock file, safe with many reader processes)."""
    import lmdb
    return lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False,
                     max_readers=512)


_SHARED_ENVS: Dict[Tuple[str, int, int], Tuple[int, Any]] = {}


def shared_readonly_env(path: str):
    """A read-only environment of ``path`` shared by everything in this process.

    py-lmdb refuses to open one LMDB twice in a process, and an environment must not be
    used across ``fork``: environments are cached per (file, process); one inherited
    from the parent process is closed and reopened (so dataloader workers, persistent or
    not, each get their own).
    """
    real = os.path.realpath(path)
    try:
        stat = os.stat(os.path.join(real, 'data.mdb'))
    except OSError:
        raise FileNotFoundError(f'not an LMDB folder (no data.mdb): {path}') from None
    key = (real, stat.st_dev, stat.st_ino)
    pid = os.getpid()
    entry = _SHARED_ENVS.get(key)
    if entry is not None:
        if entry[0] == pid:
            return entry[1]
        try:
            entry[1].close()      # the parent's: its mapping is a copy, closing it is local
        except Exception:
            pass
    env = open_lmdb_readonly(real)
    _SHARED_ENVS[key] = (pid, env)
    return env


def read_keys(txn, path: str) -> list:
    """The record keys of an open LMDB (``__keys__``), checking ``__len__`` agrees."""
    raw = txn.get(KEYS_KEY)
    if raw is None:
        raise RecordError(f'{path}: no {KEYS_KEY.decode()} entry: not a complete face-pose '
                          'LMDB (an interrupted conversion is left as <name>.lmdb.partial)')
    try:
        keys = json.loads(bytes(raw).decode('utf-8'))
    except ValueError as err:
        raise RecordError(f'{path}: bad {KEYS_KEY.decode()} entry ({err})') from None
    length = txn.get(LEN_KEY)
    if length is not None and int(bytes(length)) != len(keys):
        raise RecordError(f'{path}: __len__ = {int(bytes(length))} but {len(keys)} keys')
    return [str(k) for k in keys]


__all__ = ['MAGIC', 'VERSION', 'FORMAT_NAME', 'KEYS_KEY', 'LEN_KEY', 'META_KEY', 'RecordError',
           'is_meta_key', 'encode_record', 'decode_record', 'open_lmdb_readonly',
           'shared_readonly_env', 'read_keys']
