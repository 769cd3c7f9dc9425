"""What a newcomer reads first: ``--help`` and ``vgem plugins``, on a terminal and piped.

Help shows metavars as command-line tools do (TEXT, FLOAT, SECONDS, PATH...),
never Python types, and nothing after a flag; the usage line names the
arguments by their metavars. ``vgem plugins`` never cuts a name, whatever the
width, and into a pipe it prints every name whole.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vgem import plugins
from vgem.cli import app

REPOSITORY = Path(__file__).resolve().parents[1]
COMMANDS = ("ground", "eval", "plugins", "fetch")
PYTHON_TYPES = re.compile(r"<(str|int|float|bool|path|list\[[^\]]*\])>|list\[|\{video\}")


def _help(*command: str, columns: int = 100) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", [(), *((name,) for name in COMMANDS)])
def test_help_shows_no_python_types(command):
    text = _help(*command)
    assert not PYTHON_TYPES.search(text), PYTHON_TYPES.search(text)
    help_line = next(line for line in text.splitlines() if "--help" in line)
    assert re.search(r"--help\s+Show this message", help_line), help_line  # a flag: no value


def test_help_names_values_as_a_command_line_does():
    text = _help("ground", columns=160)
    assert "Usage: vgem ground [OPTIONS] VIDEO QUERY..." in text
    expected = {
        "--at": "SECONDS",
        "--fps": "RATE",
        "--json": "FILE",
        "--out-dir": "DIR",
        "--backbone": "NAME",
        "--depth": "INTEGER",
        "--temperature": "FLOAT",
        "--min-segment": "SECONDS",
        "--device": "TEXT",
    }
    for flag, metavar in expected.items():
        assert re.search(rf"{flag}\s+(-\w\s+)?{re.escape(metavar)}\s", text), flag
    for flag in ("--every-frame", "--temporal", "--save-video", "--quiet"):
        assert re.search(rf"{flag}\s+(-\w\s+)?[A-Z][a-z]", text), flag  # a flag takes no value


def test_the_backbone_help_names_the_installed_backbones_plugins_included(plugin_site):
    plugin_site.install(
        "vgem-help-test",
        {"vgem.backbones": {"help-test-vit": "vgem_help_test:SPEC"}},
        {"vgem_help_test": "SPEC = None\n"},
    )
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugin_site.root), str(REPOSITORY)]),
        "COLUMNS": "300",
    }
    text = subprocess.run(
        [sys.executable, "-m", "vgem.cli", "ground", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    ).stdout
    backbone_line = next(line for line in text.splitlines() if "--backbone" in line)
    for name in ("help-test-vit", "viclip-b16", "clip-b16"):
        assert name in backbone_line


def _all_names() -> list[str]:
    return [name for group in plugins.GROUPS for name in plugins.names(group)]


def test_plugins_into_a_pipe_prints_every_name_whole():
    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    cells = {cell.strip() for line in result.output.splitlines() for cell in line.split("│")}
    assert set(_all_names()) <= cells
    assert "…" not in result.output


def test_plugins_on_a_narrow_terminal_wraps_summaries_not_names():
    from rich.console import Console

    from vgem.cli.plugins import plugins_table

    narrow = Console(width=80, force_terminal=True, color_system=None)
    with narrow.capture() as captured:
        narrow.print(plugins_table())
    text = captured.get()
    assert max(len(line) for line in text.splitlines()) <= 80
    names = {line.split("│")[2].strip() for line in text.splitlines() if line.count("│") > 3}
    assert set(_all_names()) <= names
    assert "…" not in text


def test_a_plugin_without_a_docstring_is_summarised_by_its_module():
    from vgem.cli.plugins import _summary

    module = type(sys)("summary_probe")
    module.__doc__ = "The probe aggregator: trusts the action prompt. More words here."
    exec("class Probe:\n    name = 'probe'\n", module.__dict__)
    module.Probe.__module__ = "summary_probe"
    sys.modules["summary_probe"] = module
    try:
        assert _summary(module.Probe) == "The probe aggregator: trusts the action prompt"
    finally:
        del sys.modules["summary_probe"]
