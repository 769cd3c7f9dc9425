"""``vgem eval`` end to end: kill and resume, bad manifest lines, export, the paper beside.

The killed run is a real subprocess killed with SIGKILL; the other commands
run in-process (typer's CliRunner) to keep the suite fast. Both find the
planted test backbone as an installed plugin, as a user's would be found.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.planted import planted_frame
from tests.synth import write_video
from vgem.eval.datasets.gyt import GROUNDING_YOUTUBE
from vgem.eval.manifest import Sample, load_manifest

REPOSITORY = Path(__file__).resolve().parents[2]
SLOW_CLIP_VARIABLE = "VGEM_TEST_SECONDS_PER_CLIP"

EVAL_BACKBONES = {
    "vgem_eval_test_backbones": """
        import os
        import time

        from tests.planted import PlantedAdapter
        from vgem.backbones.base import BackboneSpec


        class SlowPlantedAdapter(PlantedAdapter):
            def embed(self, clip):
                time.sleep(float(os.environ.get("VGEM_TEST_SECONDS_PER_CLIP", "0")))
                return super().embed(clip)


        PLANTED = BackboneSpec(
            summary="planted heatmaps, slow on request (tests)",
            load=lambda variant, weights: SlowPlantedAdapter(),
        )
    """
}

PLANTED = ("--backbone", "planted", "--depth", "4", "--extractor", "label", "--quiet")
SIZE = 64


def _planted_dataset(root: Path, videos: int) -> list[dict]:
    """Videos of two planted frames (0 s and 0.5 s); per video a hit and a miss or two hits."""
    root.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(videos):
        patches = [(1 + index % 5, 2), (4, 1 + index % 6)]
        frames = [planted_frame(SIZE, SIZE, row, column) for row, column in patches]
        write_video(root / f"v{index}.mp4", frames, size=(SIZE, SIZE), fps=2)
        for position, (row, column) in enumerate(patches):
            x, y = 8 * column + 3, 8 * row + 3
            missed = position == 1 and index % 2 == 0
            box = [x + 2, y, x + 9, y + 5] if missed else [x - 4, y - 4, x + 4, y + 4]
            records.append(
                {
                    "id": f"v{index}/{position}",
                    "video": f"v{index}.mp4",
                    "time": position / 2,
                    "query": ["cut onion", "stir soup"][position],
                    "boxes": [box],
                }
            )
    return records


def _write_manifest(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- killed and resumed


def _cli_environment(plugin_site, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugin_site.root), str(REPOSITORY)]),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "200",
        **extra,
    }


def _complete_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [
        json.loads(line)
        for line in path.read_bytes().decode().splitlines(keepends=True)
        if line.endswith("\n")
    ]


def _figures(results_path: Path) -> dict:
    document = json.loads(results_path.read_text())
    keys = ("complete", "overall", "datasets", "errors", "problems", "selection", "settings_hash")
    return {key: document[key] for key in keys}


def test_run_killed_halfway_resumes_to_the_same_results(invoke, planted_plugin, tmp_path):
    data = tmp_path / "data"
    records = _planted_dataset(data, videos=6)
    records.append({**records[0], "id": "gone", "video": "gone.mp4"})
    manifest = _write_manifest(data / "manifest.jsonl", records)
    arguments = ("eval", "--manifest", manifest, *PLANTED)

    # A real process, slowed down so that it can be killed between videos.
    slow = subprocess.Popen(
        [sys.executable, "-m", "vgem.cli", *map(str, arguments), "--run-dir", "killed"],
        cwd=tmp_path,
        env=_cli_environment(planted_plugin, **{SLOW_CLIP_VARIABLE: "0.4"}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    predictions = tmp_path / "killed" / "predictions.jsonl"
    deadline = time.monotonic() + 90
    while len(_complete_lines(predictions)) < 4 and slow.poll() is None:
        assert time.monotonic() < deadline, "the slow run wrote nothing"
        time.sleep(0.02)
    slow.send_signal(signal.SIGKILL)
    _, stderr = slow.communicate()
    assert slow.returncode == -signal.SIGKILL, stderr
    lines_at_kill = len(_complete_lines(predictions))
    assert 4 <= lines_at_kill < len(records), "the kill did not land half way"
    assert not (tmp_path / "killed" / "results.json").exists()

    resumed = invoke(*arguments, "--run-dir", "killed")
    assert resumed.exit_code == 0, resumed.output
    uninterrupted = invoke(*arguments, "--run-dir", "full")
    assert uninterrupted.exit_code == 0, uninterrupted.output

    assert _figures(tmp_path / "killed" / "results.json") == _figures(
        tmp_path / "full" / "results.json"
    )
    figures = _figures(tmp_path / "full" / "results.json")
    assert figures["overall"]["counts"] == {"selected": 13, "scored": 12, "errors": 1, "pending": 0}
    assert figures["overall"]["pointing"]["hits"] == 9
    ids = [line["id"] for line in _complete_lines(predictions)]
    assert sorted(ids) == sorted(record["id"] for record in records)  # each exactly once
    sitting = json.loads((tmp_path / "killed" / "results.json").read_text())["this_sitting"]
    assert sitting == {"resumed": lines_at_kill, "evaluated": len(records) - lines_at_kill}


# --------------------------------------------------------------------------- bad manifest lines


def test_bad_manifest_lines_are_reported_and_the_run_goes_on(invoke, tmp_path):
    good = _planted_dataset(tmp_path / "data", videos=1)
    bad_box = {**good[0], "id": "bad-box", "boxes": [[30, 10, 20, 40]]}
    missing = {**good[0], "id": "missing", "video": "nowhere.mp4"}
    short_box = {**good[0], "id": "short-box", "boxes": [[1, 2, 3]]}
    manifest = _write_manifest(
        tmp_path / "data" / "manifest.jsonl",
        [good[0], '{"id": "broken", "video": ', bad_box, missing, short_box, good[1]],
    )
    result = invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", "run")
    assert result.exit_code == 0, result.output
    warnings = result.stderr
    assert "manifest.jsonl:2: invalid JSON" in warnings
    assert "manifest.jsonl:4:" not in warnings  # a missing video is an error of the run
    assert "manifest.jsonl:5:" in warnings and "[x1, y1, x2, y2]" in warnings  # not markup
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    counts = {"selected": 4, "scored": 3, "errors": 1, "pending": 0}
    assert document["overall"]["counts"] == counts
    assert [problem["line"] for problem in document["problems"]] == [2, 5]
    assert document["errors"][0]["id"] == "missing"
    assert "nowhere.mp4" in document["errors"][0]["error"]
    assert document["data"]["boxes"]["inverted"] == 1  # kept as published: a miss


# --------------------------------------------------------------------------- export


@pytest.fixture
def gyt_root(tmp_path) -> Path:
    root = tmp_path / "gyt"
    root.mkdir()
    annotations = {
        "vidA": [
            {"second": 3, "box": [10, 20, 110, 120], "step_name": "crack eggs"},
            {"second": 4, "box": [12, 22, 112, 122], "step_name": "crack eggs"},
        ],
        "vidB": [{"second": 1, "box": [0, 0, 50, 60], "step_name": "whisk"}],
    }
    (root / "box_anno.json").write_text(json.dumps(annotations))
    return root


def test_export_manifest_round_trips_and_loads_no_model(invoke, gyt_root, tmp_path):
    # an unknown backbone would fail if the export loaded a model
    result = invoke(
        "eval", "--dataset", "gyt", "--root", gyt_root, "--export-manifest", "gyt.jsonl",
        "--backbone", "no-such-backbone",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    exported, problems = load_manifest(tmp_path / "gyt.jsonl")
    assert problems == []
    adapter_samples = [
        item for item in GROUNDING_YOUTUBE.read(gyt_root) if isinstance(item, Sample)
    ]
    assert exported == adapter_samples
    assert not (tmp_path / "runs").exists()


def test_export_applies_limit_and_shuffle(invoke, gyt_root, tmp_path):
    arguments = (
        "eval",
        "--dataset",
        "gyt",
        "--root",
        gyt_root,
        "--limit",
        "2",
        "--shuffle-seed",
        "3",
    )
    assert invoke(*arguments, "--export-manifest", "a.jsonl").exit_code == 0
    assert invoke(*arguments, "--export-manifest", "b.jsonl").exit_code == 0
    first, _ = load_manifest(tmp_path / "a.jsonl")
    assert len(first) == 2
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()


# --------------------------------------------------------------------------- the paper beside


def test_compare_paper_matches_the_row_but_shows_no_figure_for_a_partial_run(
    invoke, gyt_root, tmp_path
):
    # No videos were downloaded: every sample is an error and no model is loaded.
    result = invoke("eval", "--dataset", "gyt", "--root", gyt_root, "--compare", "paper", "--quiet")
    assert result.exit_code == 0, result.output
    assert "VideoGEM, ViCLIP" in result.stdout
    assert "57.21" not in result.stdout  # an incomplete benchmark is no comparison
    said = " ".join(result.stdout.split())
    assert "no published figure shown: 3 of 3 sample(s) could not be run" in said
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("gyt-viclip-b16-")
    document = json.loads((run_dir / "results.json").read_text())
    assert document["paper"] == {
        "row": "VideoGEM, ViCLIP",
        "reason": None,
        "accuracy": {"gyt": 57.21},
    }
    assert document["overall"]["counts"]["errors"] == 3


def test_compare_paper_says_when_there_is_no_published_figure(invoke, gyt_root):
    result = invoke(
        "eval",
        "--dataset",
        "gyt",
        "--root",
        gyt_root,
        "--compare",
        "paper",
        "--weighting",
        "static",
    )
    assert result.exit_code == 0, result.output
    assert "no published figure" in result.stdout
    assert "57.21" not in result.stdout


def test_show_puts_runs_side_by_side_with_their_average(invoke, gyt_root, tmp_path):
    daly_like = _write_manifest(
        tmp_path / "daly" / "manifest.jsonl",
        [
            {
                "id": "d1",
                "video": "x.mp4",
                "time": 0,
                "query": "Drinking",
                "boxes": [[0, 0, 1, 1]],
                "dataset": "daly",
            }
        ],
    )
    assert invoke("eval", "--dataset", "gyt", "--root", gyt_root, "--run-dir", "one").exit_code == 0
    assert invoke("eval", "--manifest", daly_like, "--run-dir", "two").exit_code == 0
    result = invoke("eval", "--show", "one", "--show", "two", "--compare", "paper")
    assert result.exit_code == 0, result.output
    assert "GYT" in result.stdout and "DALY" in result.stdout
    # each row names its run; no paper figure beside runs whose samples failed
    assert _row_cells(result.stdout, "one")[:2] == ["one", "GYT"]
    assert _row_cells(result.stdout, "two")[:2] == ["two", "DALY"]
    assert "67.73" not in result.stdout
    assert (tmp_path / "one" / "report.html").is_file()
    assert (tmp_path / "two" / "report.html").is_file()


def _row_cells(text: str, first_cell: str) -> list[str]:
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in\n{text}")


def test_a_table_written_to_a_file_keeps_every_header_whole(invoke, tmp_path, monkeypatch):
    """`vgem eval --task temporal … > out.txt`: full width off a terminal, no "mAP…"."""
    monkeypatch.setenv("COLUMNS", "60")  # even where the environment says narrow
    from vgem.cli.eval import _print_tables
    from vgem.eval.report import render_tables
    from vgem.eval.tasks import VIDEO_TASK_FIGURES, WholeVideoTask

    figures = {"video_mean": 0.5, "videos": 1}
    segment_map = {"map": {"0.1": 0.5, "0.3": 0.4, "0.5": 0.3, "0.7": 0.2}, "mean": 0.35}
    scores = {
        "counts": {"selected": 1, "scored": 1, "errors": 0, "pending": 0},
        "iou": figures, "iod": figures, "segment_map": segment_map,
    }  # fmt: skip
    document = {
        "task": "temporal", "temporal": {}, "backbone": "viclip-b16", "settings_hash": "abc",
        "datasets": {"gyt": scores}, "run_dir": "/runs/x",
    }  # fmt: skip
    import io
    from contextlib import redirect_stdout

    output = io.StringIO()
    with redirect_stdout(output):
        _print_tables(render_tables([document], compare_paper=False))
    text = output.getvalue()
    assert "…" not in text
    task = WholeVideoTask("temporal")
    titles = [column.title for column in task.figure_columns([scores])]
    assert VIDEO_TASK_FIGURES["temporal"] and len(titles) == 7
    header = next(line for line in text.splitlines() if "dataset" in line)
    for title in ["dataset", "videos", "errors", *titles]:
        assert title in header, (title, header)


# --------------------------------------------------------------------------- user errors


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ((), "--dataset"),
        (("--dataset", "gyt"), "--root"),
        (("--dataset", "nope", "--root", "."), "nope"),
        (("--dataset", "gyt", "--manifest", "m.jsonl"), "one of"),
        (("--manifest", "absent.jsonl"), "absent.jsonl"),
        (("--manifest", "absent.jsonl", "--metrics", "recall"), "--metrics"),
        (("--manifest", "absent.jsonl", "--compare", "sota"), "--compare"),
        (("--manifest", "absent.jsonl", "--weighting", "max"), "--weighting"),
        (("--show", "nowhere"), "No results"),
        (("--show", "one", "--dataset", "gyt"), "--show"),
        (("--manifest", "m.jsonl", "--root", "absent"), "absent"),
    ],
)
def test_user_errors_are_one_line(invoke, arguments, fragment):
    result = invoke("eval", *arguments)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]


@pytest.mark.parametrize(("executor", "said"), [("local", True), ("ray", False)])
def test_bf16_where_this_cpu_emulates_it_is_said_for_local_runs(
    invoke, tmp_path, monkeypatch, executor, said
):
    monkeypatch.setattr("vgem.precision.cpu_has_amx_bf16", lambda: False)
    monkeypatch.setattr("vgem.execution.factory.make_executor", lambda *args, **kwargs: None)
    manifest = _write_manifest(
        tmp_path / "data" / "manifest.jsonl", _planted_dataset(tmp_path / "data", videos=1)
    )
    result = invoke(
        "eval", "--manifest", manifest, *PLANTED, "--precision", "bf16", "--run-dir", "run",
        "--executor", executor,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ("warning: bf16 was asked for" in result.stderr) is said


def test_a_run_folder_that_is_a_file_is_one_line_naming_the_flag(invoke, tmp_path):
    manifest = _write_manifest(
        tmp_path / "data" / "manifest.jsonl", _planted_dataset(tmp_path / "data", videos=1)
    )
    (tmp_path / "run").write_text("my notes\n")
    result = invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", "run")
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: ") and "--run-dir" in line
    assert (tmp_path / "run").read_text() == "my notes\n"
