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

Reading costs memory and time in proportion to the file's size, because a
file from the internet may be built to exhaust them rather than to run code.
The pickle is read by Python's own opcode interpreter (``pickle._Unpickler``,
whose memo is a dict: a 10-byte file naming memo slot 2**31 costs one entry,
not an array of 2**31), with these opcodes taken over:

- lengths are believed only as far as the file goes (``BYTEARRAY8`` would
  otherwise allocate the length it declares);
- the allowed globals are stand-ins that check their arguments:
  ``bytearray(10**9)`` or ``bytes(10**9)`` (a size, not data) is refused;
- every key hashed into a dict or set is first measured, and its size
  charged to a budget of work (a constant plus a multiple of the file's
  size): a tuple that holds the same tuple twice, 24 levels deep, is 55
  bytes on disk and 2**24 items to hash, and is refused before it is hashed;
  so are the probes of keys that share a hash (numbers multiple of 2**61 - 1
  all hash to 0: a dict of 20,000 of them would cost 2 * 10**8 probes);
- ``BUILD`` sets the state of numpy stand-ins only, and ``INST``, ``OBJ``,
  ``NEWOBJ``, ``NEWOBJ_EX`` (which build objects of a named class) are refused.

What the file holds is then measured once as the tree a consumer would walk:
more items than the budget (objects shared over and over), nesting deeper
than ``MAX_DEPTH`` or a structure that contains itself is refused. Only
plain data comes back — ``None``, booleans, numbers, strings, bytes, lists,
tuples, dicts, sets, numpy arrays and scalars — never a class or a function
(a file holding just ``builtins.set`` is refused). Every refusal is one
``DatasetError`` line.
"""

from __future__ import annotations

import _compat_pickle
import io
import math
import os
import pickle
import re
import reprlib
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, cast

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
    budget = _Budget(len(data), source)
    unpickler = _PlainDataUnpickler(
        io.BytesIO(data), source=source, encoding=encoding, budget=budget
    )
    try:
        loaded = unpickler.load()
        size, _ = _size_and_depth(loaded, {}, _parts, source)
        budget.charge(size)
        return _materialize(loaded, {}, source)
    except DatasetError as error:
        if source in str(error):
            raise
        raise DatasetError(f"{source} is not a readable pickle: {error}.") from error
    except Exception as error:  # any failure of a foreign file means "unreadable"
        detail = " ".join(str(error).split())[:200]
        raise DatasetError(
            f"{source} is not a readable pickle ({type(error).__name__}: {detail})."
        ) from error


MAX_DEPTH = 100
"""How deeply a pickle's data may nest (annotation releases nest a handful of levels)."""

_BASE_BUDGET = 1_000_000
_BUDGET_PER_BYTE = 64


class _Budget:
    """The work a file may cost: a constant plus a multiple of its size, in items."""

    def __init__(self, data_size: int, source: str) -> None:
        self.data_size = data_size
        self.left = _BASE_BUDGET + _BUDGET_PER_BYTE * data_size
        self.source = source

    def charge(self, amount: int) -> None:
        self.left -= amount
        if self.left < 0:
            raise DatasetError(
                f"Refused {self.source}: reading it would cost far more memory or time than "
                f"a file of {self.data_size} bytes can need (a pickle built to exhaust them)."
            )


class _PlainDataUnpickler(pickle._Unpickler):
    """An unpickler whose only reachable globals are those of plain data, on a budget."""

    # pickle._Unpickler looks opcodes up in this table; the hardened ones are set below.
    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)
    # Set by pickle._Unpickler.load, which the stubs do not describe.
    read: Callable[[int], bytes]
    stack: list[Any]
    append: Callable[[Any], None]
    pop_mark: Callable[[], list[Any]]

    def __init__(self, file: io.BytesIO, *, source: str, encoding: str, budget: _Budget) -> None:
        super().__init__(file, fix_imports=True, encoding=encoding)
        self._source = source
        self._budget = budget
        self._data_size = budget.data_size
        self._key_sizes: dict[int, tuple[Any, int, int]] = {}
        self._hash_counts: dict[int, dict[int, int]] = {}
        self._counted: dict[int, Any] = {}
        self._globals: dict[tuple[str, str], Any] = {
            **_ALLOWED_GLOBALS,
            ("builtins", "set"): self._make_set,
            ("builtins", "frozenset"): self._make_frozenset,
        }

    def find_class(self, module: str, name: str) -> Any:
        module, name = _python3_name(module, name)
        allowed = self._globals.get((module, name))
        if allowed is None:
            raise DatasetError(
                f"Refused to unpickle {_shown(module)}.{_shown(name)} from {self._source}: "
                "annotation files may only hold plain data (containers, numbers, strings, "
                "numpy arrays)."
            )
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise DatasetError(
            f"Refused a persistent reference in {self._source}: annotation files "
            "may only hold plain data."
        )

    # -- hashing on a budget ---------------------------------------------------

    def _charge_keys(self, keys: Any, container: Any = None) -> None:
        """Measure what hashing ``keys`` costs and charge it, before anything is hashed;
        then charge the probing that keys sharing a hash cost in ``container`` (the
        dict or set they go into; None: a new one built from ``keys`` alone)."""
        for key in keys:
            size, _ = _size_and_depth(key, self._key_sizes, _tuple_parts, self._source)
            self._budget.charge(size)
        self._charge_collisions(keys, container)

    def _charge_collisions(self, keys: Any, container: Any) -> None:
        """Hash flooding: numbers hash to themselves (``hash(k * (2**61 - 1)) == 0``), so
        a file can hold thousands of distinct keys of one hash, and each insertion then
        probes past all the earlier ones: quadratic work from a linear file. Each key
        is charged as many items as keys of its hash already went into the container.
        Strings and bytes are not counted: their hashes are salted per process."""
        if container is None:
            counts: dict[int, int] = {}
        else:
            counts = self._hash_counts.setdefault(id(container), {})
            self._counted[id(container)] = container  # its id is not reused while counted
        for key in keys:
            if isinstance(key, (str, bytes)):
                continue
            value = hash(key)
            earlier = counts.get(value, 0)
            self._budget.charge(earlier)
            counts[value] = earlier + 1

    def _make_set(self, items: Any = ()) -> set[Any]:
        elements = _sequence(items, "set")
        self._charge_keys(elements)
        return set(elements)

    def _make_frozenset(self, items: Any = ()) -> frozenset[Any]:
        elements = _sequence(items, "frozenset")
        self._charge_keys(elements)
        return frozenset(elements)

    def _target(self, kind: type) -> Any:
        target = self.stack[-1]
        if type(target) is not kind:
            raise DatasetError(
                f"{self._source} is not a readable pickle (it adds items to "
                f"{type(target).__name__}, not to a {kind.__name__})."
            )
        return target

    def _load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        target = self._target(dict)
        self._charge_keys((key,), target)
        target[key] = value

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._target(dict)
        self._charge_keys(items[0::2], target)
        for index in range(0, len(items) - 1, 2):
            target[items[index]] = items[index + 1]

    def _load_dict(self) -> None:
        items = self.pop_mark()
        self._charge_keys(items[0::2])
        self.append({items[index]: items[index + 1] for index in range(0, len(items) - 1, 2)})

    def _load_additems(self) -> None:
        items = self.pop_mark()
        target = self._target(set)
        self._charge_keys(items, target)
        target.update(items)

    def _load_frozenset(self) -> None:
        items = self.pop_mark()
        self._charge_keys(items)
        self.append(frozenset(items))

    # -- objects and lengths ------------------------------------------------------

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if not isinstance(target, (_PickledArray, _PickledDtype)):
            raise DatasetError(
                f"Refused to set the state of {type(target).__name__} in {self._source}: "
                "annotation files may only hold plain data."
            )
        target.__setstate__(state)

    def _refuse_object(self) -> None:
        raise DatasetError(
            f"Refused to build an object of a named class in {self._source}: annotation "
            "files may only hold plain data."
        )

    def _load_bytearray8(self) -> None:
        (length,) = struct.unpack("<Q", self.read(8))
        if length > self._data_size:
            raise DatasetError(
                f"{self._source} is not a readable pickle (it declares {length} bytes "
                f"in a file of {self._data_size})."
            )
        self.append(bytearray(self.read(length)))


_OPCODES = {
    pickle.SETITEM: _PlainDataUnpickler._load_setitem,
    pickle.SETITEMS: _PlainDataUnpickler._load_setitems,
    pickle.DICT: _PlainDataUnpickler._load_dict,
    pickle.ADDITEMS: _PlainDataUnpickler._load_additems,
    pickle.FROZENSET: _PlainDataUnpickler._load_frozenset,
    pickle.BUILD: _PlainDataUnpickler._load_build,
    pickle.BYTEARRAY8: _PlainDataUnpickler._load_bytearray8,
    pickle.INST: _PlainDataUnpickler._refuse_object,
    pickle.OBJ: _PlainDataUnpickler._refuse_object,
    pickle.NEWOBJ: _PlainDataUnpickler._refuse_object,
    pickle.NEWOBJ_EX: _PlainDataUnpickler._refuse_object,
}
_PlainDataUnpickler.dispatch.update({code[0]: load for code, load in _OPCODES.items()})


def _shown(name: str) -> str:
    """A name from the file, cut short for a one-line message."""
    return name if len(name) <= 80 else name[:77] + "..."


def _sequence(items: Any, what: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(items, (list, tuple)):
        raise DatasetError(f"{what} may only be made from a list of items")
    return items


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


def _byte_data(what: str, source: Any, encoding: Any) -> bytes:
    """The bytes ``bytes(...)`` / ``bytearray(...)`` make from data in the file, never from
    a size (``bytearray(10**9)`` would allocate what the file only names)."""
    if isinstance(source, str):
        if encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
            raise DatasetError(f"{what} may only decode latin-1, UTF-8 or ASCII text")
        return source.encode(encoding)
    if encoding is not None:
        raise DatasetError(f"{what} takes an encoding only with text")
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, list) and all(type(item) is int for item in source):
        return bytes(source)
    raise DatasetError(f"{what} may only be made from bytes, text or a list of byte values")


def _bytes(source: Any = b"", encoding: Any = None) -> bytes:
    return _byte_data("bytes", source, encoding)


def _bytearray(source: Any = b"", encoding: Any = None) -> bytearray:
    return bytearray(_byte_data("bytearray", source, encoding))


def _complex(real: Any = 0, imag: Any = 0) -> complex:
    for part in (real, imag):
        if not isinstance(part, (int, float, str)) or isinstance(part, bool):
            raise DatasetError("complex may only be made from numbers or text")
    if isinstance(real, str):
        return complex(real)
    return complex(real, imag)


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "complex"): _complex,
    ("builtins", "bytes"): _bytes,
    ("builtins", "bytearray"): _bytearray,
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy", "ndarray"): _PickledArray,
    ("numpy", "dtype"): _PickledDtype,
}
for _core in _NUMPY_CORES:
    _ALLOWED_GLOBALS[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED_GLOBALS[(f"{_core}.multiarray", "scalar")] = _PickledScalar
    _ALLOWED_GLOBALS[(f"{_core}.numeric", "_frombuffer")] = _PickledBuffer


# --------------------------------------------------------------------------- measuring


def _parts(value: Any) -> Iterable[Any] | None:
    """What a consumer walking ``value`` visits next (None for a leaf)."""
    if isinstance(value, (list, tuple, set, frozenset)):
        return value
    if isinstance(value, dict):
        return [part for item in value.items() for part in item]
    if isinstance(value, (_PickledArray, _PickledDtype, _PickledScalar, _PickledBuffer)):
        return list(vars(value).values())
    return None


def _tuple_parts(value: Any) -> Iterable[Any] | None:
    """What hashing ``value`` visits: a tuple's items (a frozenset keeps its items' hashes)."""
    return value if type(value) is tuple else None


def _leaf_cost(value: Any) -> int:
    if isinstance(value, (str, bytes, bytearray)):
        return 1 + len(value) // 64
    if isinstance(value, int):
        return 1 + value.bit_length() // 1024
    if isinstance(value, (set, frozenset)):
        return 1 + len(value)
    return 1


def _size_and_depth(
    root: Any,
    sizes: dict[int, tuple[Any, int, int]],
    parts: Callable[[Any], Iterable[Any] | None],
    source: str,
) -> tuple[int, int]:
    """The items a walk of ``root`` visits (shared parts once per use) and its nesting depth.

    Iterative, so depth costs no recursion; ``sizes`` remembers finished
    containers (keeping them alive, so their ids stay theirs). A structure
    nested deeper than ``MAX_DEPTH`` or containing itself is refused.
    """
    root_parts = parts(root)
    if root_parts is None:
        return _leaf_cost(root), 0
    known = sizes.get(id(root))
    if known is not None:
        return known[1], known[2]
    # frames: [container, its remaining parts, size so far, deepest part so far]
    frames: list[list[Any]] = [[root, iter(root_parts), 1, 0]]
    open_ids = {id(root)}
    while True:
        frame = frames[-1]
        descended = False
        for part in frame[1]:
            sub_parts = parts(part)
            if sub_parts is None:
                frame[2] += _leaf_cost(part)
                continue
            known = sizes.get(id(part))
            if known is not None:
                frame[2] += known[1]
                frame[3] = max(frame[3], known[2])
                continue
            if id(part) in open_ids:
                raise DatasetError(f"Refused {source}: its data contains itself.")
            if len(frames) >= MAX_DEPTH:
                raise DatasetError(
                    f"Refused {source}: its data nests more than {MAX_DEPTH} levels deep."
                )
            open_ids.add(id(part))
            frames.append([part, iter(sub_parts), 1, 0])
            descended = True
            break
        if descended:
            continue
        frames.pop()
        container, _, size, deepest = frame
        open_ids.discard(id(container))
        sizes[id(container)] = (container, size, deepest + 1)
        if not frames:
            return size, deepest + 1
        frames[-1][2] += size
        frames[-1][3] = max(frames[-1][3], deepest + 1)


# --------------------------------------------------------------------------- materializing

_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytes, bytearray)


def _materialize(value: Any, memo: dict[int, Any], source: str = "<bytes>") -> Any:
    """The loaded structure with every numpy stand-in replaced by the real thing.

    ``memo`` keeps objects the file shares shared. Anything that is not plain
    data (a class, a function the file named without calling it) is refused.
    The structure was measured first, so recursion stays within ``MAX_DEPTH``.
    """
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, dict):
        mapping: dict[Any, Any] = {}
        memo[key] = mapping
        for item_key, item in value.items():
            mapping[_materialize(item_key, memo, source)] = _materialize(item, memo, source)
        return mapping
    if isinstance(value, list):
        items: list[Any] = []
        memo[key] = items
        items.extend(_materialize(item, memo, source) for item in value)
        return items
    result: Any
    if isinstance(value, (tuple, set, frozenset)):
        result = type(value)(_materialize(item, memo, source) for item in value)
    elif isinstance(value, _PickledArray):
        result = _array(value, memo, source)
    elif isinstance(value, _PickledBuffer):
        result = _array_from_buffer(value)
    elif isinstance(value, _PickledScalar):
        result = _scalar(value)
    elif isinstance(value, _PickledDtype):
        result = _dtype(value)
    elif type(value) in _PLAIN_LEAVES:
        return value
    else:
        raise DatasetError(
            f"Refused {source}: it holds {_what(value)}, not plain data "
            "(containers, numbers, strings, numpy arrays)."
        )
    memo[key] = result
    return result


def _what(value: Any) -> str:
    if isinstance(value, type) or callable(value):
        return "a class or function itself"
    return f"an object of type {type(value).__name__}"


def _dtype(pickled: Any) -> np.dtype:
    if not isinstance(pickled, _PickledDtype):
        raise DatasetError("a numpy array in the file has no proper dtype")
    code, state = pickled.code, pickled.state
    if not (isinstance(code, str) and _PLAIN_DTYPE.fullmatch(code)):
        raise DatasetError(
            f"numpy dtype {reprlib.repr(code)} is not a plain numeric or string type"
        )
    dtype = np.dtype(code)
    if state is None:
        return dtype
    # (version, byte order, subarray, field names, fields, item size, alignment, flags[, metadata])
    if not (isinstance(state, tuple) and len(state) >= 7 and state[0] in (2, 3, 4)):
        raise DatasetError(f"numpy dtype {reprlib.repr(code)} has an unexpected pickled state")
    byte_order, subarray, names, fields, item_size = state[1:6]
    if subarray is not None or names is not None or fields is not None or any(state[8:]):
        raise DatasetError("structured or annotated numpy dtypes are not supported")
    if byte_order not in _BYTE_ORDERS:
        shown_order = reprlib.repr(byte_order)
        raise DatasetError(f"numpy dtype {reprlib.repr(code)} has byte order {shown_order}")
    if byte_order in ("<", ">") and dtype.byteorder != "|":
        dtype = dtype.newbyteorder(byte_order)
    if item_size not in (-1, dtype.itemsize):
        claimed = reprlib.repr(item_size)
        raise DatasetError(f"numpy dtype {reprlib.repr(code)} claims {claimed} bytes per item")
    return dtype


def _shape(value: Any) -> tuple[int, ...]:
    def is_size(size: Any) -> bool:
        return isinstance(size, int) and not isinstance(size, bool) and size >= 0

    if not (isinstance(value, tuple) and all(is_size(size) for size in value)):
        raise DatasetError(f"a numpy array in the file has shape {reprlib.repr(value)}")
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


def _array(pickled: _PickledArray, memo: dict[int, Any], source: str) -> np.ndarray:
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
        array[index] = _materialize(item, memo, source)
    return array.reshape(shape, order="F" if fortran else "C")


def _array_from_buffer(pickled: _PickledBuffer) -> np.ndarray:
    if pickled.order not in ("C", "F"):
        raise DatasetError(f"a numpy array in the file has order {reprlib.repr(pickled.order)}")
    shape, dtype = _shape(pickled.shape), _dtype(pickled.dtype)
    return _from_bytes(pickled.buffer, dtype, shape, pickled.order == "F")


def _scalar(pickled: _PickledScalar) -> np.generic:
    dtype = _dtype(pickled.dtype)
    # Indexing a 0-d array with () yields its numpy scalar (never an object:
    # _from_bytes refuses object dtypes); numpy's stubs only say ndarray.
    return cast(np.generic, _from_bytes(pickled.data, dtype, (), False)[()])
