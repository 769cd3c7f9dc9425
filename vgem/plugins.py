"""Plugin discovery through Python entry points.

Built-in backbones, extractors and aggregators are declared in vgem's own
pyproject exactly as a third-party package declares its own, so there is one
code path. Plugins are loaded lazily, one at a time, and a plugin that fails to
import is reported (``vgem plugins``) without breaking the others.
"""

from __future__ import annotations

import difflib
import inspect
import traceback
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
_contested: dict[str, dict[str, list[EntryPoint]]] = {}
_loaded: dict[tuple[str, str], Any] = {}

#: The distribution whose entry points are vgem's built-in plugins.
BUILT_IN_PACKAGE = "vgem"


@dataclass(frozen=True)
class PluginInfo:
    """One row of ``vgem plugins``.

    ``shadowed_by``: set on an entry point that is not used because another
    package's plugin has the same name in the group (vgem's built-ins always
    keep their names); it names that package.
    """

    group: str
    name: str
    target: str
    package: str
    version: str
    error: str | None = None
    shadowed_by: str | None = None


def refresh() -> None:
    """Forget what was discovered and loaded (after installing a plugin)."""
    _discovered.clear()
    _contested.clear()
    _loaded.clear()


def discover(group: str) -> dict[str, EntryPoint]:
    """The entry points of ``group`` by name.

    On a clash of names, vgem's built-in plugin wins, else the first one
    found; the others are kept in :func:`contested` for ``vgem plugins`` to show.
    """
    if group not in _discovered:
        found: dict[str, EntryPoint] = {}
        losers: dict[str, list[EntryPoint]] = {}
        for entry_point in entry_points(group=group):
            name = entry_point.name
            if name not in found:
                found[name] = entry_point
                continue
            if _is_built_in(entry_point) and not _is_built_in(found[name]):
                entry_point, found[name] = found[name], entry_point
            losers.setdefault(name, []).append(entry_point)
        _discovered[group] = found
        _contested[group] = losers
    return _discovered[group]


def contested(group: str) -> dict[str, list[EntryPoint]]:
    """Per name, the entry points of ``group`` that another plugin's name shadows."""
    discover(group)
    return _contested[group]


def _is_built_in(entry_point: EntryPoint) -> bool:
    return _normalized(_provider(entry_point)[0]) == BUILT_IN_PACKAGE


def _normalized(package: str) -> str:
    return package.lower().replace("_", "-").replace(".", "-")


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
    """A backbone spec's shape (the backbones package checks its type: this module sits
    below the plugin groups and imports none of them)."""
    return callable(getattr(plugin, "load", None)) and isinstance(
        getattr(plugin, "summary", None), str
    )


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


def provider(group: str, name: str) -> tuple[str, str] | None:
    """The package (name, version) that provides plugin ``name`` of ``group``, or None
    when no such plugin is installed (nothing is imported)."""
    entry_point = discover(group).get(name)
    return None if entry_point is None else _provider(entry_point)


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
    """Every installed plugin, each loaded once to report whether it works.

    A plugin whose name another one already takes in its group is listed
    too, unloaded, with ``shadowed_by`` naming the package whose plugin is used.
    """
    rows = []
    for group in groups or list(GROUPS):
        shadowed = contested(group)
        for name, entry_point in sorted(discover(group).items()):
            package, version = _provider(entry_point)
            error = None
            try:
                load(group, name)
            except PluginError as failure:
                cause = failure.__cause__
                error = f"{type(cause).__name__}: {cause}" if cause else str(failure)
            rows.append(PluginInfo(group, name, entry_point.value, package, version, error))
            for loser in shadowed.get(name, []):
                loser_package, loser_version = _provider(loser)
                rows.append(
                    PluginInfo(
                        group,
                        name,
                        loser.value,
                        loser_package,
                        loser_version,
                        shadowed_by=f"{package} {version}",
                    )
                )
    return rows


def plugin_behind(error: BaseException) -> str | None:
    """Which installed plugin's code raised ``error``, for a message
    (``the aggregator plugin 'x' (from vgem-x 1.0)``), or None when no
    third-party plugin's code is in its traceback (nor in those of its causes).

    vgem's own modules and built-in plugins are never blamed: an error there
    is vgem's.
    """
    modules = _traceback_modules(error)
    if not modules:
        return None
    best: tuple[int, str, str, EntryPoint] | None = None
    for group in GROUPS:
        for name, entry_point in discover(group).items():
            plugin_module = entry_point.module
            top = plugin_module.split(".")[0]
            if top == BUILT_IN_PACKAGE or _is_built_in(entry_point):
                continue
            for module in modules:
                exact = module == plugin_module or module.startswith(plugin_module + ".")
                if exact or module.split(".")[0] == top:
                    score = 2 * exact + ((group, name) in _loaded)
                    if best is None or score > best[0]:
                        best = (score, group, name, entry_point)
    if best is None:
        return None
    _, group, name, entry_point = best
    return f"the {GROUPS[group]} plugin '{name}' ({_package_of(group, name)})"


def _traceback_modules(error: BaseException) -> list[str]:
    """The modules of the frames ``error`` (and its causes, a few deep) passed through."""
    modules: list[str] = []
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            break
        for frame, _line in traceback.walk_tb(seen.__traceback__):
            module = frame.f_globals.get("__name__")
            if isinstance(module, str) and module.split(".")[0] != BUILT_IN_PACKAGE:
                modules.append(module)
        seen = seen.__cause__ or seen.__context__
    return modules
