from __future__ import annotations

import json

import pytest

from vgem.errors import DatasetError
from vgem.eval.manifest import (
    ManifestProblem,
    Sample,
    load_manifest,
    read_manifest,
    sample_from_record,
    sample_to_record,
    write_manifest,
)


def _sample(**changes) -> Sample:
    fields = {
        "id": "vid/81",
        "video": "videos/vid.mp4",
        "time": 81,
        "query": "crack eggs",
        "boxes": [[218, 110, 421, 335]],
    }
    fields.update(changes)
    return Sample(**fields)


def _line(**changes) -> str:
    record = {
        "id": "a",
        "video": "a.mp4",
        "time": 1.5,
        "query": "cut onion",
        "boxes": [[1, 2, 3, 4]],
    }
    record.update(changes)
    return json.dumps(record)


def test_sample_stores_boxes_as_float_tuples_and_compares_by_value():
    sample = _sample(boxes=[[1, 2, 3, 4]], human_boxes=[(0, 0, 1, 1)])
    assert sample.boxes == ((1.0, 2.0, 3.0, 4.0),)
    assert sample.human_boxes == ((0.0, 0.0, 1.0, 1.0),)
    assert sample == _sample(boxes=((1.0, 2.0, 3.0, 4.0),), human_boxes=[[0, 0, 1, 1]])


def test_class_key_is_the_class_or_else_the_query():
    assert _sample(class_name="BrushingTeeth").class_key == "BrushingTeeth"
    assert _sample().class_key == "crack eggs"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"boxes": []}, "at least one box"),
        ({"boxes": [[0, 0, 5]]}, "4 numbers"),
        ({"boxes": [[0, 0, float("nan"), 4]]}, "finite"),
        ({"boxes": [[0, 0, True, 4]]}, "must be a number"),
        ({"query": "   "}, "'query' is empty"),
        ({"frame": 3}, "exactly one of 'time' and 'frame'"),
        ({"time": None}, "exactly one of 'time' and 'frame'"),
        ({"time": None, "frame": 2.0}, "whole number"),
        ({"time": None, "frame": -1}, "must not be negative"),
        ({"time": -0.5}, "must not be negative"),
        ({"frame_size": [640, 0]}, "positive"),
        ({"class_name": ""}, "'class' is empty"),
    ],
)
def test_invalid_samples_are_refused_with_a_reason(changes, reason):
    with pytest.raises(ValueError, match=reason):
        _sample(**changes)


def test_record_round_trip_keeps_every_field_and_writes_whole_numbers_plainly():
    sample = _sample(
        time=None,
        frame=41,
        class_name="crack eggs",
        human_boxes=[[1, 1, 2, 2]],
        object_boxes=[[0.5, 0.25, 0.75, 1]],
        dataset="gyt",
        frame_size=[640, 360],
        box_dtype="float64",
    )
    record = sample_to_record(sample)
    assert record == {
        "id": "vid/81",
        "video": "videos/vid.mp4",
        "frame": 41,
        "query": "crack eggs",
        "boxes": [[218, 110, 421, 335]],
        "class": "crack eggs",
        "human_boxes": [[1, 1, 2, 2]],
        "object_boxes": [[0.5, 0.25, 0.75, 1]],
        "dataset": "gyt",
        "frame_size": [640, 360],
        "box_dtype": "float64",
    }
    assert sample_from_record(json.loads(json.dumps(record))) == sample


def test_write_then_read_gives_the_same_samples(tmp_path):
    samples = [_sample(id="one"), _sample(id="two", time=None, frame=0, class_name="x")]
    path = tmp_path / "manifest.jsonl"

    assert write_manifest(samples, path) == 2
    read_back, problems = load_manifest(path)

    assert read_back == samples
    assert problems == []
    assert path.read_text(encoding="utf-8").count("\n") == 2


def test_bad_lines_report_their_line_number_and_reading_goes_on(tmp_path):
    path = tmp_path / "manifest.jsonl"
    lines = [
        _line(id="first"),  # 1
        '{"id": "broken", "video": ',  # 2 invalid JSON
        _line(id="short", boxes=[[30, 2, 10]]),  # 3 three numbers
        json.dumps({"id": "no-query", "video": "a.mp4", "time": 1, "boxes": [[0, 0, 1, 1]]}),  # 4
        "",  # 5 blank: skipped, no problem
        _line(id="second"),  # 6
        _line(id="first"),  # 7 duplicate id
        '{"id": "nan", "video": "a.mp4", "time": NaN, "query": "q", "boxes": [[0, 0, 1, 1]]}',  # 8
        _line(id="typo", clas="x"),  # 9 unknown field
        "[1, 2]",  # 10 not an object
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    items = list(read_manifest(path))

    samples = [item for item in items if isinstance(item, Sample)]
    problems = [item for item in items if isinstance(item, ManifestProblem)]
    assert [sample.id for sample in samples] == ["first", "second"]
    assert [problem.line for problem in problems] == [2, 3, 4, 7, 8, 9, 10]
    reasons = [problem.reason for problem in problems]
    assert reasons[0].startswith("invalid JSON")
    assert "4 numbers" in reasons[1]
    assert reasons[2] == "missing field 'query'"
    assert "duplicate id 'first' (first used on line 1)" in reasons[3]
    assert "NaN" in reasons[4]
    assert "unknown field 'clas'" in reasons[5]
    assert "expected a JSON object" in reasons[6]
    assert str(problems[1]).startswith("manifest.jsonl:3: ")


def test_a_missing_video_is_not_a_reading_problem(tmp_path):
    # the run decides, for manifests and datasets alike (an error line, retried)
    path = tmp_path / "manifest.jsonl"
    path.write_text(_line(id="gone", video="absent.mp4") + "\n", encoding="utf-8")

    samples, problems = load_manifest(path, root=tmp_path)

    assert [sample.id for sample in samples] == ["gone"] and problems == []


def test_an_inverted_box_is_kept_as_published(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(_line(id="inverted", boxes=[[482, 229, 480, 461]]) + "\n", encoding="utf-8")

    samples, problems = load_manifest(path)

    assert problems == [] and samples[0].boxes == ((482.0, 229.0, 480.0, 461.0),)


def test_bytes_that_are_not_utf8_are_a_line_problem(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(b'{"id": "\xff"}\n' + _line(id="ok").encode() + b"\n")

    samples, problems = load_manifest(path)

    assert [sample.id for sample in samples] == ["ok"]
    assert [(problem.line, problem.reason) for problem in problems] == [
        (1, "the line is not UTF-8 text")
    ]


def test_missing_manifest_raises_at_once(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_manifest(tmp_path / "absent.jsonl")


def test_interrupted_write_leaves_the_old_manifest_and_no_temporary_file(tmp_path):
    path = tmp_path / "manifest.jsonl"
    write_manifest([_sample(id="old")], path)
    before = path.read_bytes()

    def failing_samples():
        yield _sample(id="new")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_manifest(failing_samples(), path)

    assert path.read_bytes() == before
    assert sorted(item.name for item in tmp_path.iterdir()) == ["manifest.jsonl"]


def test_write_into_a_missing_folder_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="Cannot write the manifest"):
        write_manifest([_sample()], tmp_path / "no" / "such" / "manifest.jsonl")
