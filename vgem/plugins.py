"""Plugin discovery through Python entry points.

Built-in backbones, extractors and aggregators are declared in vgem's own
pyproject exactly as a third-party package declares its own, so there is one
code path. Plugins are loaded lazily, one at a time, and a plugin that fails to
import is reported (``vgem plugins``) without breaking the others.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from vgem.errors import PluginError

GROUPS: dict[str, str] = {
    "vgem.backbones": "backbone",
    "vgem.extractors": "extractor",
    "vgem.aggregators": "aggregator",
    "vgem.datasets": "dataset",
    "vgem.temporal": "temporal scorer",
}

_discovered: dict[str, dict[str, EntryPoint]] = {}
_loaded: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class PluginInfo:
    """One row of ``vgem plugins``."""

    group: str
    name: str
    target: str
    package: str
    version: str
    error: str | None = None


def refresh() -> None:
    """Forget what was discovered and loaded (after installing a plugin)."""
    _discovered.clear()
    _loaded.clear()


def discover(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name; the first one wins on a clash."""
    if group not in _discovered:
        found: dict[str, EntryPoint] = {}
        for entry_point in entry_points(group=group):
            found.setdefault(entry_point.name, entry_point)
        _discovered[group] = found
    return _discovered[group]


def names(group: str) -> list[str]:
    return sorted(discover(group))


def load(group: str, name: str) -> Any:
    """The object a plugin's entry point names, imported on first use."""
    key = (group, name)
    if key in _loaded:
        return _loaded[key]
    available = discover(group)
    kind = GROUPS.get(group, group)
    if name not in available:
        close = difflib.get_close_matches(name, available, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        listing = ", ".join(sorted(available)) or "none"
        raise PluginError(f"Unknown {kind} '{name}'.{hint} Installed: {listing}.")
    try:
        plugin = available[name].load()
    except Exception as error:  # a broken plugin must not take vgem down
        raise PluginError(
            f"The {kind} plugin '{name}' failed to load: {type(error).__name__}: {error}"
        ) from error
    _loaded[key] = plugin
    return plugin


def _provider(entry_point: EntryPoint) -> tuple[str, str]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"] or "?", dist.version or "?"


def list_plugins(groups: list[str] | None = None) -> list[PluginInfo]:
    """Every installed plugin, each loaded once to report whether it works."""
    rows = []
    for group in groups or list(GROUPS):
        for name, entry_point in sorted(discover(group).items()):
            package, version = _provider(entry_point)
            error = None
            try:
                load(group, name)
            except PluginError as failure:
                cause = failure.__cause__
                error = f"{type(cause).__name__}: {cause}" if cause else str(failure)
            rows.append(PluginInfo(group, name, entry_point.value, package, version, error))
    return rows
