"""Reading annotation pickles without letting them run code.

Two benchmark releases ship their annotations as pickles (DALY's
``daly1.1.0.pkl``, V-HICO's ``gt_bbox_test.json``), and ``pickle.load`` calls
whatever a file names. A dataset downloaded from a mirror must not be able to
do that, so every pickle is read here with an unpickler that resolves only the
globals plain data needs and refuses everything else before it can be called:

- ``set``, ``frozenset``, ``complex``, ``bytes``, ``bytearray``: containers
  and values that have no opcode of their own in older protocols;
- ``_codecs.encode`` with the latin-1 codec only, which is how protocol 0-2
  pickles written by Python 3 store ``bytes``;
- the numpy globals that rebuild arrays, dtypes and scalars
  (``numpy.ndarray``, ``numpy.dtype``, ``multiarray._reconstruct``,
  ``multiarray.scalar``, ``numeric._frombuffer``, under ``numpy.core`` and
  ``numpy._core``).

The numpy globals are not handed out as themselves: ``numpy.ndarray`` called
with a buffer and an object dtype makes an array of pointers read from the
file, which crashes the interpreter on first use. They resolve to inert
stand-ins that only record what the file asks for; once the whole file is
read, arrays are built with ``numpy.frombuffer`` from a dtype that must be a
plain numeric, boolean or string type of the right byte length (object
arrays only from the list of items they are pickled as). Structured,
datetime and subclassed arrays are refused.

Python 2 pickles (DALY) hold byte strings, decoded as latin-1 by default:
latin-1 maps every byte to one character, which keeps array data intact.
Globals are checked under their Python 3 names (``__builtin__.eval`` is
``builtins.eval``), which is also how refusals name them.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import os
import pickle
import re
from pathlib import Path
from typing import Any, cast

import numpy as np

from vgem.errors import DatasetError, os_error_text

_NUMPY_CORES = ("numpy.core", "numpy._core")
_PLAIN_DTYPE = re.compile(r"b1|[iu][1248]|f(2|4|8|16)|c(8|16|32)|[SU]\d+|O[48]")
_BYTE_ORDERS = ("<", ">", "|", "=")


def safe_load(path: str | os.PathLike[str], *, encoding: str = "latin1") -> Any:
    """The plain data held in a pickle file.

    Raises ``DatasetError`` when the file cannot be read, is not a pickle, or
    names anything but plain data (the message names the refused global).
    """
    pickle_path = Path(path)
    try:
        data = pickle_path.read_bytes()
    except OSError as error:
        raise DatasetError(f"Cannot read {pickle_path}: {os_error_text(error)}.") from error
    return safe_loads(data, source=pickle_path.name, encoding=encoding)


def safe_loads(data: bytes, *, source: str = "<bytes>", encoding: str = "latin1") -> Any:
    """The plain data held in pickled bytes; ``source`` names them in errors."""
    unpickler = _PlainDataUnpickler(io.BytesIO(data), source=source, encoding=encoding)
    try:
        return _materialize(unpickler.load(), {})
    except DatasetError:
        raise
    except Exception as error:  # any failure of a foreign file means "unreadable"
        raise DatasetError(
            f"{source} is not a readable pickle ({type(error).__name__}: {error})."
        ) from error


class _PlainDataUnpickler(pickle.Unpickler):
    """An unpickler whose only reachable globals are those of plain data."""

    def __init__(self, file: io.BytesIO, *, source: str, encoding: str) -> None:
        super().__init__(file, fix_imports=True, encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        module, name = _python3_name(module, name)
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise DatasetError(
                f"Refused to unpickle {module}.{name} from {self._source}: annotation files "
                "may only hold plain data (containers, numbers, strings, numpy arrays)."
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise DatasetError(
            f"Refused a persistent reference in {self._source}: annotation files "
            "may only hold plain data."
        )


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """The Python 3 spelling of a global that a protocol 0-2 pickle names."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _PickledDtype:
    """Stands for ``numpy.dtype(code, align, copy)`` plus its pickled state."""

    def __init__(self, code: Any = None, align: Any = False, copy: Any = False) -> None:
        self.code = code
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _PickledArray:
    """Stands for an array made by ``multiarray._reconstruct`` then given its state."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _PickledScalar:
    """Stands for ``multiarray.scalar(dtype, data)``."""

    def __init__(self, dtype: Any, data: Any = None) -> None:
        self.dtype = dtype
        self.data = data


class _PickledBuffer:
    """Stands for ``numeric._frombuffer(buffer, dtype, shape, order)`` (protocol 5)."""

    def __init__(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> None:
        self.buffer = buffer
        self.dtype = dtype
        self.shape = shape
        self.order = order


def _reconstruct(subtype: Any, shape: Any = None, typecode: Any = None) -> _PickledArray:
    if subtype is not _PickledArray:
        raise DatasetError("only plain numpy arrays can be unpickled, not subclasses")
    return _PickledArray()


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 pickles use it for bytes, and nothing more."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DatasetError("_codecs.encode may only turn text into latin-1 bytes")
    return text.encode("latin-1")


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytes"): bytes,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy", "ndarray"): _PickledArray,
    ("numpy", "dtype"): _PickledDtype,
}
for _core in _NUMPY_CORES:
    _ALLOWED_GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED_GLOBALS[(f"{_core}.multiarray", "scalar")] = _PickledScalar
    _ALLOWED_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _PickledBuffer


def _materialize(value: Any, memo: dict[int, Any]) -> Any:
    """The loaded structure with every numpy stand-in replaced by the real thing.

    ``memo`` keeps objects the file shares (or makes recursive) shared.
    """
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, dict):
        mapping: dict[Any, Any] = {}
        memo[key] = mapping
        for item_key, item in value.items():
            mapping[_materialize(item_key, memo)] = _materialize(item, memo)
        return mapping
    if isinstance(value, list):
        items: list[Any] = []
        memo[key] = items
        items.extend(_materialize(item, memo) for item in value)
        return items
    result: Any
    if isinstance(value, (tuple, set, frozenset)):
        result = type(value)(_materialize(item, memo) for item in value)
    elif isinstance(value, _PickledArray):
        result = _array(value, memo)
    elif isinstance(value, _PickledBuffer):
        result = _array_from_buffer(value)
    elif isinstance(value, _PickledScalar):
        result = _scalar(value)
    elif isinstance(value, _PickledDtype):
        result = _dtype(value)
    else:
        return value
    memo[key] = result
    return result


def _dtype(pickled: Any) -> np.dtype:
    if not isinstance(pickled, _PickledDtype):
        raise DatasetError("a numpy array in the file has no proper dtype")
    code, state = pickled.code, pickled.state
    if not (isinstance(code, str) and _PLAIN_DTYPE.fullmatch(code)):
        raise DatasetError(f"numpy dtype {code!r} is not a plain numeric or string type")
    dtype = np.dtype(code)
    if state is None:
        return dtype
    # (version, byte order, subarray, field names, fields, item size, alignment, flags[, metadata])
    if not (isinstance(state, tuple) and len(state) >= 7 and state[0] in (2, 3, 4)):
        raise DatasetError(f"numpy dtype {code!r} has an unexpected pickled state")
    byte_order, subarray, names, fields, item_size = state[1:6]
    if subarray is not None or names is not None or fields is not None or any(state[8:]):
        raise DatasetError("structured or annotated numpy dtypes are not supported")
    if byte_order not in _BYTE_ORDERS:
        raise DatasetError(f"numpy dtype {code!r} has byte order {byte_order!r}")
    if byte_order in ("<", ">") and dtype.byteorder != "|":
        dtype = dtype.newbyteorder(byte_order)
    if item_size not in (-1, dtype.itemsize):
        raise DatasetError(f"numpy dtype {code!r} claims {item_size!r} bytes per item")
    return dtype


def _shape(value: Any) -> tuple[int, ...]:
    def is_size(size: Any) -> bool:
        return isinstance(size, int) and not isinstance(size, bool) and size >= 0

    if not (isinstance(value, tuple) and all(is_size(size) for size in value)):
        raise DatasetError(f"a numpy array in the file has shape {value!r}")
    return value


def _raw_bytes(data: Any) -> bytes:
    if isinstance(data, str):  # a Python 2 byte string, decoded as latin-1
        return data.encode("latin-1")
    if isinstance(data, (bytes, bytearray, memoryview, pickle.PickleBuffer)):
        return bytes(data)
    raise DatasetError(f"numpy array data is {type(data).__name__}, not bytes")


def _from_bytes(data: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> np.ndarray:
    if dtype.hasobject:
        raise DatasetError("numpy object arrays cannot be rebuilt from raw bytes")
    raw = _raw_bytes(data)
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetError(f"numpy array data has {len(raw)} bytes where {expected} are needed")
    flat = np.frombuffer(raw, dtype=dtype).copy()
    return flat.reshape(shape, order="F" if fortran else "C")


def _array(pickled: _PickledArray, memo: dict[int, Any]) -> np.ndarray:
    state = pickled.state
    if not (isinstance(state, tuple) and len(state) == 5):
        raise DatasetError("a numpy array in the file has no proper state")
    _, shape, pickled_dtype, fortran, data = state
    shape, dtype = _shape(shape), _dtype(pickled_dtype)
    if not dtype.hasobject:
        return _from_bytes(data, dtype, shape, bool(fortran))
    if not isinstance(data, list):
        raise DatasetError("numpy object arrays must list their items, not hold raw bytes")
    if len(data) != math.prod(shape):
        raise DatasetError("a numpy object array in the file has the wrong number of items")
    array = np.empty(len(data), dtype=object)
    for index, item in enumerate(data):
        array[index] = _materialize(item, memo)
    return array.reshape(shape, order="F" if fortran else "C")


def _array_from_buffer(pickled: _PickledBuffer) -> np.ndarray:
    if pickled.order not in ("C", "F"):
        raise DatasetError(f"a numpy array in the file has order {pickled.order!r}")
    shape, dtype = _shape(pickled.shape), _dtype(pickled.dtype)
    return _from_bytes(pickled.buffer, dtype, shape, pickled.order == "F")


def _scalar(pickled: _PickledScalar) -> np.generic:
    dtype = _dtype(pickled.dtype)
    # Indexing a 0-d array with () yields its numpy scalar (never an object:
    # _from_bytes refuses object dtypes); numpy's stubs only say ndarray.
    return cast(np.generic, _from_bytes(pickled.data, dtype, (), False)[()])
