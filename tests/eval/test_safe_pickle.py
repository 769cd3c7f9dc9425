from __future__ import annotations

import builtins
import io
import os
import pickle
import subprocess
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
