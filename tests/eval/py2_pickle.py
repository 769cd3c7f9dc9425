"""Write pickles the way Python 2 did, for tests of files like DALY's.

Python 3 never emits Python 2's byte-string opcodes, so the bytes are
assembled here: protocol 2, ``str`` as SHORT_BINSTRING/BINSTRING (latin-1
bytes), numpy arrays as numpy 1 on Python 2 pickled them (``numpy.core``
globals, raw data as a byte string).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np


def dumps_py2(value: Any) -> bytes:
    return b"\x80\x02" + _dump(value) + b"."


def _dump(value: Any) -> bytes:
    if value is None:
        return b"N"
    if value is True:
        return b"\x88"
    if value is False:
        return b"\x89"
    if isinstance(value, int):
        return b"J" + struct.pack("<i", value)
    if isinstance(value, float):
        return b"G" + struct.pack(">d", value)
    if isinstance(value, (str, bytes)):
        return _byte_string(value.encode("latin-1") if isinstance(value, str) else value)
    if isinstance(value, tuple):
        return b"(" + b"".join(_dump(item) for item in value) + b"t"
    if isinstance(value, list):
        return b"]" + b"".join(_dump(item) + b"a" for item in value)
    if isinstance(value, dict):
        return b"}" + b"".join(_dump(key) + _dump(item) + b"s" for key, item in value.items())
    if isinstance(value, np.ndarray):
        return _array(value)
    raise TypeError(f"no Python 2 form for {type(value).__name__}")


def _byte_string(data: bytes) -> bytes:
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<i", len(data)) + data


def _dtype(dtype: np.dtype) -> bytes:
    code = f"{dtype.kind}{dtype.itemsize}".encode()
    state = (3, "<", None, None, None, -1, -1, 0)
    return b"cnumpy\ndtype\n" + _byte_string(code) + b"K\x00K\x01\x87R" + _dump(state) + b"b"


def _array(array: np.ndarray) -> bytes:
    little_endian = array.astype(array.dtype.newbyteorder("<"), copy=False)
    rebuild = (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + _dump((0,))
        + _byte_string(b"b")
        + b"\x87R"
    )
    state = (
        b"(K\x01"
        + _dump(tuple(int(size) for size in array.shape))
        + _dtype(little_endian.dtype)
        + b"\x89"
        + _byte_string(little_endian.tobytes())
        + b"t"
    )
    return rebuild + state + b"b"


def dumps_py2_array(dtype_code: str, shape: tuple[int, ...], raw: bytes) -> bytes:
    """A Python 2 pickle of one array with a given dtype code and raw data, as a
    hostile or damaged file could hold it (the data need not fit the dtype)."""
    state = (
        b"(K\x01"
        + _dump(shape)
        + b"cnumpy\ndtype\n"
        + _byte_string(dtype_code.encode())
        + b"K\x00K\x01\x87R"
        + _dump((3, "|", None, None, None, -1, -1, 0))
        + b"b"
        + b"\x89"
        + _byte_string(raw)
        + b"t"
    )
    rebuild = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + _dump((0,))
    return b"\x80\x02" + rebuild + _byte_string(b"b") + b"\x87R" + state + b"b."
