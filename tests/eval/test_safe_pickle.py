from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from vgem.errors import DatasetError
from vgem.eval.safe_pickle import safe_load, safe_loads

from .py2_pickle import dumps_py2, dumps_py2_array


class Payload:
    """Unpickling this calls ``function(*arguments)``, as a hostile file would."""

    def __init__(self, function, *arguments):
        self.function = function
        self.arguments = arguments

    def __reduce__(self):
        return self.function, self.arguments


def _touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _payloads(marker: Path) -> dict[str, tuple[object, str]]:
    """Each payload with the global the refusal must name."""
    return {
        "os.system": (
            Payload(os.system, f"touch {marker}"),
            f"{os.system.__module__}.system",
        ),
        "exec": (Payload(builtins.exec, _touch_code(marker)), "builtins.exec"),
        "eval": (Payload(builtins.eval, f"exec({_touch_code(marker)!r})"), "builtins.eval"),
        "subprocess.Popen": (
            Payload(subprocess.Popen, ["touch", str(marker)]),
            "subprocess.Popen",
        ),
        "open": (Payload(open, str(marker), "w"), f"{open.__module__}.open"),
        "getattr": (Payload(getattr, str(marker), "upper"), "builtins.getattr"),
    }


PAYLOAD_NAMES = ["os.system", "exec", "eval", "subprocess.Popen", "open", "getattr"]


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("payload_name", PAYLOAD_NAMES)
def test_code_running_payload_is_refused_and_does_not_run(tmp_path, payload_name, protocol):
    marker = tmp_path / "marker"
    payload, refused_global = _payloads(marker)[payload_name]
    hostile = tmp_path / "daly1.1.0.pkl"
    hostile.write_bytes(pickle.dumps({"annot": [1, 2, payload]}, protocol=protocol))

    with pytest.raises(DatasetError) as raised:
        safe_load(hostile)

    assert not marker.exists()
    message = str(raised.value)
    assert f"Refused to unpickle {refused_global} from daly1.1.0.pkl" in message
    assert "plain data" in message


def test_the_marker_payload_really_runs_under_plain_pickle(tmp_path):
    # Control for the test above: the same bytes do create the marker when
    # loaded without restriction, so "no marker" there means "refused".
    marker = tmp_path / "marker"
    hostile = pickle.dumps(Payload(builtins.exec, _touch_code(marker)))
    pickle.loads(hostile)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(DatasetError):
        safe_loads(hostile, source="gt_bbox_test.json")
    assert not marker.exists()


def test_python2_global_names_are_refused_too(tmp_path):
    marker = tmp_path / "marker"
    code = _touch_code(marker).encode()
    hostile = b"c__builtin__\neval\n(S'" + code.replace(b"'", b"\\'") + b"'\ntR."

    with pytest.raises(DatasetError, match=r"builtins\.eval from old\.pkl"):
        safe_loads(hostile, source="old.pkl")
    assert not marker.exists()


def test_persistent_references_are_refused():
    class Persisting(pickle.Pickler):
        def persistent_id(self, obj):
            return "outside" if obj == "secret" else None

    buffer = io.BytesIO()
    Persisting(buffer, protocol=2).dump(["secret"])
    with pytest.raises(DatasetError, match="persistent reference"):
        safe_loads(buffer.getvalue(), source="x.pkl")


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_data_and_numpy_round_trip(protocol):
    original = {
        "boxes": np.arange(8, dtype=np.float32).reshape(2, 4),
        "objects": np.array([1, "mop"], dtype=object),
        "scalar": np.float64(0.25),
        "count": np.int64(7),
        "tags": {"a", "b"},
        "frozen": frozenset({3}),
        "raw": b"\x00\xff",
        "complex": 1 + 2j,
        "nested": [(1, 2.5, None, True, "text")],
    }
    loaded = safe_loads(pickle.dumps(original, protocol=protocol))

    np.testing.assert_array_equal(loaded["boxes"], original["boxes"])
    assert loaded["boxes"].dtype == np.float32
    assert loaded["objects"].tolist() == [1, "mop"]
    assert loaded["scalar"] == 0.25 and loaded["count"] == 7
    assert loaded["tags"] == {"a", "b"} and loaded["frozen"] == frozenset({3})
    assert loaded["raw"] == b"\x00\xff" and loaded["complex"] == 1 + 2j
    assert loaded["nested"] == [(1, 2.5, None, True, "text")]


def test_python2_pickle_with_byte_strings_and_arrays_reads_as_latin1(tmp_path):
    release = {
        "labels": ["BrushingTeeth", "Caf\xe9"],
        "box": np.array([[0.1, 0.2, 0.5, 0.9]]),
        "frameNumber": 41,
    }
    path = tmp_path / "daly1.1.0.pkl"
    path.write_bytes(dumps_py2(release))
    assert b"U\x04Caf\xe9" in path.read_bytes()  # a Python 2 byte string, not unicode

    loaded = safe_load(path)

    assert loaded["labels"] == ["BrushingTeeth", "Café"]
    np.testing.assert_array_equal(loaded["box"], [[0.1, 0.2, 0.5, 0.9]])
    assert loaded["frameNumber"] == 41


def test_truncated_pickle_is_a_dataset_error():
    data = pickle.dumps({"a": list(range(100))})
    with pytest.raises(DatasetError, match=r"broken\.pkl is not a readable pickle"):
        safe_loads(data[: len(data) // 2], source="broken.pkl")


def test_missing_file_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="Cannot read"):
        safe_load(tmp_path / "absent.pkl")


def test_an_array_of_pointers_read_from_the_file_is_refused():
    # Handed out as itself, numpy.ndarray(shape, object dtype, buffer) builds
    # an array of pointers taken from the file; touching it crashes Python.
    hostile = pickle.dumps(Payload(np.ndarray, (1,), np.dtype("O"), b"\x41" * 8))
    with pytest.raises(DatasetError, match=r"gt_bbox_test\.json is not a readable pickle"):
        safe_loads(hostile, source="gt_bbox_test.json")


def test_object_array_from_raw_bytes_is_refused():
    # An object array whose state carries raw bytes (pointers) instead of its items.
    hostile = dumps_py2_array("O8", (1,), b"\x41" * 8)
    with pytest.raises(DatasetError, match="object arrays must list their items"):
        safe_loads(hostile)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (np.zeros(2, dtype=[("a", "f4")]), "'V4' is not a plain numeric or string type"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "'M8' is not a plain numeric"),
        (np.ma.masked_array([1, 2], mask=[0, 1]), r"Refused to unpickle numpy\.ma\."),
        (np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f4")]), r"numpy\.rec"),
    ],
)
def test_unusual_numpy_objects_are_refused(value, reason):
    with pytest.raises(DatasetError, match=reason):
        safe_loads(pickle.dumps(value, protocol=2))


def test_array_data_of_the_wrong_length_is_refused():
    with pytest.raises(DatasetError, match="has 16 bytes where 24 are needed"):
        safe_loads(dumps_py2_array("i8", (3,), b"\x00" * 16))


def test_shared_and_fortran_ordered_arrays_come_back_as_saved():
    shared = np.asfortranarray(np.arange(6, dtype=">f4").reshape(2, 3))
    loaded = safe_loads(pickle.dumps({"a": shared, "b": shared, "big": np.int16(-2)}, protocol=2))
    np.testing.assert_array_equal(loaded["a"], shared)
    assert loaded["a"] is loaded["b"]
    assert loaded["a"].dtype == np.dtype(">f4")
    assert loaded["big"] == -2 and loaded["big"].dtype == np.int16


# --------------------------------------------------------------------------- the budget


def _cost_of(load):
    """(result or DatasetError, CPU seconds, peak bytes allocated) of calling ``load``."""
    tracemalloc.start()
    started = time.process_time()
    try:
        outcome = load()
    except DatasetError as error:
        outcome = error
    finally:
        seconds = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return outcome, seconds, peak


_DUP_TUPLES = b")" + b"2\x86" * 26  # a tuple holding the same tuple twice, 26 levels: 2**26 leaves


def _one_hash_keys(count: int) -> bytes:
    """``count`` distinct integers that all hash to 0 (multiples of 2**61 - 1), pickled."""
    return b"".join(
        b"\x8a\x10" + (k * (2**61 - 1)).to_bytes(16, "little", signed=True)
        for k in range(1, count + 1)
    )


_FLOOD = _one_hash_keys(20_000)  # as a plain dict: 2 * 10**8 probes, seconds of CPU

HOSTILE = {
    # A memo slot 2**31 - 1: the C unpickler grows its memo array to that many entries.
    "huge memo index": b"\x80\x02]r\xff\xff\xff\x7f.",
    "huge memo index, protocol 0": b"(lp2147483647\n.",
    "get from a huge memo index": b"\x80\x02j\xff\xff\xff\x7f.",
    # bytearray(10**9) and bytes(10**9): a size named by the file, not data in it.
    "bytearray(10**9)": b"\x80\x02c__builtin__\nbytearray\nJ\x00\xca\x9a;\x85R.",
    "bytes(10**9)": b"\x80\x02c__builtin__\nbytes\nJ\x00\xca\x9a;\x85R.",
    "BYTEARRAY8 of 10**12 bytes": b"\x80\x05\x96" + (10**12).to_bytes(8, "little") + b".",
    "BINBYTES8 of 10**12 bytes": b"\x80\x04\x8e" + (10**12).to_bytes(8, "little") + b".",
    "BINUNICODE8 of 10**12 bytes": b"\x80\x04\x8d" + (10**12).to_bytes(8, "little") + b".",
    "FRAME of 10**12 bytes": b"\x80\x04\x95" + (10**12).to_bytes(8, "little") + b"N.",
    # Hashing a tuple that shares itself costs 2**26 steps from 55 bytes.
    "exponential tuple in a set": b"\x80\x04\x8f(" + _DUP_TUPLES + b"\x90.",
    "exponential tuple as a dict key": b"\x80\x02}" + _DUP_TUPLES + b"Ns.",
    "exponential tuple in a frozenset": b"\x80\x04(" + _DUP_TUPLES + b"\x91.",
    "exponential tuple through set()": (b"\x80\x02c__builtin__\nset\n]" + _DUP_TUPLES + b"a\x85R."),
    "exponential tuple, protocol 0 dict": b"(" + _DUP_TUPLES + b"Nd.",
    # Hash flooding: distinct keys of one hash make each insertion probe past all earlier.
    "keys of one hash, SETITEMS": b"\x80\x02}("
    + b"".join(_FLOOD[i : i + 18] + b"N" for i in range(0, len(_FLOOD), 18))
    + b"u.",
    "keys of one hash, one SETITEM each": b"\x80\x02}"
    + b"".join(_FLOOD[i : i + 18] + b"Ns" for i in range(0, len(_FLOOD), 18))
    + b".",
    "keys of one hash, protocol 0 dict": b"\x80\x02("
    + b"".join(_FLOOD[i : i + 18] + b"N" for i in range(0, len(_FLOOD), 18))
    + b"d.",
    "keys of one hash in a set": b"\x80\x04\x8f(" + _FLOOD + b"\x90.",
    "keys of one hash in a frozenset": b"\x80\x04(" + _FLOOD + b"\x91.",
    # ... and walking it costs as much: refused even when nothing hashes it.
    "exponential tuple returned": b"\x80\x02" + _DUP_TUPLES + b".",
    "exponential list returned": b"\x80\x04]"
    + b"".join(b"\x940](h" + bytes([level]) + b"h" + bytes([level]) + b"e" for level in range(40))
    + b".",
    # Deep nesting: no RecursionError, no crash of the interpreter in tuple hashing.
    "lists nested 200000 deep": b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b".",
    "tuple key nested 200000 deep": b"\x80\x02}" + b")" + b"\x85" * 200_000 + b"Ns.",
    "a list that contains itself": b"\x80\x02]q\x00h\x00a.",
    # Numbers whose parsing is quadratic in their length.
    "a 100000-digit integer": b"L" + b"9" * 100_000 + b"L\n.",
    "a 100000-digit int": b"I" + b"9" * 100_000 + b"\n.",
    # Objects of named classes, and state set on things that are not numpy stand-ins.
    "NEWOBJ": b"\x80\x02c__builtin__\nset\n)\x81.",
    "BUILD on a list": b"\x80\x02]}b.",
    "BUILD on an allowed class": b"\x80\x02cnumpy\nndarray\n}(X\x05\x00\x00\x00stateK\x01ub.",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_pickles_cost_little_memory_and_time(name):
    outcome, seconds, peak = _cost_of(lambda: safe_loads(HOSTILE[name], source="h.pkl"))

    assert seconds < 2.0, f"{name}: {seconds:.1f} s of CPU"
    assert peak < 64 * 2**20, f"{name}: {peak / 2**20:.0f} MiB allocated"
    if isinstance(outcome, DatasetError):
        message = str(outcome)
        assert "h.pkl" in message and "\n" not in message and len(message) < 400
    else:  # what is not refused is small, plain data
        assert outcome in ([], None, {}), (name, type(outcome))


@pytest.mark.parametrize(
    "name",
    [
        "bytearray(10**9)",
        "bytes(10**9)",
        "exponential tuple in a set",
        "exponential tuple as a dict key",
        "exponential tuple returned",
        "exponential list returned",
        "lists nested 200000 deep",
        "tuple key nested 200000 deep",
        "a list that contains itself",
        "keys of one hash, SETITEMS",
        "keys of one hash, one SETITEM each",
        "keys of one hash, protocol 0 dict",
        "keys of one hash in a set",
        "keys of one hash in a frozenset",
    ],
)
def test_hostile_pickles_are_refused(name):
    with pytest.raises(DatasetError, match=r"h\.pkl"):
        safe_loads(HOSTILE[name], source="h.pkl")


@pytest.mark.parametrize(
    "pickled",
    [
        b"cbuiltins\nset\n.",
        b"\x80\x02c__builtin__\nfrozenset\n.",
        b"\x80\x04\x8c\x08builtins\x8c\tbytearray\x93.",
        b"\x80\x02cnumpy\nndarray\n.",
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\n.",
        b"\x80\x02]c_codecs\nencode\na.",
    ],
)
def test_a_class_or_function_itself_is_never_handed_out(pickled):
    with pytest.raises(DatasetError, match="not plain data"):
        safe_loads(pickled, source="h.pkl")


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_sets_of_tuples_and_tuple_keys_still_load(protocol):
    original = {
        "pairs": {(1, 2), (3, "x"), ((4, 5), 6)},
        "frozen": frozenset({(7, 8)}),
        (1, "key"): [np.arange(3, dtype=np.int32)],
        "bytes": bytearray(b"\x00\x01"),
    }
    loaded = safe_loads(pickle.dumps(original, protocol=protocol))
    assert loaded["pairs"] == original["pairs"]
    assert loaded["frozen"] == original["frozen"]
    assert loaded["bytes"] == bytearray(b"\x00\x01")
    np.testing.assert_array_equal(loaded[(1, "key")][0], [0, 1, 2])


def test_a_large_real_release_loads_within_its_budget():
    # A DALY-like release: many videos, shared label strings, arrays per box.
    labels = ["BrushingTeeth", "Ironing", "Phoning"]
    release = {
        f"video{index}.mp4": {
            "annot": {
                labels[index % 3]: [
                    {"boxes": np.full((3, 5), index, dtype=np.float32), "keyframes": [index, 4]}
                ]
            },
            "suggestedClass": labels[index % 3],
        }
        for index in range(5000)
    }
    for protocol in (2, 4):
        data = pickle.dumps(release, protocol=protocol)
        started = time.process_time()
        loaded = safe_loads(data)
        assert time.process_time() - started < 10
        assert loaded["video41.mp4"]["suggestedClass"] == "Phoning"
        boxes = loaded["video7.mp4"]["annot"]["Ironing"][0]["boxes"]
        np.testing.assert_array_equal(boxes, np.full((3, 5), 7, dtype=np.float32))
    loaded = safe_loads(dumps_py2({"labels": labels * 1000, "box": np.ones((2, 2))}))
    assert len(loaded["labels"]) == 3000


def test_bytes_and_bytearrays_from_data_still_load():
    for protocol in (0, 2, 3, 5):
        values = [b"", b"ab", bytearray(b""), bytearray(b"\xff")]
        assert safe_loads(pickle.dumps(values, protocol)) == values


def test_many_number_keys_of_distinct_hashes_still_load():
    keys = {**{k: k for k in range(50_000)}, **{k + 0.5: None for k in range(1000)}}
    table = {"frames": keys, "pairs": {(k, k + 1) for k in range(20_000)}}
    for protocol in (0, 2, 4):
        assert safe_loads(pickle.dumps(table, protocol=protocol)) == table
