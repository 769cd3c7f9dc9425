"""The ``vgem`` command: outputs, one clear line for bad input, flags declared once.

Commands run in-process (typer's CliRunner), which keeps the suite fast; a
few run as a real ``python -m vgem.cli`` subprocess, for what only a process
shows: its exit code and that no traceback reaches the terminal.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch
import typer
from typer.testing import CliRunner

from tests.planted import planted_frame
from tests.synth import truncate_file, write_frameless_mp4, write_video
from tests.tiny_models import TINY_ARCH, tiny_openclip_model
from vgem.cli import app
from vgem.cli.console import in_flags
from vgem.cli.options import MethodOptions, TemporalOptions, shared_options
from vgem.errors import SettingsError

REPOSITORY = Path(__file__).resolve().parents[1]

TEST_BACKBONES = {
    "vgem_test_backbones": f"""
        from tests.planted import PLANTED
        from tests.tiny_models import register_tiny_openclip
        from vgem.backbones.base import BackboneSpec


        def _load_tiny(variant, weights):
            from vgem.backbones.openclip import load_openclip

            register_tiny_openclip()
            return load_openclip("{TINY_ARCH}", None, weights, name="tiny", input_size=64)


        TINY = BackboneSpec(summary="tiny open_clip (tests)", load=_load_tiny)
    """
}


@pytest.fixture
def test_backbones(plugin_site):
    plugin_site.install(
        "vgem-test-backbones",
        {
            "vgem.backbones": {
                "planted": "vgem_test_backbones:PLANTED",
                "tiny": "vgem_test_backbones:TINY",
            }
        },
        TEST_BACKBONES,
    )
    return plugin_site


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache of this test's own, offline (huggingface_hub read its
    environment at import, so its constants are set instead)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def cli(test_backbones, offline_hub, tmp_path, monkeypatch):
    """``vgem ARGS`` in this process, in ``tmp_path``; returns click's Result
    (``exit_code``, ``stdout``, ``stderr``)."""
    monkeypatch.chdir(tmp_path)

    def run(*arguments: object):
        return CliRunner().invoke(app, [str(each) for each in arguments], env={"COLUMNS": "200"})

    return run


@pytest.fixture
def cli_process(test_backbones, tmp_path):
    """``python -m vgem.cli ARGS`` in a fresh process, offline, in ``tmp_path``."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(test_backbones.root), str(REPOSITORY)]),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "COLUMNS": "200",
    }

    def run(*arguments: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vgem.cli", *map(str, arguments)],
            capture_output=True,
            text=True,
            env=environment,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    return run


@pytest.fixture
def video(tmp_path):
    frames = [planted_frame(96, 64, 2, 5), planted_frame(96, 64, 5, 1)] * 2
    return write_video(tmp_path / "clip.mp4", frames, size=(96, 64), fps=2)


PLANTED = ("--backbone", "planted", "--depth", "4", "--quiet")


def _assert_one_line_error(completed, *fragments, exit_code=2) -> str:
    """One ``error:`` line on stderr, nothing on stdout, no traceback (process or CliRunner)."""
    exit_code_seen = getattr(completed, "returncode", getattr(completed, "exit_code", None))
    assert exit_code_seen == exit_code, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in completed.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert completed.stdout == ""
    return lines[0]


# ------------------------------------------------------------------------ outputs


def test_ground_writes_every_output(cli, video, tmp_path):
    completed = cli(
        "ground", video, "cut onion", *PLANTED,
        "--json", "out/result.json", "--heatmaps", "out/maps.npz", "--video-out", "out/ann.mp4",
    )  # fmt: skip
    assert completed.exit_code == 0, completed.output
    assert completed.stdout == ""
    document = json.loads((tmp_path / "out/result.json").read_text())
    assert [entry["frame"] for entry in document["queries"][0]["times"]] == [0, 2]
    assert (tmp_path / "out/maps.npz").stat().st_size > 0
    assert (tmp_path / "out/ann.mp4").stat().st_size > 0
    assert not list((tmp_path / "out").glob(".*part*"))


def test_ground_says_what_it_wrote_in_the_format_each_extension_names(cli, video, tmp_path):
    loud = [option for option in PLANTED if option != "--quiet"]
    completed = cli(
        "ground", video, "cut onion", *loud, "--json", "result.json", "--video-out", "ann.gif"
    )
    assert completed.exit_code == 0, completed.output
    assert completed.stderr.splitlines()[-1] == "wrote result.json, ann.gif"
    assert (tmp_path / "ann.gif").read_bytes()[:6] == b"GIF89a"
    quiet = cli("ground", video, "cut onion", *PLANTED, "--json", "again.json")
    assert quiet.exit_code == 0 and "wrote" not in quiet.stderr


def test_an_annotated_video_format_vgem_cannot_write_is_refused_before_grounding(
    cli, video, tmp_path, monkeypatch
):
    import vgem.grounder

    monkeypatch.setattr(vgem.grounder, "Grounder", None)  # grounding would fail loudly
    line = _assert_one_line_error(cli("ground", video, "cut", *PLANTED, "--video-out", "a.avi"))
    assert "--video-out a.avi" in line and ".gif" in line and ".webm" in line
    assert not (tmp_path / "a.avi").exists()


def test_ground_prints_json_to_stdout(cli, video):
    completed = cli("ground", video, "cut_onion", "stir soup", *PLANTED, "--at", "1.2")
    assert completed.exit_code == 0, completed.output
    document = json.loads(completed.stdout)
    assert [query["query"] for query in document["queries"]] == ["cut_onion", "stir soup"]
    assert document["queries"][0]["times"][0]["frame"] == 2


@pytest.mark.parametrize("amx", [True, False])
def test_bf16_where_it_is_emulated_is_said_once_on_stderr_and_in_the_json(
    cli, video, monkeypatch, amx
):
    monkeypatch.setattr("vgem.precision.cpu_has_amx_bf16", lambda: amx)
    completed = cli("ground", video, "cut onion", "stir soup", *PLANTED, "--precision", "bf16")
    assert completed.exit_code == 0, completed.output
    said = [line for line in completed.stderr.splitlines() if "no AMX-BF16" in line]
    assert len(said) == (0 if amx else 1)
    assert not said or said[0].startswith("warning: bf16 was asked for")
    document = json.loads(completed.stdout)
    assert document["settings"]["precision"] == "bf16"
    for query in document["queries"]:
        assert any("no AMX-BF16" in warning for warning in query["warnings"]) is not amx

    many = cli("ground", video, "cut onion", *PLANTED, "--precision", "bf16", "--out-dir", "out")
    assert many.exit_code == 0, many.output
    assert sum("no AMX-BF16" in line for line in many.stderr.splitlines()) == (0 if amx else 1)


@pytest.mark.parametrize("words", [1, 10, 200])
def test_queries_of_any_length_are_grounded(cli, video, words):
    query = " ".join(
        ["stir"] + ["the soup slowly"] * ((words - 1) // 3) + ["now"] * ((words - 1) % 3)
    )
    assert len(query.split()) == words
    completed = cli("ground", video, query, *PLANTED, "--at", "0")
    assert completed.exit_code == 0, completed.output
    document = json.loads(completed.stdout)
    assert document["queries"][0]["query"] == query
    warnings = document["queries"][0]["warnings"]
    assert any("truncated" in warning for warning in warnings) == (words == 200)


def test_the_nlp_folder_travels_as_an_argument(cli, video, tmp_path, monkeypatch):
    """--cache-dir reaches the grounder; the environment is left alone."""
    import vgem.grounder

    seen = {}
    real_grounder = vgem.grounder.Grounder

    def grounder(*arguments, **options):
        seen.update(options)
        return real_grounder(*arguments, **options)

    monkeypatch.setattr(vgem.grounder, "Grounder", grounder)
    monkeypatch.delenv("VGEM_CACHE", raising=False)
    completed = cli("ground", video, "cut_onion", *PLANTED, "--cache-dir", tmp_path / "models")
    assert completed.exit_code == 0, completed.output
    assert seen["nlp_dir"] == tmp_path / "models"
    assert seen["settings"].depth == 4
    assert "VGEM_CACHE" not in os.environ


# ------------------------------------------------------------------------ bad input


def test_missing_video(cli, video):
    _assert_one_line_error(cli("ground", "nowhere.mp4", "cut onion", *PLANTED), "nowhere.mp4")


def test_text_file_named_mp4(cli, tmp_path):
    (tmp_path / "notes.mp4").write_text("these are my notes, not a video\n")
    _assert_one_line_error(cli("ground", "notes.mp4", "cut", *PLANTED), "notes.mp4")


def test_truncated_mp4(cli, tmp_path):
    path = write_video(tmp_path / "cut.mp4", 40, size=(64, 48), fps=10)
    truncate_file(path, 0.5)
    _assert_one_line_error(cli("ground", path, "cut", *PLANTED), "truncated")


def test_zero_frame_video(cli, tmp_path):
    path = write_frameless_mp4(tmp_path / "empty.mp4")
    _assert_one_line_error(cli("ground", path, "cut", *PLANTED), "empty.mp4")


@pytest.mark.parametrize("query", ["", "   ", "?!"])
def test_empty_query(cli, video, query):
    _assert_one_line_error(cli("ground", video, query, *PLANTED), "query")


def test_time_beyond_the_end(cli, video):
    _assert_one_line_error(cli("ground", video, "cut", *PLANTED, "--at", "9"), "9")


def test_unknown_backbone_and_aggregator(cli, video):
    _assert_one_line_error(cli("ground", video, "cut", "--backbone", "nope"), "nope")
    _assert_one_line_error(
        cli("ground", video, "cut", *PLANTED, "--aggregator", "position-avg"),
        "position-average",
    )


def test_bad_option_values(cli, video):
    _assert_one_line_error(cli("ground", video, "cut", *PLANTED, "--weighting", "max"), "none")
    _assert_one_line_error(cli("ground", video, "cut", *PLANTED, "--fps", "2", "--at", "1"))
    _assert_one_line_error(
        cli("ground", video, "cut", *PLANTED, "--static-weights", "0.3,x"), "--static-weights"
    )


def test_user_text_is_printed_as_is(cli, tmp_path):
    """A name that looks like rich markup reaches the terminal unchanged."""
    line = _assert_one_line_error(cli("ground", "[bold]clip[/].mp4", "cut", *PLANTED))
    assert "[bold]clip[/].mp4" in line


@pytest.fixture
def tiny_weights(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_openclip_model(seed=1).state_dict(), path)
    return path


def test_weights_file_loads(cli, video, tiny_weights):
    completed = cli(
        "ground", video, "cut", "--backbone", "tiny", "--weights", tiny_weights, "--depth", "4"
    )
    assert completed.exit_code == 0, completed.output
    assert json.loads(completed.stdout)["backbone"]["weights"] == str(tiny_weights)


def test_missing_and_corrupt_weights(cli, video, tmp_path):
    tiny = ("--backbone", "tiny", "--depth", "4")
    _assert_one_line_error(
        cli("ground", video, "cut", *tiny, "--weights", "absent.pt"), "absent.pt"
    )
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x04 definitely not a checkpoint")
    _assert_one_line_error(
        cli("ground", video, "cut", *tiny, "--weights", "corrupt.pt"), "corrupt.pt"
    )


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch payload-ran",))


def test_weights_whose_pickle_would_run_code(cli, video, tmp_path):
    with (tmp_path / "evil.pt").open("wb") as handle:
        pickle.dump({"state_dict": {}, "x": _Payload()}, handle)
    completed = cli(
        "ground", video, "cut", "--backbone", "tiny", "--weights", "evil.pt", "--depth", "4"
    )
    _assert_one_line_error(completed, "would run code")
    assert not (tmp_path / "payload-ran").exists()


def test_offline_without_cached_weights(cli, video):
    completed = cli("ground", video, "cut", "--backbone", "openclip-b16")
    _assert_one_line_error(completed, "not in the Hugging Face cache", "vgem fetch", "--weights")


def test_bad_input_never_destroys_earlier_output(cli, video, tmp_path):
    previous = tmp_path / "result.json"
    previous.write_text('{"earlier": true}\n')
    completed = cli("ground", video, "cut", *PLANTED, "--at", "99", "--json", previous)
    assert completed.exit_code == 2
    assert previous.read_text() == '{"earlier": true}\n'


# ------------------------------------------------------------------------ in a real process


def test_a_user_error_is_one_line_and_exit_2_in_a_process(cli_process):
    completed = cli_process("ground", "nowhere.mp4", "cut onion", *PLANTED)
    _assert_one_line_error(completed, "nowhere.mp4")


def test_verbose_shows_the_traceback(cli_process):
    completed = cli_process("ground", "nowhere.mp4", "cut", *PLANTED, "--verbose")
    assert completed.returncode == 2
    assert "Traceback" in completed.stderr


def test_an_internal_error_is_one_line_and_exit_1(cli, video, monkeypatch):
    import vgem.grounder

    def broken(*arguments, **options):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(vgem.grounder, "Grounder", broken)
    completed = cli("ground", video, "cut_onion", *PLANTED)
    assert completed.exit_code == 1
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("internal error: ZeroDivisionError: a bug")
    assert "--verbose" in lines[0]


# ------------------------------------------------------------------------ settings and flags


def test_a_setting_is_named_as_a_setting_in_python_and_as_a_flag_on_the_command_line(cli, video):
    from vgem.settings import Settings

    with pytest.raises(SettingsError) as raised:
        Settings(depth=0)
    assert raised.value.settings == ("depth",)
    assert "depth" in str(raised.value) and "--depth" not in str(raised.value)
    line = _assert_one_line_error(
        cli("ground", video, "cut", "--backbone", "planted", "--depth", "0")
    )
    assert "--depth" in line and "`" not in line


@pytest.mark.parametrize(
    ("message", "settings", "shown"),
    [
        ("`depth` must be at least 1.", ["depth"], "--depth must be at least 1."),
        # only the marked name is a setting; the same word in prose stays a word
        ("depth must be at least 1.", ["depth"], "depth must be at least 1."),
        (
            "ViCLIP weights are not cached: give a checkpoint as `weights`.",
            ["weights"],
            "ViCLIP weights are not cached: give a checkpoint as --weights.",
        ),
        (
            "`dynamic_layers` must be between 1 and `depth` (7).",
            ["dynamic_layers", "depth"],
            "--dynamic-layers must be between 1 and --depth (7).",
        ),
        ("models are not in `nlp_dir`", ["nlp_dir"], "models are not in --cache-dir"),
        ("pick a `scorer`", ["scorer"], "pick a --temporal-scorer"),
        ("bad `json_path`", ["json_path"], "bad --json"),
        ("`max_depth` and depth-first stay", ["depth"], "`max_depth` and depth-first stay"),
        ("--depth is already a flag", ["depth"], "--depth is already a flag"),
        ("depth: [red]x[/]", [], "depth: [red]x[/]"),
    ],
)
def test_setting_names_become_flags(message, settings, shown):
    assert in_flags(message, settings) == shown


def test_the_cli_defaults_are_the_settings_defaults():
    from vgem.settings import Settings

    assert MethodOptions().settings() == Settings()


def _shared_parameters(command_name: str) -> dict[str, tuple]:
    command = typer.main.get_command(app).commands[command_name]  # type: ignore[attr-defined]
    names = {option.name for group in (MethodOptions, TemporalOptions) for option in fields(group)}
    return {
        parameter.name: (tuple(parameter.opts), parameter.help, parameter.default)
        for parameter in command.params
        if parameter.name in names
    }


def test_ground_and_eval_take_the_same_method_options():
    ground = _shared_parameters("ground")
    assert set(ground) == {
        option.name for group in (MethodOptions, TemporalOptions) for option in fields(group)
    }
    assert _shared_parameters("eval") == ground


def test_the_shared_options_reach_a_command_as_one_object():
    seen = {}

    @shared_options
    def command(*, method: MethodOptions, when: TemporalOptions) -> None:
        seen.update(method=method, when=when)

    one = typer.Typer()
    one.command()(command)
    result = CliRunner().invoke(one, ["--depth", "5", "--static-weights", "1,2", "--max-gap", "3"])
    assert result.exit_code == 0, result.output
    assert seen["method"] == MethodOptions(depth=5, static_weights="1,2")
    assert seen["method"].settings().static_weights == (1.0, 2.0)
    assert seen["when"] == TemporalOptions(max_gap=3.0)


def test_shared_options_refuse_a_command_that_declares_them_again():
    def command(depth: int = 1, *, method: MethodOptions) -> None:
        pass

    with pytest.raises(TypeError, match="depth"):
        shared_options(command)


# ------------------------------------------------------------------------ the layers


def _python_files_outside_the_cli() -> list[Path]:
    package = REPOSITORY / "vgem"
    return [path for path in sorted(package.rglob("*.py")) if (package / "cli") not in path.parents]


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def _writes_environment(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
        for target in targets:
            if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                return True
        if isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            if called in ("os.putenv", "os.unsetenv") or called in {
                f"os.environ.{method}" for method in ("update", "setdefault", "pop", "clear")
            }:
                return True
    return False


def test_nothing_outside_the_cli_imports_typer_or_writes_the_environment():
    offenders = []
    for path in _python_files_outside_the_cli():
        tree = ast.parse(path.read_text(), str(path))
        if {"typer", "click"} & _imports(tree):
            offenders.append(f"{path.relative_to(REPOSITORY)} imports typer/click")
        if _writes_environment(tree):
            offenders.append(f"{path.relative_to(REPOSITORY)} writes os.environ")
    assert offenders == []


def test_the_eval_progress_counts_the_whole_run():
    from vgem.cli.progress import EvalProgress

    with EvalProgress(quiet=True) as progress:
        progress.start(4)
        progress.resume([{"hit": True}, {"error": "no video"}])
        progress.record({"hit": False})
    assert progress.total == 4
    assert (progress.done, progress.scored, progress.hits, progress.errors) == (3, 2, 1, 1)
