"""``vgem ground --out-dir``: many videos, one JSON each, resumable, locally or on Ray.

The test backbones and the small Ray instance (2 CPUs, no dashboard) are
those of tests/ray_site.py: a worker can be made to die in the middle of a
video. The Ray tests are skipped when Ray is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from tests.planted import planted_frame
from tests.synth import truncate_file, write_video
from vgem.batch import BATCH_RECORD, BatchVideo, find_videos, ground_videos
from vgem.cli import app
from vgem.errors import InputError
from vgem.settings import Settings

PLANTED = ("--backbone", "planted", "--depth", "4", "--extractor", "label", "--quiet")
PLANTED_SETTINGS = Settings(depth=4, extractor="label")
QUERIES = ("cut onion", "stir soup")
SOME_FAILED = 3


@pytest.fixture
def cli(backbone_site, tmp_path, monkeypatch):
    """``vgem ARGS`` in this process, in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)

    def run(*arguments: object):
        return CliRunner().invoke(app, [str(each) for each in arguments], env={"COLUMNS": "200"})

    return run


def _tiny_video(path: Path, row: int, column: int) -> Path:
    """Two seconds at 2 fps: two grounded times (two clips) at the default 1 fps."""
    frames = [planted_frame(96, 64, row, column), planted_frame(96, 64, column, row)] * 2
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, frames, size=(96, 64), fps=2)


@pytest.fixture
def videos(tmp_path):
    """Four tiny videos, one in a subfolder, and the folder that holds them."""
    folder = tmp_path / "videos"
    paths = [
        _tiny_video(folder / "a.mp4", 1, 2),
        _tiny_video(folder / "b.mp4", 3, 5),
        _tiny_video(folder / "c.mp4", 6, 0),
        _tiny_video(folder / "more" / "d.mp4", 2, 7),
    ]
    return SimpleNamespace(folder=folder, paths=paths, ids=["a", "b", "c", "more/d"])


def _document(path: Path) -> dict:
    """A grounding document without the one thing that says where the video was read from."""
    document = json.loads(path.read_text())
    document["video"].pop("path")
    return document


def _documents(out_dir: Path) -> dict[str, dict]:
    """Each video's grounding document, without the batch's request fingerprint
    (which a video grounded alone has not)."""
    documents = {}
    for path in sorted(out_dir.rglob("*.json")):
        if path == out_dir / BATCH_RECORD:
            continue
        document = _document(path)
        assert isinstance(document.pop("batch_request"), str)
        documents[path.relative_to(out_dir).with_suffix("").as_posix()] = document
    return documents


def _record(out_dir: Path) -> dict:
    return json.loads((out_dir / BATCH_RECORD).read_text())


def _leftovers(out_dir: Path) -> list[Path]:
    return [path for path in out_dir.rglob("*") if path.name.endswith(".part")]


def _summary_line(completed) -> str:
    (line,) = [line for line in completed.stderr.splitlines() if "video(s):" in line]
    return line


# --------------------------------------------------------------------------- the same answers


@pytest.mark.parametrize("form", ["folder", "glob", "list"])
def test_many_videos_are_grounded_as_each_alone(cli, videos, tmp_path, form):
    alone = {}
    for video, name in zip(videos.paths, videos.ids, strict=True):
        completed = cli("ground", video, *QUERIES, *PLANTED, "--json", f"alone/{name}.json")
        assert completed.exit_code == 0, completed.output
        alone[name] = _document(tmp_path / "alone" / f"{name}.json")
    if form == "folder":
        source = "videos"
    elif form == "glob":
        source = "videos/**/*.mp4"
    else:
        listed = ["a.mp4", "# a comment", "", str(videos.paths[1]), "c.mp4", "more/d.mp4"]
        (videos.folder / "videos.txt").write_text("\n".join(listed) + "\n")
        source = "videos/videos.txt"
    completed = cli("ground", source, *QUERIES, *PLANTED, "--out-dir", "out")
    assert completed.exit_code == 0, completed.output
    assert completed.stdout == ""
    assert "4 video(s): 4 grounded, 0 skipped (done before), 0 failed" in _summary_line(completed)
    assert _documents(tmp_path / "out") == alone
    assert _leftovers(tmp_path / "out") == []


def test_heatmaps_and_annotated_videos_are_written_per_video_when_asked(cli, videos, tmp_path):
    completed = cli(
        "ground", "videos", "cut onion", *PLANTED, "--out-dir", "out",
        "--save-heatmaps", "--save-video",
    )  # fmt: skip
    assert completed.exit_code == 0, completed.output
    for name in videos.ids:
        for suffix in (".json", ".npz", ".mp4"):
            assert (tmp_path / "out" / f"{name}{suffix}").stat().st_size > 0


def test_a_rerun_skips_the_videos_already_done(cli, videos, tmp_path):
    first = cli("ground", "videos", "cut onion", *PLANTED, "--out-dir", "out")
    assert first.exit_code == 0, first.output
    done = {path: path.stat().st_mtime_ns for path in (tmp_path / "out").rglob("*.json")}
    (tmp_path / "out" / "b.json").unlink()
    edited = '{"schema": "vgem.grounding/1", "queri'  # a user cut it: no longer vgem's file
    (tmp_path / "out" / "c.json").write_text(edited)
    refused = cli("ground", "videos", "cut onion", *PLANTED, "--out-dir", "out")
    assert refused.exit_code == 2
    assert "c.json: the file is already there and vgem did not write it" in refused.output
    assert (tmp_path / "out" / "c.json").read_text() == edited
    assert not (tmp_path / "out" / "b.json").exists()  # refused before any work
    (tmp_path / "out" / "c.json").unlink()
    again = cli("ground", "videos", "cut onion", *PLANTED, "--out-dir", "out")
    assert again.exit_code == 0, again.output
    assert "4 video(s): 2 grounded, 2 skipped (done before), 0 failed" in _summary_line(again)
    for path in (tmp_path / "out" / "a.json", tmp_path / "out" / "more" / "d.json"):
        assert path.stat().st_mtime_ns == done[path]  # untouched
    assert json.loads((tmp_path / "out" / "c.json").read_text())["queries"]

    other_queries = cli("ground", "videos", "stir soup", *PLANTED, "--out-dir", "out")
    assert "4 grounded, 0 skipped" in _summary_line(other_queries)  # other queries: redone


@pytest.mark.parametrize(
    ("changed", "redone"),
    [
        (("--iterations", "2"), True),  # a method setting: other answers
        (("--fps", "2"), True),  # other grounded times
        (("--temporal",), True),
        (("--batch-size", "3"), False),  # only how fast
    ],
)
def test_a_rerun_with_another_request_redoes_every_video(cli, videos, tmp_path, changed, redone):
    first = cli("ground", "videos", "cut onion", *PLANTED, "--out-dir", "out")
    assert first.exit_code == 0, first.output
    before = _record(tmp_path / "out")["request"]
    again = cli("ground", "videos", "cut onion", *PLANTED, *changed, "--out-dir", "out")
    assert again.exit_code == 0, again.output
    expected = "4 grounded, 0 skipped" if redone else "0 grounded, 4 skipped"
    assert expected in _summary_line(again)
    after = _record(tmp_path / "out")["request"]
    assert (after["fingerprint"] != before["fingerprint"]) is redone
    fingerprints = {d["batch_request"] for d in map(_document, (tmp_path / "out").glob("?.json"))}
    assert fingerprints == {after["fingerprint"]}


def test_a_bad_video_is_reported_and_skipped_and_the_exit_code_says_so(cli, videos, tmp_path):
    truncate_file(_tiny_video(videos.folder / "truncated.mp4", 1, 1), 0.5)
    (videos.folder / "notes.mp4").write_text("these are my notes, not a video\n")
    completed = cli("ground", "videos", "cut onion", *PLANTED, "--out-dir", "out")
    assert completed.exit_code == SOME_FAILED, completed.output
    assert "6 video(s): 4 grounded, 0 skipped (done before), 2 failed" in _summary_line(completed)
    failed = [line for line in completed.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2
    assert any("notes.mp4" in line for line in failed)
    assert any("truncated.mp4" in line for line in failed)
    assert sorted(_documents(tmp_path / "out")) == sorted(videos.ids)
    assert "Traceback" not in completed.output
    record = _record(tmp_path / "out")  # what a script reads instead of the terminal
    assert record["counts"] == {
        "videos": 6, "succeeded": 4, "skipped": 0, "failed": 2, "pending": 0
    }  # fmt: skip
    assert sorted(entry["id"] for entry in record["failed"]) == ["notes", "truncated"]
    assert all(entry["error"] for entry in record["failed"])
    assert record["request"]["queries"] == ["cut onion"]
    assert record["request"]["settings"]["depth"] == 4


def test_a_video_named_like_the_batch_record_is_refused(backbone_site, videos, tmp_path):
    _tiny_video(videos.folder / "vgem-batch.mp4", 1, 1)
    with pytest.raises(InputError, match=r"vgem-batch\.json"):
        ground_videos(
            videos.folder, ["cut onion"], tmp_path / "out", backbone="planted",
            settings=PLANTED_SETTINGS,
        )  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_a_video_named_like_another_videos_coco_file_is_refused(backbone_site, tmp_path):
    folder = tmp_path / "v"
    _tiny_video(folder / "x.mp4", 1, 1)
    _tiny_video(folder / "x.coco.mp4", 2, 2)  # its JSON would be x's COCO file
    with pytest.raises(InputError, match=r"x\.coco\.json"):
        ground_videos(
            folder, ["cut onion"], tmp_path / "out", backbone="planted",
            settings=PLANTED_SETTINGS, save_coco=True,
        )  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_a_missing_listed_video_fails_alone(backbone_site, videos, tmp_path):
    listed = tmp_path / "list.txt"
    listed.write_text(f"{videos.paths[0]}\n{tmp_path / 'gone.mp4'}\n")
    summary = ground_videos(
        listed, ["cut onion"], tmp_path / "out", backbone="planted", settings=PLANTED_SETTINGS
    )
    assert [outcome.id for outcome in summary.succeeded] == ["videos/a"]
    (gone,) = summary.failed
    assert gone.id == "gone" and "not found" in (gone.error or "")


def test_ctrl_c_keeps_the_videos_done_and_a_rerun_finishes(backbone_site, videos, tmp_path):
    def interrupt(outcome):
        raise KeyboardInterrupt

    out = tmp_path / "out"
    options = {"backbone": "planted", "settings": PLANTED_SETTINGS}
    summary = ground_videos(videos.folder, ["cut onion"], out, on_video=interrupt, **options)
    assert summary.interrupted
    assert summary.counts() == {
        "videos": 4, "succeeded": 1, "skipped": 0, "failed": 0, "pending": 3
    }  # fmt: skip
    assert list(_documents(out)) == ["a"]
    assert _leftovers(out) == []
    summary = ground_videos(videos.folder, ["cut onion"], out, **options)
    assert (len(summary.skipped), len(summary.succeeded)) == (1, 3)


# --------------------------------------------------------------------------- the forms


def test_the_output_folder_inside_the_source_is_not_searched(backbone_site, videos, tmp_path):
    _tiny_video(videos.folder / "out" / "old.mp4", 1, 1)
    found = find_videos(videos.folder, exclude=[videos.folder / "out"])
    assert [video.id for video in found] == videos.ids


def test_a_folder_of_frames_is_one_video(backbone_site, tmp_path):
    from tests.synth import write_frame_folder

    write_frame_folder(tmp_path / "frames", 3)
    assert [video.id for video in find_videos(tmp_path / "frames")] == ["frames"]
    write_frame_folder(tmp_path / "many" / "one", 3)
    _tiny_video(tmp_path / "many" / "two.mp4", 1, 1)
    found = find_videos(tmp_path / "many")
    assert [(video.id, video.path.name) for video in found] == [
        ("one", "one"),
        ("two", "two.mp4"),
    ]


def test_two_videos_that_would_share_outputs_are_refused(backbone_site, tmp_path):
    from vgem.errors import InputError

    _tiny_video(tmp_path / "v" / "a.mp4", 1, 1)
    _tiny_video(tmp_path / "v" / "a.mkv", 1, 1)
    with pytest.raises(InputError, match=r"a\.json"):
        find_videos(tmp_path / "v")


def test_many_videos_without_an_output_folder_is_one_clear_error(cli, videos):
    for source in ("videos", "videos/*.mp4"):
        completed = cli("ground", source, "cut onion", *PLANTED)
        assert completed.exit_code == 2
        (line,) = completed.stderr.splitlines()
        assert line.startswith("error: ") and "--out-dir" in line


def test_a_glob_the_shell_expanded_is_one_clear_error(cli, videos):
    completed = cli("ground", *videos.paths[:2], "cut onion", *PLANTED, "--out-dir", "out")
    assert completed.exit_code == 2
    assert "quoted glob" in completed.stderr


@pytest.mark.parametrize(
    "options",
    [("--json", "x.json"), ("--video-out", "x.mp4")],
)
def test_one_video_outputs_are_refused_with_an_output_folder(cli, videos, options):
    completed = cli("ground", "videos", "cut onion", *PLANTED, "--out-dir", "out", *options)
    assert completed.exit_code == 2
    assert "--save-video" in completed.stderr


@pytest.mark.parametrize("options", [("--save-video",), ("--workers", "2")])
def test_batch_options_need_an_output_folder(cli, videos, options):
    completed = cli("ground", videos.paths[0], "cut onion", *PLANTED, *options)
    assert completed.exit_code == 2
    assert "--out-dir" in completed.stderr


def test_ground_and_eval_take_the_same_executor_options():
    from dataclasses import fields

    import typer

    from vgem.cli.options import ExecutorOptions

    names = {option.name for option in fields(ExecutorOptions)}

    def declared(command_name: str) -> dict:
        command = typer.main.get_command(app).commands[command_name]  # type: ignore[attr-defined]
        return {
            parameter.name: (tuple(parameter.opts), parameter.help, parameter.default)
            for parameter in command.params
            if parameter.name in names
        }

    assert set(declared("ground")) == names
    assert declared("ground") == declared("eval")


# --------------------------------------------------------------------------- on Ray


def test_a_ray_batch_equals_the_local_batch(cli, ray_instance, videos, tmp_path):
    local = cli("ground", "videos", *QUERIES, *PLANTED, "--out-dir", "local")
    assert local.exit_code == 0, local.output
    on_ray = cli(
        "ground", "videos", *QUERIES, *PLANTED, "--out-dir", "ray",
        "--executor", "ray", "--workers", "2",
    )  # fmt: skip
    assert on_ray.exit_code == 0, on_ray.output
    assert "4 grounded" in _summary_line(on_ray)
    assert _documents(tmp_path / "ray") == _documents(tmp_path / "local")


def test_a_worker_killed_mid_batch_leaves_every_json_once(backbone_site, deaths, videos, tmp_path):
    from vgem.eval.ray_executor import RayExecutor

    (deaths / "once").touch()
    options = {"backbone": "planted", "settings": PLANTED_SETTINGS}
    local = ground_videos(videos.folder, QUERIES, tmp_path / "local", **options)
    on_ray = ground_videos(
        videos.folder, QUERIES, tmp_path / "ray", executor=RayExecutor(workers=2), **options
    )
    assert (deaths / "died").exists()  # a worker died, on the second clip of its video
    assert [outcome.id for outcome in on_ray.succeeded] == videos.ids
    assert on_ray.execution["retried_units"] == 1
    assert any("died" in worker for worker in on_ray.execution["per_worker"])
    assert _documents(tmp_path / "ray") == _documents(tmp_path / "local")
    files = sorted(
        path.name
        for path in (tmp_path / "ray").rglob("*")
        if path.is_file() and ".vgem" not in path.parts
    )
    # each once, nothing left over (besides vgem's lock and record in .vgem/)
    assert files == ["a.json", "b.json", "c.json", "d.json", BATCH_RECORD]
    assert len(local.succeeded) == 4


def test_ground_videos_takes_a_list_of_paths(backbone_site, videos, tmp_path):
    summary = ground_videos(
        videos.paths[:2], ["cut onion"], tmp_path / "out", backbone="planted",
        settings=PLANTED_SETTINGS,
    )  # fmt: skip
    assert [outcome.id for outcome in summary.succeeded] == ["a", "b"]
    again = ground_videos(
        [BatchVideo("x", videos.paths[0])], ["cut onion"], tmp_path / "out",
        backbone="planted", settings=PLANTED_SETTINGS,
    )  # fmt: skip
    assert [outcome.id for outcome in again.succeeded] == ["x"]


# --------------------------------------------------------------------------- the user's files


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_a_batch_never_writes_over_one_of_its_own_inputs(cli, tmp_path):
    inputs = tmp_path / "in"
    _tiny_video(inputs / "a.mp4", 1, 2)
    _tiny_video(inputs / "keep" / "a.mp4", 3, 5)  # named like a.mp4's annotated video
    (inputs / "list.txt").write_text("a.mp4\nkeep/a.mp4\n")
    before = _snapshot(inputs)
    refused = cli(
        "ground", "in/list.txt", "cut onion", *PLANTED, "--out-dir", "in/keep", "--save-video"
    )
    assert refused.exit_code == 2
    line = _one_line(refused.stderr)
    assert "in/keep/a.mp4" in line and "input of this run" in line and "--out-dir" in line
    assert _snapshot(inputs) == before  # nothing written, nothing replaced


def test_a_folder_source_never_replaces_a_video_of_its_out_dir(cli, tmp_path):
    _tiny_video(tmp_path / "in" / "a.mp4", 1, 2)
    _tiny_video(tmp_path / "in" / "out" / "a.mp4", 3, 5)  # skipped as input, still the user's
    before = _snapshot(tmp_path / "in")
    refused = cli("ground", "in", "cut onion", *PLANTED, "--out-dir", "in/out", "--save-video")
    assert refused.exit_code == 2
    assert "in/out/a.mp4: the file is already there and vgem did not write it" in _one_line(
        refused.stderr
    )
    assert _snapshot(tmp_path / "in") == before


def test_an_out_dir_with_other_files_keeps_them(cli, videos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / ".a.json.0123abcd.xyz.part").write_text("another process's staging file")
    before = _snapshot(out)
    done = cli("ground", "videos", "cut onion", *PLANTED, "--out-dir", "out")
    assert done.exit_code == 0, done.output
    after = _snapshot(out)
    assert {name: after[name] for name in before} == before


def test_a_second_batch_on_a_busy_out_dir_is_refused_in_one_line(cli, videos, tmp_path):
    from vgem.outputs import OwnedFolder

    with OwnedFolder(tmp_path / "out", setting="out_dir"):
        busy = cli("ground", "videos", "cut onion", *PLANTED, "--out-dir", "out")
    assert busy.exit_code == 2
    assert "Another vgem run" in _one_line(busy.stderr)
    assert not list((tmp_path / "out").glob("*.json"))


def test_a_list_file_may_mix_relative_and_absolute_entries(cli, videos, tmp_path):
    lists = tmp_path / "lists" / "deeper"
    lists.mkdir(parents=True)
    (lists / "mixed.txt").write_text(f"{videos.paths[0]}\n../../videos/b.mp4\n")
    done = cli("ground", "lists/deeper/mixed.txt", "cut onion", *PLANTED, "--out-dir", "out")
    assert done.exit_code == 0, done.output
    assert sorted(path.name for path in (tmp_path / "out").glob("*.json")) == [
        "a.json",
        "b.json",
        BATCH_RECORD,
    ]


def test_a_refused_ray_address_creates_no_out_dir(cli, videos, tmp_path):
    pytest.importorskip("ray")
    refused = cli(
        "ground", "videos", "cut onion", *PLANTED, "--out-dir", "out",
        "--executor", "ray", "--ray-address", "127.0.0.1:1",
    )  # fmt: skip
    assert refused.exit_code == 2
    assert not (tmp_path / "out").exists()
