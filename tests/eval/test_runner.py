"""The run loop, the spatial task and the report on planted videos with known answers.

The planted backbone points at the brightest patch of the target frame. On a
64 x 64 frame (the model's own size, so nothing is resized) patch (row,
column) is uniformly bright, its two middle pixels tie exactly, and the
first maximum wins: the model-space point is (8 * column + 3, 8 * row + 3).
Its action heatmap, thresholded at 0.5, is that patch's 8 x 8 block without
three pixels in each corner: 52 pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tests.planted import PlantedAdapter, planted_frame
from tests.synth import write_video
from vgem.eval.engine import evaluate
from vgem.eval.report import build_results
from vgem.eval.run_log import PredictionLog, current_records
from vgem.eval.samples import ManifestProblem, Sample
from vgem.eval.selection import select_samples
from vgem.eval.tasks import RunContext, SpatialTask
from vgem.grounder import Grounder

SIZE = 64
A, B = "cut onion", "stir soup"


def _point(row: int, column: int) -> tuple[int, int]:
    return (8 * column + 3, 8 * row + 3)


# Planted patches: a frame folder (samples by frame) and an MP4 at 2 fps (by time).
FOLDER_PATCHES = [(1, 1), (2, 5), (5, 3)]
VIDEO_PATCHES = [(3, 4), (6, 2)]


@pytest.fixture
def planted_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    folder = root / "folder"
    folder.mkdir(parents=True)
    for index, (row, column) in enumerate(FOLDER_PATCHES):
        Image.fromarray(planted_frame(SIZE, SIZE, row, column)).save(folder / f"{index:03}.png")
    frames = [planted_frame(SIZE, SIZE, row, column) for row, column in VIDEO_PATCHES]
    write_video(root / "clip.mp4", frames, size=(SIZE, SIZE), fps=2)
    return root


class CountingGrounder:
    """The planted grounder, counting its calls."""

    def __init__(self) -> None:
        self.grounder = Grounder(adapter=PlantedAdapter(), depth=4, extractor="label")
        self.calls: list[tuple[str, list[str], list[float]]] = []

    @property
    def input_size(self):
        return self.grounder.input_size

    def ground(self, video, queries, *, at, on_grounded=None):
        self.calls.append((Path(video.path).name, list(queries), list(at)))
        return self.grounder.ground(video, queries, at=at, on_grounded=on_grounded)


def _box(point, left, top, right, bottom):
    x, y = point
    return [x + left, y + top, x + right, y + bottom]


def _pointing_samples() -> tuple[list[Sample], dict[str, bool]]:
    """Ten scored samples (7 hits) and one whose video is missing, with the hits by hand."""
    p0, p1, p2 = (_point(*patch) for patch in FOLDER_PATCHES)
    v0, v1 = (_point(*patch) for patch in VIDEO_PATCHES)
    x, y = v1
    cases = [
        # class A: 5 of 6
        ("a-inside", "folder", {"frame": 0}, A, [_box(p0, -5, -5, 5, 5)], None, True),
        ("a-right-bottom-border", "folder", {"frame": 1}, A, [_box(p1, -6, -6, 0, 0)], None, True),
        ("a-left-top-border", "folder", {"frame": 2}, A, [_box(p2, 0, 0, 6, 6)], None, True),
        ("a-one-pixel-right", "clip.mp4", {"time": 0.0}, A, [_box(v0, 1, -5, 6, 5)], None, False),
        (
            "a-relative-box",
            "clip.mp4",
            {"time": 0.5},
            A,
            [[(x - 4) / 64, (y - 4) / 64, (x + 4) / 64, (y + 4) / 64]],
            (1, 1),
            True,
        ),
        (
            "a-second-box-hits",
            "folder",
            {"frame": 1},
            A,
            [[0, 0, 3, 3], _box(p1, -1, -1, 1, 1)],
            None,
            True,
        ),
        # class B: 2 of 4
        ("b-inside", "folder", {"frame": 1}, B, [_box(p1, -2, -2, 2, 2)], None, True),
        ("b-bottom-border", "clip.mp4", {"time": 0.0}, B, [_box(v0, -3, -9, 3, 0)], None, True),
        # On a 128 x 128 frame, x2 = 2x - 1 scales to x - 0.5; x - 1 is even, so Python's
        # round() (halves to even, the authors' rule) gives x - 1: just left of the point.
        (
            "b-rounds-half-to-even",
            "clip.mp4",
            {"time": 0.5},
            B,
            [[2 * x - 20, 2 * y - 20, 2 * x - 1, 2 * y + 20]],
            (128, 128),
            False,
        ),
        ("b-far", "folder", {"frame": 0}, B, [[40, 40, 60, 60]], None, False),
    ]
    samples = [
        Sample(
            id=sample_id,
            video=video,
            query=query,
            boxes=boxes,
            frame_size=frame_size,
            dataset="planted",
            **when,
        )
        for sample_id, video, when, query, boxes, frame_size, _ in cases
    ]
    expected = {case[0]: case[-1] for case in cases}
    return samples, expected


def _items_with_missing_video(samples: list[Sample]):
    missing = Sample(id="b-missing", video="gone.mp4", time=0, query=B, boxes=[[0, 0, 1, 1]])
    return [*samples, missing]


def _context(root: Path) -> RunContext:
    return RunContext(root=root, settings_hash="test-settings")


POINTING = SpatialTask(("pointing",))
WITH_MAP = SpatialTask(("pointing", "map"))


def _lines(run_dir: Path) -> list[dict]:
    text = (run_dir / "predictions.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_planted_pointing_game(planted_root, tmp_path):
    samples, expected_hits = _pointing_samples()
    selection = select_samples(_items_with_missing_video(samples))
    grounder = CountingGrounder()
    outcome = evaluate(
        selection,
        context=_context(planted_root),
        run_dir=tmp_path / "run",
        load_grounder=lambda: grounder,
        task=POINTING,
    )

    lines = {line["id"]: line for line in _lines(tmp_path / "run")}
    assert {key: lines[key]["hit"] for key in expected_hits} == expected_hits
    assert lines["a-inside"]["model_point"] == list(_point(*FOLDER_PATCHES[0]))
    assert lines["b-bottom-border"]["model_point"] == list(_point(*VIDEO_PATCHES[0]))
    assert lines["b-rounds-half-to-even"]["model_boxes"][0][2] == _point(*VIDEO_PATCHES[1])[0] - 1
    assert "gone.mp4" in lines["b-missing"]["error"]

    overall, per_dataset = POINTING.score(selection.samples, outcome.records, "fallback")
    pointing = overall["pointing"]
    assert (pointing["samples"], pointing["hits"], pointing["errors"]) == (10, 7, 1)
    assert pointing["accuracy"] == pytest.approx(0.70)
    assert f"{100 * pointing['accuracy']:.2f} %" == "70.00 %"
    assert pointing["classes"][A]["accuracy"] == pytest.approx(5 / 6)
    assert pointing["classes"][B]["accuracy"] == pytest.approx(2 / 4)
    assert pointing["classes"][B]["errors"] == 1
    assert pointing["class_mean_accuracy"] == pytest.approx((5 / 6 + 2 / 4) / 2)
    # the missing sample names no dataset and falls back to the run's
    assert per_dataset["planted"]["pointing"]["samples"] == 10
    assert per_dataset["fallback"]["pointing"]["errors"] == 1


def test_one_grounding_call_per_video_with_its_distinct_queries_and_times(planted_root, tmp_path):
    samples, _ = _pointing_samples()
    grounder = CountingGrounder()
    evaluate(
        select_samples(samples),
        context=_context(planted_root),
        run_dir=tmp_path / "run",
        load_grounder=lambda: grounder,
        task=POINTING,
    )
    calls = {video: (queries, times) for video, queries, times in grounder.calls}
    assert len(grounder.calls) == 2
    assert calls["folder"] == ([A, B], [0.0, 1.0, 2.0])  # frames 0..2 of a 1 fps folder
    assert calls["clip.mp4"] == ([A, B], [0.0, 0.5])


def test_planted_spatial_map(planted_root, tmp_path):
    """IoUs of the 52-pixel mask: its own 8 x 8 block 52/64, a 16 x 16 box 52/256, elsewhere 0."""
    row, column = FOLDER_PATCHES[1]
    block = [8 * column, 8 * row, 8 * column + 8, 8 * row + 8]
    around = [block[0] - 4, block[1] - 4, block[2] + 4, block[3] + 4]
    far = [0, 0, 8, 8]
    cases = [
        ("a1", A, block),
        ("a2", A, block),
        ("a3", A, far),
        ("b1", B, block),
        ("b2", B, around),
    ]
    samples = [
        Sample(id=key, video="folder", frame=1, query=query, boxes=[box])
        for key, query, box in cases
    ]
    selection = select_samples(samples)
    outcome = evaluate(
        selection,
        context=_context(planted_root),
        task=WITH_MAP,
        run_dir=tmp_path / "run",
        load_grounder=CountingGrounder,
    )
    ious = {key: line["iou"] for key, line in outcome.records.items()}
    assert ious == pytest.approx(
        {"a1": 52 / 64, "a2": 52 / 64, "a3": 0.0, "b1": 52 / 64, "b2": 52 / 256}
    )
    overall, _ = WITH_MAP.score(selection.samples, outcome.records)
    spatial = overall["map"]
    assert spatial is not None
    assert spatial["classes"][A]["precision"] == pytest.approx(2 / 3)
    assert spatial["classes"][B]["precision"] == pytest.approx(1 / 2)
    assert spatial["mean_ap"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_unrunnable_samples_are_errors_and_the_run_goes_on(planted_root, tmp_path):
    (planted_root / "broken.mp4").write_text("not a video")
    samples = [
        Sample(id="late-time", video="clip.mp4", time=5.0, query=A, boxes=[[0, 0, 9, 9]]),
        Sample(id="late-frame", video="folder", frame=3, query=A, boxes=[[0, 0, 9, 9]]),
        Sample(id="corrupt", video="broken.mp4", time=0, query=A, boxes=[[0, 0, 9, 9]]),
        Sample(id="fine", video="folder", frame=2, query=A, boxes=[[0, 0, 63, 63]]),
    ]
    outcome = evaluate(
        select_samples(samples),
        context=_context(planted_root),
        run_dir=tmp_path / "run",
        load_grounder=CountingGrounder,
        task=POINTING,
    )
    records = outcome.records
    assert "past the end" in records["late-time"]["error"]
    assert "past the last frame" in records["late-frame"]["error"]
    assert "broken.mp4" in records["corrupt"]["error"]
    assert records["fine"]["hit"] is True


def test_resume_keeps_errors_until_they_are_retried(planted_root, tmp_path):
    samples, _ = _pointing_samples()
    selection = select_samples(_items_with_missing_video(samples))
    run_dir = tmp_path / "run"
    context = _context(planted_root)
    evaluate(
        selection, context=context, run_dir=run_dir, load_grounder=CountingGrounder, task=POINTING
    )

    # the missing video turns up: a plain resume keeps the error, a retry grounds it once
    write_video(planted_root / "gone.mp4", [planted_frame(SIZE, SIZE, 0, 0)], size=(SIZE, SIZE))
    grounder = CountingGrounder()
    kept = evaluate(
        selection, context=context, run_dir=run_dir, load_grounder=lambda: grounder, task=POINTING
    )
    assert (kept.resumed, kept.written, grounder.calls) == (11, 0, [])
    assert "error" in kept.records["b-missing"]
    retried = evaluate(
        selection,
        context=context,
        run_dir=run_dir,
        load_grounder=lambda: grounder,
        retry_errors=True,
        task=POINTING,
    )
    assert [call[0] for call in grounder.calls] == ["gone.mp4"]
    assert (retried.resumed, retried.written) == (10, 1)
    assert retried.records["b-missing"]["hit"] is True
    ids = [line["id"] for line in _lines(run_dir)]
    assert ids.count("b-missing") == 2  # the error line stays; the latest line counts
    assert all(ids.count(key) == 1 for key in ids if key != "b-missing")


def test_a_run_with_nothing_left_loads_no_model(planted_root, tmp_path):
    samples, _ = _pointing_samples()
    selection = select_samples(samples)
    run_dir = tmp_path / "run"
    evaluate(
        selection,
        context=_context(planted_root),
        run_dir=run_dir,
        load_grounder=CountingGrounder,
        task=POINTING,
    )

    def refuse():
        raise AssertionError("the model was loaded although every sample was done")

    outcome = evaluate(
        selection,
        context=_context(planted_root),
        run_dir=run_dir,
        load_grounder=refuse,
        task=POINTING,
    )
    assert (outcome.resumed, outcome.written) == (10, 0)


def test_a_map_run_redoes_lines_that_lack_the_iou(planted_root, tmp_path):
    samples, _ = _pointing_samples()
    selection = select_samples(samples[:2])
    run_dir = tmp_path / "run"
    evaluate(
        selection,
        context=_context(planted_root),
        run_dir=run_dir,
        load_grounder=CountingGrounder,
        task=POINTING,
    )
    outcome = evaluate(
        selection,
        context=_context(planted_root),
        task=WITH_MAP,
        run_dir=run_dir,
        load_grounder=CountingGrounder,
    )
    assert (outcome.resumed, outcome.written) == (0, 2)
    assert all("iou" in line for line in outcome.records.values())


def test_lines_of_other_settings_or_changed_samples_are_not_reused():
    sample = Sample(id="s", video="v.mp4", time=1, query=A, boxes=[[0, 0, 5, 5]])
    moved = Sample(id="s", video="v.mp4", time=1, query=A, boxes=[[0, 0, 6, 6]])
    from vgem.eval.run_log import sample_fingerprint

    line = {"id": "s", "settings": "h1", "sample": sample_fingerprint(sample), "hit": True}
    assert current_records([line], [sample], "h1") == {"s": line}
    assert current_records([line], [sample], "h2") == {}
    assert current_records([line], [moved], "h1") == {}


@pytest.mark.parametrize(
    ("line", "metrics", "retry_errors", "finished"),
    [
        ({"hit": True}, ("pointing",), False, True),
        ({"hit": True}, ("pointing",), True, True),
        ({"hit": True}, ("pointing", "map"), False, False),
        ({"hit": False, "iou": 0.0}, ("pointing", "map"), False, True),
        ({"error": "video missing"}, ("pointing", "map"), False, True),
        ({"error": "video missing"}, ("pointing",), True, False),
        (None, ("pointing",), False, False),
    ],
)
def test_resume_rule(line, metrics, retry_errors, finished):
    assert SpatialTask(metrics).is_finished(line, retry_errors=retry_errors) is finished


def test_a_torn_last_line_is_ignored_and_cut_before_appending(tmp_path):
    log = PredictionLog(tmp_path / "run")
    with log.open():
        log.append({"id": "one"})
    with log.path.open("ab") as handle:
        handle.write(b'{"id": "two", "hi')  # a write the kill cut short
    assert [line["id"] for line in log.records()] == ["one"]
    with log.open():
        log.append({"id": "three"})
    assert [line["id"] for line in log.records()] == ["one", "three"]
    assert log.path.read_text().count("\n") == 2


def test_no_resume_keeps_the_old_predictions_aside(tmp_path):
    log = PredictionLog(tmp_path / "run")
    with log.open():
        log.append({"id": "old"})
    with log.open(fresh=True):
        log.append({"id": "new"})
    assert [line["id"] for line in log.records()] == ["new"]
    (kept,) = (tmp_path / "run").glob("predictions-*.jsonl")
    assert json.loads(kept.read_text())["id"] == "old"


def test_two_runs_cannot_share_a_run_directory(tmp_path):
    from vgem.outputs import FolderBusy

    with (
        PredictionLog(tmp_path / "run").open(),
        pytest.raises(FolderBusy, match="Another vgem run"),
        PredictionLog(tmp_path / "run").open(),
    ):
        pass


def test_selection_limit_and_seeded_shuffle():
    samples = [
        Sample(id=f"s{index}", video="v.mp4", time=index, query=A, boxes=[[0, 0, 1, 1]])
        for index in range(20)
    ]
    problem = ManifestProblem("m.jsonl", "invalid JSON", 3)
    plain = select_samples([*samples, problem], limit=5)
    assert [sample.id for sample in plain.samples] == ["s0", "s1", "s2", "s3", "s4"]
    assert plain.problems == [problem]
    first = select_samples(samples, limit=5, shuffle_seed=7).samples
    again = select_samples(samples, limit=5, shuffle_seed=7).samples
    other = select_samples(samples, limit=5, shuffle_seed=8).samples
    assert first == again != other
    assert first != samples[:5]


def test_results_document_holds_every_number(planted_root, tmp_path):
    from vgem.eval.report import RunDescription

    samples, _ = _pointing_samples()
    selection = select_samples(_items_with_missing_video(samples))
    outcome = evaluate(
        selection,
        context=_context(planted_root),
        run_dir=tmp_path / "run",
        load_grounder=CountingGrounder,
        task=POINTING,
    )
    description = RunDescription(
        dataset=None,
        manifest="m.jsonl",
        root=str(planted_root),
        run_dir=str(tmp_path / "run"),
        backbone="planted",
        weights=None,
        settings={"weighting": "combined"},
        settings_hash="test-settings",
        identity={},
        metrics=("pointing",),
    )
    document = build_results(
        description, selection, outcome.records, finished_at="now", resumed=0, evaluated=11
    )
    assert document["complete"] is True
    assert document["overall"]["counts"] == {
        "selected": 11,
        "scored": 10,
        "errors": 1,
        "pending": 0,
    }
    assert document["overall"]["pointing"]["classes"][A]["hits"] == 5
    assert document["errors"][0]["id"] == "b-missing"
    assert document["paper"]["row"] is None
    json.dumps(document, allow_nan=False)
