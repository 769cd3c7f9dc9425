"""Shared fixtures: tiny models, plugin installs into a throwaway site dir."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.tiny_models import tiny_openclip_adapter

#: The Ray tests' site of test backbones and Ray instance (``backbone_site``, ``ray_instance``).
pytest_plugins = ("tests.ray_site",)


@pytest.fixture
def tiny_adapter():
    """A 4-block random open_clip ViT at 64 × 64 (an 8 × 8 patch grid)."""
    return tiny_openclip_adapter(input_size=64)


class PluginSite:
    """A directory on sys.path holding fake installed distributions.

    Plugins are found through entry points, so tests install them the way pip
    would: a ``*.dist-info`` folder with ``entry_points.txt`` next to the
    plugin's module.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(
        self, package: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]
    ) -> None:
        for module_name, source in modules.items():
            (self.root / f"{module_name}.py").write_text(textwrap.dedent(source))
        dist_info = self.root / f"{package.replace('-', '_')}-1.2.3.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.2.3\n"
        )
        lines = []
        for group, names in entry_points.items():
            lines.append(f"[{group}]")
            lines.extend(f"{name} = {target}" for name, target in names.items())
        (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        from vgem import plugins

        plugins.refresh()


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    from vgem import plugins

    plugins.refresh()
    yield PluginSite(root)
    plugins.refresh()
    for name in list(sys.modules):
        module = sys.modules[name]
        if getattr(module, "__file__", None) and str(root) in str(module.__file__):
            del sys.modules[name]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium page (tests/browser.py), or the test skipped without one."""
    from tests.browser import Browser, find_browser

    executable = find_browser()
    if executable is None:
        pytest.skip("no Chromium installed (apt-get install chromium): the page is not opened")
    pytest.importorskip("websocket", reason="websocket-client drives Chromium (test extra)")
    opened = Browser(executable)
    yield opened
    opened.close()
