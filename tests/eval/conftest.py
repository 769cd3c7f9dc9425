"""Fixtures of the evaluation tests: the planted test backbone installed as a plugin,
and ``vgem`` run in-process."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tests.eval.test_eval_command import EVAL_BACKBONES
from vgem.cli import app


@pytest.fixture
def planted_plugin(plugin_site):
    plugin_site.install(
        "vgem-eval-test-backbones",
        {"vgem.backbones": {"planted": "vgem_eval_test_backbones:PLANTED"}},
        EVAL_BACKBONES,
    )
    return plugin_site


@pytest.fixture
def invoke(planted_plugin, tmp_path, monkeypatch):
    """Run ``vgem ARGS`` in-process, in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*arguments):
        return CliRunner().invoke(app, [str(argument) for argument in arguments])

    return run
