"""A run folder as a user meets it: folders that hold other files, two runs at once,
predictions edited by hand, text with control characters.

Every case ends in success or in one clear line with exit code 2, and leaves
every file of the user's byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.eval.test_eval_command import PLANTED, _planted_dataset, _write_manifest
from vgem.outputs import OwnedFolder


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def manifest(tmp_path):
    return _write_manifest(
        tmp_path / "data" / "manifest.jsonl", _planted_dataset(tmp_path / "data", videos=3)
    )


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_a_report_the_user_wrote_is_never_replaced(invoke, manifest, tmp_path):
    mine = tmp_path / "mydocs"
    (mine / "report").mkdir(parents=True)
    (mine / "report.html").write_text("<p>my own report</p>")
    (mine / "report" / "photo.jpg").write_bytes(b"\xff\xd8 my photo")
    before = _snapshot(mine)

    refused = invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", mine)

    assert refused.exit_code == 2
    line = _one_line(refused.stderr)
    assert "report.html" in line and "vgem did not write it" in line and "--run-dir" in line
    assert _snapshot(mine) == before
    assert sorted(path.name for path in mine.iterdir()) == ["report", "report.html"]


def test_a_folder_with_other_files_is_used_without_touching_them(invoke, manifest, tmp_path):
    mine = tmp_path / "mydocs"
    (mine / "report").mkdir(parents=True)
    (mine / "report" / "photo.jpg").write_bytes(b"\xff\xd8 my photo")
    (mine / "notes.txt").write_text("notes")
    before = _snapshot(mine)

    first = invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", mine)
    assert first.exit_code == 0, first.output
    pictures = sorted((mine / "report").glob("*.jpg"))
    assert len(pictures) > 1  # the gallery's, beside the user's photo
    # a second run with other settings shows other pictures: vgem's old ones go, the photo stays
    second = invoke(
        "eval", "--manifest", manifest, *PLANTED, "--run-dir", mine, "--iterations", "2"
    )
    assert second.exit_code == 0, second.output
    after = _snapshot(mine)
    assert {name: after[name] for name in before} == before
    page = (mine / "report.html").read_text()
    kept = [path for path in (mine / "report").glob("*.jpg") if path.name != "photo.jpg"]
    assert kept and all(f"report/{path.name}" in page for path in kept)  # stale ones went
    assert not set(pictures) & set(kept)


def test_a_second_run_on_a_busy_run_folder_is_refused(invoke, manifest, tmp_path):
    with OwnedFolder(tmp_path / "run", setting="run_dir"):
        busy = invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", "run")
    assert busy.exit_code == 2
    assert "Another vgem run" in _one_line(busy.stderr)
    assert not (tmp_path / "run" / "predictions.jsonl").exists()


def test_show_refuses_a_run_folder_in_use(invoke, manifest, tmp_path):
    assert invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", "run").exit_code == 0
    page = (tmp_path / "run" / "report.html").read_bytes()
    with OwnedFolder(tmp_path / "run", setting="run_dir"):
        shown = invoke("eval", "--show", "run")
    assert shown.exit_code == 2 and "Another vgem run" in shown.stderr
    assert (tmp_path / "run" / "report.html").read_bytes() == page


DAMAGE = [
    ("time", "abc"),
    ("model_point", "x"),
    ("model_boxes", [[1, 2, 3]]),
    ("iou", "x"),
    ("hit", "yes"),
    ("frame", 1.5),
]


def test_hand_edited_prediction_lines_are_damaged_lines_grounded_again(invoke, manifest, tmp_path):
    first = invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", "run")
    assert first.exit_code == 0, first.output
    figures = json.loads((tmp_path / "run" / "results.json").read_text())["overall"]
    log = tmp_path / "run" / "predictions.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for line, (key, value) in zip(lines, DAMAGE, strict=False):
        line[key] = value
    text = "".join(json.dumps(line) + "\n" for line in lines) + "{not json\n[1, 2]\n"
    log.write_text(text)

    shown = invoke("eval", "--show", "run")  # the old results, the report without bad lines
    assert shown.exit_code == 0, shown.output
    assert f"{len(DAMAGE) + 2} damaged line(s)" in shown.stderr

    again = invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", "run")
    assert again.exit_code == 0, again.output
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert document["damaged_lines"] == len(DAMAGE) + 2
    assert document["this_sitting"]["evaluated"] == len(DAMAGE)  # grounded again, the rest kept
    assert document["overall"] == figures  # the same figures as before the damage
    assert "damaged line(s)" in again.stderr


def test_control_characters_from_a_manifest_never_reach_the_terminal(invoke, tmp_path):
    records = _planted_dataset(tmp_path / "data", videos=1)
    for record in records:
        record["dataset"] = "evil\x1b[2J\x1b]0;title\x07name"
    manifest = _write_manifest(tmp_path / "data" / "manifest.jsonl", records)
    result = invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", "run")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "evil\\x1b[2J" in result.stdout
    shown = invoke("eval", "--show", "run")
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout


def test_a_refused_ray_address_creates_nothing(invoke, manifest, tmp_path):
    pytest.importorskip("ray")
    refused = invoke(
        "eval", "--manifest", manifest, *PLANTED, "--run-dir", "run",
        "--executor", "ray", "--ray-address", "127.0.0.1:1",
    )  # fmt: skip
    assert refused.exit_code == 2
    assert "--ray-address 127.0.0.1:1" in _one_line(refused.stderr)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--workers", "99999999999999999999", "--workers must be from 1 to"),
        ("--workers", "0", "--workers must be from 1 to"),
        ("--cpus-per-worker", "nan", "--cpus-per-worker must be a finite number"),
        ("--cpus-per-worker", "inf", "--cpus-per-worker must be a finite number"),
        ("--cpus-per-worker", "-1", "--cpus-per-worker must be at least 0"),
        ("--gpus-per-worker", "nan", "--gpus-per-worker must be a finite number"),
        ("--gpus-per-worker", "1.5", "--gpus-per-worker takes a fraction"),
    ],
)
def test_bad_executor_numbers_are_one_line_naming_the_flag(
    invoke, manifest, tmp_path, flag, value, said
):
    result = invoke(
        "eval", "--manifest", manifest, *PLANTED, "--run-dir", "run",
        "--executor", "ray", flag, value,
    )  # fmt: skip
    assert result.exit_code == 2
    assert said in _one_line(result.stderr)
    assert not (tmp_path / "run").exists()


def test_every_sitting_is_in_the_execution_record(invoke, tmp_path):
    records = _planted_dataset(tmp_path / "data", videos=3)
    manifest = _write_manifest(tmp_path / "data" / "manifest.jsonl", records)
    part = _write_manifest(tmp_path / "data" / "part.jsonl", records[:2])
    # the first sitting grounds two samples (a manifest of them, the same ids)...
    assert invoke("eval", "--manifest", part, *PLANTED, "--run-dir", "run").exit_code == 0
    (tmp_path / "run" / "results.json").unlink()  # ...as a run killed before its results
    again = invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", "run")
    assert again.exit_code == 0, again.output
    execution = json.loads((tmp_path / "run" / "results.json").read_text())["execution"]
    assert [sitting["executor"] for sitting in execution["sittings"]] == ["local", "local"]
    assert [worker["sitting"] for worker in execution["per_worker"]] == [1, 2]
    assert execution["workers"] == 2
    assert execution["samples"] == len(records)
    assert all(worker["host"] and worker["pid"] for worker in execution["per_worker"])


# --------------------------------------------------------------------------- what the report says


def _report_text(path: Path) -> str:
    import html
    import re

    page = path.read_text()
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_the_report_and_the_terminal_state_what_ran(invoke, tmp_path):
    records = _planted_dataset(tmp_path / "data", videos=2)
    records.append({**records[0], "id": "gone", "video": "gone.mp4"})
    manifest = _write_manifest(tmp_path / "data" / "manifest.jsonl", records)
    result = invoke("eval", "--manifest", manifest, *PLANTED, "--run-dir", "run")
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert document["weights"] is None and document["ran"]["weights"] == "planted"
    assert document["ran"]["device"] == "cpu" and document["settings"]["device"] == "auto"
    assert "vgem-eval-test-backbones" in document["versions"]  # the backbone's package

    text = _report_text(tmp_path / "run" / "report.html")
    assert "weights planted" in text and "published weights" not in text
    assert "device cpu" in text and "(asked: auto)" in text
    for python_repr in (" True ", " False ", " None ", "{'", "[0.3"):
        assert python_repr not in text, python_repr
    assert "ablation" not in text and "VideoGEM · planted" in text

    # the terminal: the same counts as the report, and the failed sample by name
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("│ manifest")]
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[:4] == ["manifest", str(len(records)), str(len(records) - 1), "1"]
    assert "failed: gone (gone.mp4): video 'gone.mp4' not found" in result.stderr

    loud = [option for option in PLANTED if option != "--quiet"]
    again = invoke("eval", "--manifest", manifest, *loud, "--run-dir", "run")
    assert f"resuming: {len(records)} of {len(records)} found done" in again.stderr
    paths = [line.split(": ", 1)[1] for line in again.stderr.splitlines() if ": run/" in line]
    assert paths == ["run/results.json", "run/report.html"]  # one way: as the run dir was given
