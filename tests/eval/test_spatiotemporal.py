"""Whole-video evaluation: GroundingYouTube's whole-video annotations, scoring from
prediction lines by hand, and tiny end-to-end runs on a planted untrimmed video.

The planted video (64 x 64, 1 fps grounding) is black except red from 5 s to
12 s and green from 20 s to 26 s; coloured frames carry a white patch at patch
(row 2, column 5), pixels x 40-47, y 16-23. The ColourAdapter of
tests/test_temporal.py makes relevance follow the frame colour, so vgem finds
the segments [5, 12) "red" and [20, 26) "green"; here its patch tokens are
also planted so that both queries point at the white patch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.synth import write_video
from tests.test_temporal import ColourAdapter
from vgem.cli import app
from vgem.eval.datasets.gyt import GROUNDING_YOUTUBE
from vgem.eval.engine import evaluate
from vgem.eval.samples import (
    ManifestProblem,
    TruthBox,
    TruthSegment,
    VideoSample,
    segments_from_boxes,
)
from vgem.eval.selection import select_samples
from vgem.eval.tasks import RunContext, WholeVideoTask
from vgem.grounder import Grounder
from vgem.temporal import TemporalSettings

SIZE = 64
HIT_BOX = [36, 12, 51, 27]  # around the planted patch (model point about (43, 19))
MISS_BOX = [0, 40, 12, 60]
TEMPORAL = TemporalSettings(min_segment=1.0, max_gap=1.0)


class PointingColourAdapter(ColourAdapter):
    """ColourAdapter whose patch tokens are [b, b, 0, 0.05] (b: brightness), so that
    "red" ([1, 0, 0, 0]) and "green" ([0, 1, 0, 0]) both peak at the brightest patch;
    a prompt without a colour word (the object prompt "A photo of a person.") embeds
    like "red" here, so that every prompt points there too."""

    def embed(self, clip):
        tokens = super().embed(clip)
        tokens[:, 1:, 1] = tokens[:, 1:, 0]
        tokens[:, 1:, 3] = 0.05
        return tokens

    def encode_text(self, texts):
        rows = super().encode_text(texts)
        colourless = rows[:, 3] == 1
        rows[colourless, 3] = 0.0
        rows[colourless, 0] = 1.0
        return rows


def _planted_video(path: Path) -> Path:
    colours = {"red": (235, 0, 0), "green": (0, 235, 0)}
    frames = []
    for second in range(30):
        name = "red" if 5 <= second < 12 else "green" if 20 <= second < 26 else None
        frame = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        if name is not None:
            frame[:] = colours[name]
            frame[16:24, 40:48] = 235
        frames.append(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, frames, size=(SIZE, SIZE), fps=1)


def _gyt_release(root: Path, segments: dict, boxes: dict, videos=("planted",)) -> Path:
    """box_anno.json and ground_seg.json for ``segments`` {video: [(step, first, last)]}
    (seconds, both included) and ``boxes`` {video: {(step, second): box}}."""
    root.mkdir(parents=True, exist_ok=True)
    box_anno = {
        video: [
            {"second": second, "box": box, "step_name": step}
            for (step, second), box in sorted(boxes.get(video, {}).items(), key=lambda i: i[0][1])
        ]
        for video in videos
    }
    ground_seg = {
        video: [
            {"segment": [first, last], "id": position, "sentence": step}
            for position, (step, first, last) in enumerate(segments.get(video, []))
        ]
        for video in videos
    }
    (root / "box_anno.json").write_text(json.dumps(box_anno))
    (root / "ground_seg.json").write_text(json.dumps(ground_seg))
    return root


def _boxes(step: str, seconds, box) -> dict:
    return {(step, second): box for second in seconds}


PERFECT_SEGMENTS = {"planted": [("red", 5, 11), ("green", 20, 25)]}
PERFECT_BOXES = {
    "planted": {**_boxes("red", range(5, 12), HIT_BOX), **_boxes("green", range(20, 26), HIT_BOX)}
}
# green shifted 2 s late, and its boxes at 24 and 25 placed away from the patch
SHIFTED_SEGMENTS = {"planted": [("red", 5, 11), ("green", 22, 27)]}
SHIFTED_BOXES = {
    "planted": {
        **_boxes("red", range(5, 12), HIT_BOX),
        **_boxes("green", [22, 23, 26, 27], HIT_BOX),
        **_boxes("green", [24, 25], MISS_BOX),
    }
}


# --------------------------------------------------------------------------- annotations


def test_gyt_reads_whole_videos_with_inclusive_segments(tmp_path):
    root = _gyt_release(
        tmp_path,
        {"v": [("crack eggs", 76, 82), ("add pepper", 108, 108), ("crack eggs", 90, 91)]},
        {"v": {("crack eggs", 76): [1, 2, 30, 40], ("add pepper", 108): [5, 6, 7, 8]}},
        videos=("v",),
    )
    (sample,) = list(GROUNDING_YOUTUBE.read_videos(root))
    assert sample.id == "v" and sample.video == "mining_resized_video/v.mp4"
    assert sample.steps == ("crack eggs", "add pepper")
    assert sample.segments == (
        TruthSegment("crack eggs", 76.0, 83.0),
        TruthSegment("add pepper", 108.0, 109.0),
        TruthSegment("crack eggs", 90.0, 92.0),
    )
    assert sample.boxes[0] == TruthBox(76, "crack eggs", (1.0, 2.0, 30.0, 40.0))
    assert sample.dataset == "gyt"


def test_gyt_without_segment_file_uses_runs_of_boxed_seconds_and_says_so(tmp_path):
    root = tmp_path / "gyt"
    root.mkdir()
    entries = [{"second": s, "box": [0, 0, 9, 9], "step_name": "stir"} for s in (4, 5, 6, 9)]
    entries.append({"second": "7", "box": [0, 0, 9, 9], "step_name": "stir"})
    (root / "box_anno.json").write_text(json.dumps({"v": entries}))
    items = list(GROUNDING_YOUTUBE.read_videos(root))
    problems = [item for item in items if isinstance(item, ManifestProblem)]
    samples = [item for item in items if isinstance(item, VideoSample)]
    assert any("no ground_seg.json" in problem.reason for problem in problems)
    assert any("entry 4" in p.reason and "whole number" in p.reason for p in problems)
    assert samples[0].segments == (TruthSegment("stir", 4, 7), TruthSegment("stir", 9, 10))


def test_gyt_falls_back_to_boxed_seconds_for_a_video_the_segment_file_lacks(tmp_path):
    root = _gyt_release(
        tmp_path, {"a": [("stir", 1, 3)]}, {"b": {("stir", 5): [0, 0, 9, 9]}}, videos=("a", "b")
    )
    segments = json.loads((root / "ground_seg.json").read_text())
    del segments["b"]
    (root / "ground_seg.json").write_text(json.dumps(segments))
    items = list(GROUNDING_YOUTUBE.read_videos(root))
    assert any("'b' is not in ground_seg.json" in str(item) for item in items)
    videos = {item.id: item for item in items if isinstance(item, VideoSample)}
    assert videos["a"].segments == (TruthSegment("stir", 1, 4),)
    assert videos["b"].segments == (TruthSegment("stir", 5, 6),)


@pytest.mark.parametrize(
    ("boxes", "expected"),
    [
        ([(4, "a"), (5, "a"), (6, "a"), (9, "a")], [("a", 4, 7), ("a", 9, 10)]),
        ([(3, "a"), (4, "b"), (5, "a")], [("a", 3, 4), ("b", 4, 5), ("a", 5, 6)]),
        ([(2, "a"), (2, "a")], [("a", 2, 3)]),  # a second annotated twice
        ([], []),
    ],
)
def test_segments_from_boxes(boxes, expected):
    truths = [TruthBox(second, step, (0, 0, 1, 1)) for second, step in boxes]
    assert segments_from_boxes(truths) == [TruthSegment(*item) for item in expected]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"steps": ()}, "at least one step"),
        ({"steps": ("a", "a")}, "distinct"),
        ({"segments": (TruthSegment("b", 0, 1),)}, "unknown step"),
        ({"segments": (TruthSegment("a", 3, 3),)}, "start < end"),
        ({"boxes": (TruthBox(-1, "a", (0, 0, 1, 1)),)}, "negative"),
    ],
)
def test_a_video_sample_refuses_what_cannot_be_scored(fields, message):
    arguments = {"id": "v", "video": "v.mp4", "steps": ("a",), "segments": ()} | fields
    with pytest.raises(ValueError, match=message):
        VideoSample(**arguments)


# --------------------------------------------------------------------------- scoring by hand


def _sample(video_id, segments, boxes, steps=("a", "b")):
    return VideoSample(
        id=video_id,
        video=f"{video_id}.mp4",
        steps=steps,
        segments=tuple(TruthSegment(*segment) for segment in segments),
        boxes=tuple(TruthBox(second, step, (0, 0, 1, 1)) for second, step in boxes),
    )


def _line(video_id, segments, pointing, steps=("a", "b")):
    return {"id": video_id, "queries": list(steps), "segments": segments, "pointing": pointing}


def _score(samples, lines, task):
    return WholeVideoTask(task, TEMPORAL).score(samples, lines)


def test_scores_from_lines_by_hand():
    # video 1: a is true on [0, 4) (boxes at 0-2, second 3 unboxed), b on [10, 12)
    one = _sample(
        "v1", [("a", 0, 4), ("b", 10, 12)], [(0, "a"), (1, "a"), (2, "a"), (10, "b"), (11, "b")]
    )
    # predicted a on [1, 5) (hits at 1; misses at 2), b nowhere
    one_line = _line(
        "v1", [[0, 1, 5, 0.9]], [[0, 0, 1, 1, True], [1, 0, 1, 1, True], [2, 0, 9, 9, False]]
    )
    # video 2: a on [0, 2) with boxes; nothing predicted at all
    two = _sample("v2", [("a", 0, 2)], [(0, "a"), (1, "a")], steps=("a",))
    two_line = _line("v2", [], [[0, 0, 1, 1, True], [1, 0, 1, 1, True]], steps=("a",))
    # video 3 could not be run; video 4 has no line yet
    three = _sample("v3", [("a", 0, 2)], [])
    four = _sample("v4", [("a", 0, 2)], [])
    lines = {"v1": one_line, "v2": two_line, "v3": {"id": "v3", "error": "missing"}}
    samples = [one, two, three, four]

    overall, per_dataset = _score(samples, lines, "spatiotemporal")
    assert overall["counts"] == {"selected": 4, "scored": 2, "errors": 1, "pending": 1}
    assert list(per_dataset) == ["videos"]
    pointing = overall["iou_pointing"]
    # v1 a: P = {1,2,4} (3 is unboxed: ignored), G = {0,1,2}, hits {1} -> 1/4; b: 0/2
    # v2 a: P = {}, G = {0,1} -> 0/2
    assert pointing["video_mean"] == pytest.approx(((1 / 4 + 0) / 2 + 0) / 2)
    assert pointing["classes"]["a"] == {"numerator": 1, "denominator": 6, "value": 1 / 6}
    assert pointing["class_mean"] == pytest.approx((1 / 6 + 0) / 2)
    # video mAP: one detection, a in v1, tIoU([1,5), [0,4)) = 3/5, judged seconds 1 (hit),
    # 2 (miss) in the overlap -> tube IoU 0.3; instances: a x2, b x1
    video_map = overall["video_map"]
    assert video_map["classes"]["a"] == pytest.approx([0.5, 0.5, 0.5, 0.0, 0.0])
    assert video_map["classes"]["b"] == [0.0] * 5
    assert list(video_map["map"].values()) == pytest.approx([0.25, 0.25, 0.25, 0.0, 0.0])

    overall, _ = _score(samples, lines, "temporal")
    # v1 a: P {1,2,3,4}, G {0,1,2,3}: IoU 3/5, IoD 3/4; b: IoU 0/2, IoD undefined
    # v2 a: IoU 0/2, IoD undefined -> v2 is left out of the IoD mean
    assert overall["iou"]["video_mean"] == pytest.approx(((3 / 5 + 0) / 2 + 0) / 2)
    assert overall["iod"]["video_mean"] == pytest.approx(3 / 4)
    assert overall["iod"]["videos"] == 1
    assert overall["segment_map"]["classes"]["a"] == pytest.approx([0.5, 0.5, 0.5, 0.5, 0.0])


def test_a_boxed_second_past_the_end_of_the_video_is_a_miss():
    sample = _sample("v", [("a", 0, 3)], [(0, "a"), (1, "a"), (2, "a")], steps=("a",))
    line = _line("v", [[0, 0, 3, 1.0]], [[0, 0, 1, 1, True], [1, 0, 1, 1, True]], steps=("a",))
    overall, _ = _score([sample], {"v": line}, "spatiotemporal")
    assert overall["iou_pointing"]["video_mean"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def planted_video(tmp_path_factory) -> Path:
    return _planted_video(tmp_path_factory.mktemp("video") / "planted.mp4")


def _run(tmp_path, planted_video, segments, boxes):
    root = _gyt_release(tmp_path / "gyt", segments, boxes)
    (root / "mining_resized_video").mkdir()
    (root / "mining_resized_video" / "planted.mp4").symlink_to(planted_video)
    selection = select_samples(GROUNDING_YOUTUBE.read_videos(root))
    grounder = Grounder(adapter=PointingColourAdapter(), depth=4, extractor="label")
    outcome = evaluate(
        selection,
        WholeVideoTask("spatiotemporal", TEMPORAL),
        context=RunContext(root=root, settings_hash="test"),
        run_dir=tmp_path / "run",
        load_grounder=lambda: grounder,
    )
    line = outcome.records["planted"]
    assert [[query, start, end] for query, start, end, _ in line["segments"]] == [
        [0, 5.0, 12.0],
        [1, 20.0, 26.0],
    ]
    return {
        task: WholeVideoTask(task, TEMPORAL).score(selection.samples, outcome.records)[0]
        for task in ("spatiotemporal", "temporal")
    }


def test_everything_planted_right_scores_one(tmp_path, planted_video):
    scores = _run(tmp_path, planted_video, PERFECT_SEGMENTS, PERFECT_BOXES)
    assert scores["spatiotemporal"]["iou_pointing"]["video_mean"] == 1.0
    assert scores["spatiotemporal"]["video_map"]["mean"] == 1.0
    assert scores["temporal"]["iou"]["video_mean"] == 1.0
    assert scores["temporal"]["iod"]["video_mean"] == 1.0
    assert scores["temporal"]["segment_map"]["mean"] == 1.0


def test_a_shifted_segment_scores_what_was_worked_out_by_hand(tmp_path, planted_video):
    scores = _run(tmp_path, planted_video, SHIFTED_SEGMENTS, SHIFTED_BOXES)
    spatiotemporal, temporal = scores["spatiotemporal"], scores["temporal"]
    # green: P = 20..25, G = 22..27, union 8; hits at 22 and 23 (24, 25 boxed elsewhere)
    assert spatiotemporal["iou_pointing"]["classes"]["green"]["value"] == pytest.approx(2 / 8)
    assert spatiotemporal["iou_pointing"]["video_mean"] == pytest.approx((1 + 2 / 8) / 2)
    # green tube IoU: tIoU 4/8 x 2 of 4 overlap seconds hit = 0.25
    assert list(spatiotemporal["video_map"]["map"].values()) == pytest.approx([1, 1, 0.5, 0.5, 0.5])
    assert spatiotemporal["video_map"]["mean"] == pytest.approx(0.7)
    assert temporal["iou"]["video_mean"] == pytest.approx((1 + 4 / 8) / 2)
    assert temporal["iod"]["video_mean"] == pytest.approx((1 + 4 / 6) / 2)
    assert list(temporal["segment_map"]["map"].values()) == pytest.approx([1, 1, 1, 0.5, 0.5])
    assert temporal["segment_map"]["mean"] == pytest.approx(0.8)


EVAL_BACKBONES = {
    "vgem_spatiotemporal_test_backbones": """
        from tests.eval.test_spatiotemporal import PointingColourAdapter
        from vgem.backbones.base import BackboneSpec

        COLOURS = BackboneSpec(
            summary="colour-planted relevance and points (tests)",
            load=lambda variant, weights: PointingColourAdapter(),
        )
    """
}


def test_the_command_runs_resumes_and_reports_a_whole_video_task(
    tmp_path, planted_video, plugin_site, monkeypatch
):
    plugin_site.install(
        "vgem-spatiotemporal-test-backbones",
        {"vgem.backbones": {"colours": "vgem_spatiotemporal_test_backbones:COLOURS"}},
        EVAL_BACKBONES,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    segments = {**SHIFTED_SEGMENTS, "gone": SHIFTED_SEGMENTS["planted"]}  # its video is missing
    boxes = {**SHIFTED_BOXES, "gone": SHIFTED_BOXES["planted"]}
    root = _gyt_release(tmp_path / "gyt", segments, boxes, videos=("planted", "gone"))
    (root / "mining_resized_video").mkdir()
    (root / "mining_resized_video" / "planted.mp4").symlink_to(planted_video)
    arguments = [
        "eval", "--task", "spatiotemporal", "--dataset", "gyt", "--root", str(root),
        "--backbone", "colours", "--depth", "4", "--extractor", "label",
        "--min-segment", "1", "--max-gap", "1", "--run-dir", "run", "--quiet",
    ]  # fmt: skip
    first = CliRunner().invoke(app, arguments)
    assert first.exit_code == 0, first.output
    assert "IoU+Pointing" in first.output and "mAP@0.1" in first.output
    assert "1 video(s) could not be run" in first.output
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert document["task"] == "spatiotemporal"
    assert document["overall"]["counts"] == {"selected": 2, "scored": 1, "errors": 1, "pending": 0}
    assert document["overall"]["iou_pointing"]["video_mean"] == pytest.approx(0.625)
    assert document["overall"]["video_map"]["mean"] == pytest.approx(0.7)
    assert document["temporal"]["min_segment"] == 1.0

    second = CliRunner().invoke(app, arguments)  # everything is on disk: nothing is grounded
    assert second.exit_code == 0, second.output
    again = json.loads((tmp_path / "run" / "results.json").read_text())
    assert again["this_sitting"] == {"resumed": 2, "evaluated": 0}
    assert again["overall"] == document["overall"]
    lines = (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 2

    shown = CliRunner().invoke(app, ["eval", "--show", "run"])
    assert shown.exit_code == 0 and "IoU+Pointing" in shown.output

    # once the missing video is there, --retry-errors grounds it and its line replaces the error
    (root / "mining_resized_video" / "gone.mp4").symlink_to(planted_video)
    retried = CliRunner().invoke(app, [*arguments, "--retry-errors"])
    assert retried.exit_code == 0, retried.output
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert document["this_sitting"] == {"resumed": 1, "evaluated": 1}
    assert document["overall"]["counts"]["scored"] == 2 and document["errors"] == []
    assert document["overall"]["iou_pointing"]["video_mean"] == pytest.approx(0.625)

    temporal = CliRunner().invoke(app, [*arguments[:2], "temporal", *arguments[3:-3], "--quiet"])
    assert temporal.exit_code == 0, temporal.output
    assert "IoD %" in temporal.output and "mAP@0.7" in temporal.output
    (run_dir,) = (tmp_path / "runs").iterdir()  # its own default run directory
    assert run_dir.name.startswith("gyt-temporal-colours-")
    document = json.loads((run_dir / "results.json").read_text())
    assert document["overall"]["iou"]["video_mean"] == pytest.approx(0.75)
    assert document["overall"]["segment_map"]["mean"] == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "when"], "--task takes spatial, spatiotemporal, temporal"),
        (["--task", "temporal", "--metrics", "map"], "--metrics chooses spatial figures"),
        (["--task", "temporal", "--manifest", "m.jsonl"], "a manifest holds single frames"),
        (["--task", "temporal", "--dataset", "daly", "--root", "."], "does not provide"),
        (["--task", "temporal", "--temporal-scorer", "nope", "--dataset", "gyt"], "nope"),
        (["--task", "temporal", "--threshold", "high", "--dataset", "gyt"], "--threshold"),
    ],
)
def test_whole_video_options_fail_with_one_line(extra, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["eval", *extra])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
