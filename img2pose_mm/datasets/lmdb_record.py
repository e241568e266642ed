"""The face-pose LMDB: record layout and safe (pickle-free) serialisation.

An LMDB directory ``<name>.lmdb`` holds one record per image under a string key
(the zero-padded line number of the JSON list it came from) plus three meta keys:

* ``__keys__`` — JSON list of the record keys, in JSON-list order;
* ``__len__``  — the number of records, as decimal text;
* ``__meta__`` — JSON: format name and version, source, reference points, counts.

A record is::

    b'I2PM' | version (1 byte) | header length (uint32 LE) | header (UTF-8 JSON)
            | arrays (np.savez bytes, loaded with allow_pickle=False) | image bytes

The header holds ``image_path``, ``height``, ``width``, ``line``, ``arrays_size``,
``image_size``. The arrays are ``bboxes`` (N, 4, checked: clipped, integer corners with
the original's labelling; with ``labelling='pose_para'`` the roll-aware box of the
landmarks for faces with a pose), ``poses`` (N, 6, global), ``local_poses`` (N, 6,
box-local: w.r.t. ``bboxes`` with the original's labelling and with
``labelling='pose_para'``, w.r.t. the pose's own box with ``labelling='image'``),
``landmarks`` (N, M, 2), ``pose_valid`` (N,), ``pose_status`` (N,), ``faces`` (N,, the
faces' indices in the JSON line), ``dropped`` and
``dropped_reasons`` (faces left out for their box) and optionally ``pose_para`` (N, 3:
pitch, yaw, roll in radians, the 300W-LP angles of the JSON list). Faces without a pose hold -9 in every
pose field (written and read by :class:`~img2pose_mm.structures.FacePoses`).
Nothing is unpickled when reading, so an LMDB from an untrusted source cannot run code.
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
    """Serialise one image record (see the module docstring)."""
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
