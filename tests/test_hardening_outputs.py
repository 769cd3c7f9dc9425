# ruff: noqa: F811 (the command-line fixtures are imported from tests.test_cli)
"""Issue 17, part A: outputs that never clobber, valid JSON, early and one-line failures.

Every case ends in a sensible success, or in one clear line and a non-zero
exit, with no file other than the intended outputs created, changed or
removed. Device nodes are made only inside the test's temporary folder.
"""

from __future__ import annotations

import json
import math
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli import (  # noqa: F401 (fixtures)
    PLANTED,
    REPOSITORY,
    _assert_one_line_error,
    cli,
    cli_process,
    offline_hub,
    test_backbones,
    video,
)
from vgem.errors import InputError
from vgem.results import json_text
from vgem.staging import OutputSet, atomic_write


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under ``folder`` (not following links): its type and, for files, bytes."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        if "site" in path.relative_to(folder).parts[:1] or "hf-home" in path.parts:
            continue
        mode = path.lstat().st_mode
        content = path.read_bytes() if stat.S_ISREG(mode) else None
        entries[str(path.relative_to(folder))] = (stat.S_IFMT(mode), content)
    return entries


def _changes(before, after) -> set[str]:
    return {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}


# ------------------------------------------------------------------------ the OutputSet


def test_outputs_appear_together_at_the_end(tmp_path):
    with OutputSet() as outputs:
        first = outputs.add(tmp_path / "a.json")
        second = outputs.add(tmp_path / "deep" / "b.npz")
        first.temporary.write_text("{}")
        second.temporary.write_bytes(b"npz")
        assert not (tmp_path / "a.json").exists() and not (tmp_path / "deep").exists()
    assert (tmp_path / "a.json").read_text() == "{}"
    assert (tmp_path / "deep" / "b.npz").read_bytes() == b"npz"
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["a.json", "b.npz", "deep"]


def test_a_failure_leaves_every_output_as_it_was(tmp_path):
    (tmp_path / "a.json").write_text("earlier")
    with pytest.raises(RuntimeError), OutputSet() as outputs:
        outputs.add(tmp_path / "a.json").temporary.write_text("new")
        outputs.add(tmp_path / "new" / "b.npz").temporary.write_text("new")
        raise RuntimeError("grounding failed midway")
    assert _snapshot(tmp_path) == {"a.json": (stat.S_IFREG, b"earlier")}


def test_a_symlink_is_written_through(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    atomic_write(tmp_path / "link.json", lambda temporary: temporary.write_text("new"))
    assert (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "real.json").read_text() == "new"


def test_a_dangling_symlink_creates_its_target(tmp_path):
    (tmp_path / "link.json").symlink_to("made.json")
    atomic_write(tmp_path / "link.json", lambda temporary: temporary.write_text("new"))
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "made.json").read_text() == "new"


def test_replacing_keeps_the_file_permissions(tmp_path):
    (tmp_path / "shared.json").write_text("old")
    (tmp_path / "shared.json").chmod(0o640)
    atomic_write(tmp_path / "shared.json", lambda temporary: temporary.write_text("new"))
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o640


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _char_device(path: Path) -> Path:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _socket(path: Path) -> Path:
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_fifo, "named pipe"),
        (_char_device, "character device"),
        (_folder, "is a folder"),
        (_socket, "socket"),
    ],
)
@pytest.mark.parametrize("through_link", [False, True])
def test_what_is_not_a_regular_file_is_refused(tmp_path, make, words, through_link):
    special = make(tmp_path / "special")
    path = special
    if through_link:
        path = tmp_path / "link"
        path.symlink_to(special)
    before = _snapshot(tmp_path)
    with pytest.raises(InputError, match=words):
        atomic_write(path, lambda temporary: temporary.write_text("x"))
    assert _snapshot(tmp_path) == before


def test_an_input_is_never_an_output(tmp_path):
    (tmp_path / "video.mp4").write_bytes(b"video")
    os.link(tmp_path / "video.mp4", tmp_path / "hardlink.mp4")
    (tmp_path / "alias.mp4").symlink_to("video.mp4")
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "0001.png").write_bytes(b"png")
    inputs = [tmp_path / "video.mp4", tmp_path / "frames"]
    for output in ["video.mp4", "hardlink.mp4", "alias.mp4", "frames/0001.png", "./video.mp4"]:
        with pytest.raises(InputError, match="input"), OutputSet(inputs) as outputs:
            outputs.add(tmp_path / output)
    assert (tmp_path / "video.mp4").read_bytes() == b"video"
    assert sorted(path.name for path in tmp_path.rglob("*")) == sorted(
        ["video.mp4", "hardlink.mp4", "alias.mp4", "frames", "0001.png"]
    )


def test_the_same_file_twice_is_refused(tmp_path):
    (tmp_path / "link").symlink_to("out.json")
    with pytest.raises(InputError, match="twice"), OutputSet() as outputs:
        outputs.add(tmp_path / "out.json", setting="json_path")
        outputs.add(tmp_path / "link", setting="heatmaps")
    assert [path.name for path in tmp_path.iterdir()] == ["link"]


@pytest.mark.parametrize(
    ("name", "words"),
    [("notes.txt/out.json", "not a folder"), ("", "empty"), ("newdir/", "names a folder")],
)
def test_impossible_paths_are_refused(tmp_path, name, words):
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(InputError, match=words):
        atomic_write(f"{tmp_path}/{name}" if name else "", lambda temporary: None)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_a_name_too_long_is_refused_before_writing(tmp_path):
    with pytest.raises(InputError, match=r"too long|longer than"):
        atomic_write(tmp_path / ("x" * 300 + ".json"), lambda temporary: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_and_file_are_refused(tmp_path):
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0o555)
    (tmp_path / "ro.json").write_text("keep")
    (tmp_path / "ro.json").chmod(0o444)
    with pytest.raises(InputError, match="cannot write"):
        atomic_write(tmp_path / "locked" / "out.json", lambda temporary: None)
    with pytest.raises(InputError, match="read-only"):
        atomic_write(tmp_path / "ro.json", lambda temporary: None)
    assert (tmp_path / "ro.json").read_text() == "keep"


def test_dash_is_standard_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atomic_write("-", lambda temporary: temporary.write_text('{"to": "stdout"}\n'))
    assert capsys.readouterr().out == '{"to": "stdout"}\n'
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="standard output"), OutputSet() as outputs:
        outputs.add("-", setting="json_path")
        outputs.add("-", setting="heatmaps")


def test_a_write_that_fails_is_one_error_and_leaves_nothing(tmp_path):
    def disk_full(temporary: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="No space left on device") as raised:
        atomic_write(tmp_path / "out.json", disk_full)
    assert "Errno" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------ valid JSON


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_json_never_holds_nan_or_infinity(value):
    text = json_text({"score": value, "points": [[1.0, value]], "nested": {"x": (value,)}})
    document = json.loads(text, parse_constant=lambda word: pytest.fail(f"{word} in JSON"))
    assert document == {"score": None, "points": [[1.0, None]], "nested": {"x": [None]}}


def test_a_degenerate_score_is_written_as_null(cli, video, tmp_path, monkeypatch):
    import vgem.results

    real = vgem.results.GroundedTime

    def nan_score(**fields):
        return real(**{**fields, "score": math.nan})

    monkeypatch.setattr("vgem.grounder.GroundedTime", nan_score)
    completed = cli("ground", video, "cut onion", *PLANTED, "--json", "out.json")
    assert completed.exit_code == 0, completed.output
    text = (tmp_path / "out.json").read_text()
    assert "NaN" not in text
    assert json.loads(text)["queries"][0]["times"][0]["score"] is None


# ------------------------------------------------------------------------ the command line


@pytest.mark.parametrize("flag", ["--json", "--heatmaps", "--video-out"])
def test_an_output_naming_the_input_video_is_refused(cli, video, tmp_path, flag):
    before = _snapshot(tmp_path)
    line = _assert_one_line_error(cli("ground", video, "cut", *PLANTED, flag, video), flag)
    assert "input" in line
    assert _snapshot(tmp_path) == before


def test_an_output_naming_the_weights_is_refused(cli, video, tmp_path):
    import torch

    from tests.tiny_models import tiny_openclip_model

    torch.save(tiny_openclip_model(seed=1).state_dict(), tmp_path / "tiny.pt")
    before = _snapshot(tmp_path)
    completed = cli(
        "ground", video, "cut", "--backbone", "tiny", "--weights", "tiny.pt", "--depth", "4",
        "--json", "tiny.pt",
    )  # fmt: skip
    _assert_one_line_error(completed, "--json", "input")
    assert _snapshot(tmp_path) == before


def _make(tmp_path: Path, kind: str) -> str:
    if kind == "fifo":
        return str(_fifo(tmp_path / "pipe"))
    if kind == "device":
        return str(_char_device(tmp_path / "null"))
    if kind == "folder":
        return str(_folder(tmp_path / "folder"))
    if kind == "under a file":
        (tmp_path / "file.txt").write_text("a file")
        return str(tmp_path / "file.txt" / "out")
    if kind == "trailing slash":
        return "newfolder/"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "under a file", "trailing slash"])
@pytest.mark.parametrize("flag", ["--json", "--heatmaps", "--video-out"])
def test_bad_outputs_fail_before_any_model_is_loaded(cli, video, tmp_path, monkeypatch, kind, flag):
    import vgem.grounder

    def no_model(*arguments, **options):
        raise AssertionError("a model was loaded before the outputs were checked")

    monkeypatch.setattr(vgem.grounder, "Grounder", no_model)
    path = _make(tmp_path, kind)
    before = _snapshot(tmp_path)
    _assert_one_line_error(cli("ground", video, "cut", *PLANTED, flag, path), flag)
    assert _snapshot(tmp_path) == before


def test_json_dash_is_stdout(cli, video, tmp_path):
    completed = cli("ground", video, "cut", *PLANTED, "--json", "-")
    assert completed.exit_code == 0, completed.output
    assert json.loads(completed.stdout)["queries"][0]["query"] == "cut"
    assert not (tmp_path / "-").exists()


def test_json_through_a_symlink_keeps_the_link(cli, video, tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "latest.json").symlink_to("results/run1.json")
    completed = cli("ground", video, "cut", *PLANTED, "--json", "latest.json")
    assert completed.exit_code == 0, completed.output
    assert (tmp_path / "latest.json").is_symlink()
    assert json.loads((tmp_path / "results" / "run1.json").read_text())["schema"]


def test_the_same_file_for_two_outputs_is_refused(cli, video, tmp_path):
    before = _snapshot(tmp_path)
    completed = cli("ground", video, "cut", *PLANTED, "--json", "o.json", "--heatmaps", "o.json")
    _assert_one_line_error(completed, "--json", "--heatmaps", "twice")
    assert _snapshot(tmp_path) == before


def test_a_failure_midway_leaves_no_output_at_all(cli, video, tmp_path, monkeypatch):
    import vgem.annotate

    (tmp_path / "old.json").write_text("earlier")

    def broken_video(*arguments, **options):
        from vgem.errors import VgemError

        raise VgemError("the video could not be written")

    monkeypatch.setattr(vgem.annotate, "write_annotated_video", broken_video)
    before = _snapshot(tmp_path)
    completed = cli(
        "ground", video, "cut", *PLANTED,
        "--json", "old.json", "--heatmaps", "out/maps.npz", "--video-out", "out/ann.mp4",
    )  # fmt: skip
    _assert_one_line_error(completed, "could not be written")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--fps", "nan"),
        ("--fps", "inf"),
        ("--fps", "-1"),
        ("--at", "nan"),
        ("--at", "-inf"),
        ("--at", "-0.5"),
        ("--source-fps", "nan"),
        ("--source-fps", "0"),
        ("--temperature", "nan"),
        ("--min-segment", "inf"),
    ],
)
def test_numbers_that_are_not_finite_are_refused(cli, video, tmp_path, option, value):
    before = _snapshot(tmp_path)
    extra = ["--temporal"] if option == "--min-segment" else []
    completed = cli("ground", video, "cut", *PLANTED, *extra, option, value, "--json", "o.json")
    _assert_one_line_error(completed, option)
    assert _snapshot(tmp_path) == before


def test_a_missing_weights_file_fails_before_the_model_is_built(cli, video, monkeypatch):
    _forbid_building_models(monkeypatch)
    _assert_one_line_error(
        cli("ground", video, "cut", "--backbone", "tiny", "--weights", "absent.pt"), "absent.pt"
    )


def _forbid_building_models(monkeypatch) -> None:
    import dataclasses

    import vgem.backbones

    real = vgem.backbones.backbone_spec

    def no_build(*arguments, **options):
        raise AssertionError("a model was built")

    def spec_that_cannot_load(name):
        spec, variant = real(name)
        return dataclasses.replace(spec, load=no_build), variant

    monkeypatch.setattr(vgem.backbones, "backbone_spec", spec_that_cannot_load)


@pytest.mark.parametrize(
    "arguments",
    [
        ("--aggregator", "no-such-aggregator"),
        ("--temporal", "--temporal-scorer", "no-such-scorer"),
        ("--extractor", "no-such-extractor"),
    ],
)
def test_unknown_plugins_fail_before_the_model_is_built(cli, video, monkeypatch, arguments):
    _forbid_building_models(monkeypatch)
    _assert_one_line_error(cli("ground", video, "cut", *PLANTED, *arguments), "no-such")


# ------------------------------------------------------------------------ user text


@pytest.mark.parametrize(
    "name",
    ["[red]nope.mp4", "[/x].mp4", "[bold]a[/bold] b.mp4", "x\\[y].mp4", "bad\x1b[31mred.mp4"],
)
def test_user_text_is_never_markup(cli, name):
    line = _assert_one_line_error(cli("ground", name, "cut", *PLANTED))
    shown = name.replace("\x1b", "\\x1b")
    assert shown in line


def test_markup_in_an_output_path_is_shown_as_is(cli, video, tmp_path):
    (tmp_path / "[red]x[b]").write_text("a file")
    line = _assert_one_line_error(
        cli("ground", video, "cut", *PLANTED, "--json", "[red]x[b]/o.json")
    )
    assert "--json [red]x[b]/o.json" in line


def test_a_multi_line_message_is_printed_on_one_line(cli, video, monkeypatch):
    import vgem.grounder
    from vgem.errors import InputError as Input

    def many_lines(*arguments, **options):
        raise Input("first line\nsecond line\n\nthird [red]line[/]")

    monkeypatch.setattr(vgem.grounder, "Grounder", many_lines)
    line = _assert_one_line_error(cli("ground", video, "cut", *PLANTED))
    assert line == "error: first line second line third [red]line[/]"


# ------------------------------------------------------------------------ in a real process


def test_usage_errors_are_one_line(cli_process):
    for arguments in (
        ("ground", "clip.mp4", "cut", "--fps", "abc"),
        ("ground", "clip.mp4", "cut", "--no-such-[/x]"),
        ("ground",),
        ("no-such-command",),
    ):
        completed = cli_process(*arguments)
        _assert_one_line_error(completed)


def test_sigterm_during_video_out_leaves_nothing(test_backbones, tmp_path):
    """A long --video-out is terminated: exit 143, no output and no .part file."""
    from tests.synth import write_video

    write_video(tmp_path / "long.mp4", 400, size=(640, 480), fps=25)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(test_backbones.root), str(REPOSITORY)]),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
    }
    before = _snapshot(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "vgem.cli", "ground", "long.mp4", "cut", *PLANTED,
         "--at", "0", "--json", "out.json", "--video-out", "out.mp4"],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        path.name.endswith(".part") and path.stat().st_size > 0 for path in tmp_path.iterdir()
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "terminated" in stderr
    assert _changes(before, _snapshot(tmp_path)) == set()
