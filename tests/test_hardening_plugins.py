# ruff: noqa: F811 (the command-line fixtures are imported from tests.test_cli)
"""Issue 17, part A, smaller cases: a plugin's exception names the plugin, a shadowed
built-in name is shown, damaged or empty eval inputs are one clear line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.test_cli import (  # noqa: F401 (fixtures)
    PLANTED,
    _assert_one_line_error,
    cli,
    offline_hub,
    test_backbones,
    video,
)
from vgem import plugins
from vgem.cli import app

RAISING = {
    "vgem_raising_aggregator": """
        class Raising:
            def __call__(self, heatmaps, points):
                return 1 / 0
    """
}
SHADOW = {
    "vgem_shadow": """
        class Shadow:
            def __call__(self, heatmaps, points):
                return (0, 0)
    """
}


def test_an_exception_inside_a_plugin_names_the_plugin(cli, video, test_backbones):
    test_backbones.install(
        "vgem-raising",
        {"vgem.aggregators": {"raising": "vgem_raising_aggregator:Raising"}},
        RAISING,
    )
    completed = cli("ground", video, "cut", *PLANTED, "--aggregator", "raising")
    line = _assert_one_line_error(completed, "aggregator plugin 'raising'", "vgem-raising 1.2.3")
    assert "ZeroDivisionError" in line and "internal error" not in completed.stderr


def test_a_plugin_that_shadows_a_built_in_is_shown_and_not_used(plugin_site):
    plugin_site.install(
        "vgem-shadow", {"vgem.aggregators": {"position-average": "vgem_shadow:Shadow"}}, SHADOW
    )
    used = plugins.load("vgem.aggregators", "position-average")
    assert used.__module__ == "vgem.aggregators"
    rows = [row for row in plugins.list_plugins() if row.name == "position-average"]
    assert [(row.package, row.shadowed_by is not None) for row in rows] == [
        ("vgem", False),
        ("vgem-shadow", True),
    ]
    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    shadow_line = next(line for line in result.stdout.splitlines() if "vgem-shadow" in line)
    assert "not used" in shadow_line and "position-average" in shadow_line


def test_eval_show_on_damaged_results_is_one_line(cli, tmp_path):
    from vgem.eval.report import SCHEMA

    cases = {
        "not-json": "{ this is not json",
        "not-an-object": "[1, 2, 3]",
        "wrong-shape": json.dumps({"schema": SCHEMA, "datasets": 5}),
        "empty": "",
    }
    for name, text in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(text)
        completed = cli("eval", "--show", tmp_path / name)
        _assert_one_line_error(completed, name)


def test_an_empty_manifest_is_one_clear_line(cli, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    completed = cli("eval", "--manifest", "empty.jsonl", *PLANTED, "--run-dir", "run")
    _assert_one_line_error(completed, "empty.jsonl", "no samples")
    assert not (tmp_path / "run").exists()


def test_export_manifest_over_its_own_manifest_is_refused(cli, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"video": "clip.mp4", "time": 0, "query": "cut", "point": [1, 2]}\n')
    before = manifest.read_text()
    completed = cli("eval", "--manifest", manifest, "--export-manifest", manifest)
    _assert_one_line_error(completed, "--export-manifest", "input")
    assert manifest.read_text() == before
