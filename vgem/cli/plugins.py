"""``vgem plugins``: what is installed, who provides it, and whether it loads."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Annotated, Any

from vgem.cli.console import print_table, user_errors
from vgem.cli.options import VERBOSE

if TYPE_CHECKING:
    from rich.table import Table


def plugins_command(verbose: Annotated[bool, VERBOSE] = False) -> None:
    """List installed plugins: backbones, extractors, aggregators, datasets, temporal scorers.

    A plugin whose name another package's plugin already takes is listed as not used.
    """
    with user_errors(verbose):
        print_table(plugins_table())


def plugins_table() -> Table:
    """Every installed plugin: group and name (never cut: what a user types), whether it
    loads, and its package and summary (these wrap on a narrow terminal)."""
    from rich.table import Table
    from rich.text import Text

    from vgem import plugins

    rows = plugins.list_plugins()
    table = Table(title="vgem plugins")
    # Names are what a user types: never cut or folded; the other texts wrap instead.
    for column, values in (
        ("group", [plugins.GROUPS[row.group] for row in rows]),
        ("name", [row.name for row in rows]),
    ):
        widest = max([len(column), *(len(value) for value in values)])
        table.add_column(column, no_wrap=True, min_width=widest)
    table.add_column("status", overflow="fold")
    table.add_column("package · summary", overflow="fold")
    for row in rows:
        summary = ""
        if row.shadowed_by:
            status = Text(
                f"not used: the name '{row.name}' is taken by {row.shadowed_by}",
                style="yellow",
            )
        elif row.error:
            status = Text(f"failed: {row.error}", style="red")
        else:
            status = Text("ok", style="green")
            summary = _summary(plugins.load(row.group, row.name))
        described = Text(f"{row.package} {row.version}", style="bold")
        if summary:
            described.append(f" · {summary}")
        table.add_row(plugins.GROUPS[row.group], Text(row.name), status, described)
    return table


def _summary(plugin: Any) -> str:
    """A backbone spec's ``summary``, a dataset's ``description``; for other plugins, the
    first sentence of their docstring (nothing where the plugin's own code fails)."""
    try:
        return _described(plugin)
    except Exception:  # the plugin's own properties: a listing must not fail on them
        return ""


def _described(plugin: Any) -> str:
    for attribute in ("summary", "description"):
        text = getattr(plugin, attribute, None)
        if isinstance(text, str) and text.strip():
            return text.strip()
    owner = plugin if isinstance(plugin, type) or callable(plugin) else type(plugin)
    doc = owner.__doc__
    if not (doc or "").strip():  # no docstring of its own: its module's says what it is
        module = inspect.getmodule(owner)
        doc = getattr(module, "__doc__", None)
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    sentence = paragraph.split(". ")[0].rstrip(".")
    return sentence.replace("``", "")
