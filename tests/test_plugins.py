"""Entry-point plugins: discovery, lazy loading, and broken plugins kept apart."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from vgem import plugins
from vgem.cli import app
from vgem.errors import PluginError

BROKEN = {
    "vgem_broken_plugin": """
        raise ImportError("this plugin needs libfoo, which is not installed")
    """
}
WORKING = {
    "vgem_extra_aggregator": """
        class Middle:
            name = "middle"

            def __call__(self, heatmaps, points):
                return (heatmaps.shape[-1] // 2, heatmaps.shape[-2] // 2)
    """
}


def _install_both(plugin_site):
    plugin_site.install(
        "vgem-broken",
        {"vgem.backbones": {"broken": "vgem_broken_plugin:SPEC"}},
        BROKEN,
    )
    plugin_site.install(
        "vgem-middle",
        {"vgem.aggregators": {"middle": "vgem_extra_aggregator:Middle"}},
        WORKING,
    )


def test_a_broken_plugin_does_not_break_the_others(plugin_site):
    _install_both(plugin_site)
    rows = {(row.group, row.name): row for row in plugins.list_plugins()}
    broken = rows[("vgem.backbones", "broken")]
    assert broken.package == "vgem-broken" and broken.version == "1.2.3"
    assert "libfoo" in broken.error
    middle = rows[("vgem.aggregators", "middle")]
    assert middle.error is None and middle.package == "vgem-middle"
    assert rows[("vgem.backbones", "clip-b16")].error is None
    assert plugins.load("vgem.aggregators", "middle")().name == "middle"


def test_loading_the_broken_plugin_is_one_clear_error(plugin_site):
    _install_both(plugin_site)
    with pytest.raises(PluginError, match=r"backbone plugin 'broken' failed to load.*libfoo"):
        plugins.load("vgem.backbones", "broken")


def test_unknown_names_list_what_is_installed():
    with pytest.raises(PluginError) as caught:
        plugins.load("vgem.aggregators", "position-avg")
    message = str(caught.value)
    assert "Did you mean 'position-average'?" in message
    assert "heatmap-mean" in message


def test_vgem_plugins_command_shows_the_failure(plugin_site):
    _install_both(plugin_site)
    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    broken_line = next(line for line in lines if " broken " in line)
    assert "vgem-broken 1.2.3" in broken_line and "failed" in broken_line
    middle_line = next(line for line in lines if " middle " in line)
    assert "vgem-middle 1.2.3" in middle_line and "ok" in middle_line
    assert any("clip-b16" in line and "ok" in line for line in lines)


def test_vgem_plugins_shows_each_backbone_summary():
    summary = plugins.load("vgem.backbones", "clip-b16").summary
    result = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    clip_line = next(line for line in result.stdout.splitlines() if " clip-b16 " in line)
    assert summary and summary in clip_line
