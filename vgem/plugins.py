"""Plugin discovery through Python entry points.

Built-in backbones, extractors and aggregators are declared in vgem's own
pyproject exactly as a third-party package declares its own, so there is one
code path. Plugins are loaded lazily, one at a time, and a plugin that fails to
import is reported (``vgem plugins``) without breaking the others.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
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


def _fits_backbone(plugin: Any) -> bool:
    from vgem.backbones.base import BackboneSpec

    return isinstance(plugin, BackboneSpec)


def _has(*methods: str) -> Callable[[Any], bool]:
    return lambda plugin: all(callable(getattr(plugin, method, None)) for method in methods)


#: Per group: whether a built plugin fits, and what it must look like (for the error).
PROTOCOLS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "vgem.backbones": (_fits_backbone, "a vgem.backbones.base.BackboneSpec"),
    "vgem.extractors": (_has("extract"), "an object with extract(query) -> Extraction"),
    "vgem.aggregators": (callable, "a callable (heatmaps, points) -> (x, y)"),
    "vgem.datasets": (_has("read"), "an object with read(root)"),
    "vgem.temporal": (_has("prompts", "score"), "an object with prompts() and score()"),
}


def create(group: str, name: str, **options: Any) -> Any:
    """The plugin ``name`` of ``group``, built and checked against the group's protocol.

    An entry point may name a class, built here with those of ``options`` its
    constructor takes (so the NLP model folder reaches the extractors that
    read one, and the others are built as before), or a ready object, used
    as it is. Anything that does not fit the group, or fails while being
    built, is a :class:`PluginError` naming the plugin and its package.
    """
    plugin = load(group, name)
    kind = GROUPS.get(group, group)
    if isinstance(plugin, type):
        try:
            plugin = plugin(**_accepted(plugin, options))
        except Exception as error:  # the plugin's own code: name it, not vgem
            raise PluginError(
                f"The {kind} plugin '{name}' ({_package_of(group, name)}) failed to start: "
                f"{type(error).__name__}: {error}"
            ) from error
    fits, shape = PROTOCOLS.get(group, (lambda plugin: True, ""))
    if not fits(plugin):
        raise PluginError(
            f"The {kind} plugin '{name}' ({_package_of(group, name)}) is not {shape}; "
            f"it is {type(plugin).__name__}."
        )
    return plugin


def _accepted(factory: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options ``factory`` takes by name (all of them if it takes ``**kwargs``)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return dict(options)
    names = {
        parameter.name
        for parameter in parameters
        if parameter.kind
        in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    return {key: value for key, value in options.items() if key in names}


def _package_of(group: str, name: str) -> str:
    entry_point = discover(group).get(name)
    if entry_point is None:
        return "?"
    package, version = _provider(entry_point)
    return f"from {package} {version}"


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
