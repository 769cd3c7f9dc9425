"""``vgem plugins``: what is installed, who provides it, and whether it loads."""

from __future__ import annotations

from typing import Annotated, Any

from vgem.cli.console import user_errors
from vgem.cli.options import VERBOSE


def plugins_command(verbose: Annotated[bool, VERBOSE] = False) -> None:
    """List installed plugins: backbones, extractors, aggregators, datasets, temporal scorers.

    A plugin whose name another package's plugin already takes is listed as not used.
    """
    with user_errors(verbose):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        from vgem import plugins

        table = Table(title="vgem plugins")
        for column in ("group", "name", "package", "status", "summary"):
            table.add_column(column)
        for row in plugins.list_plugins():
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
            table.add_row(
                plugins.GROUPS[row.group],
                Text(row.name),
                Text(f"{row.package} {row.version}"),
                status,
                Text(summary),
            )
        Console(soft_wrap=False).print(table)


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
    doc = plugin.__doc__ if isinstance(plugin, type) or callable(plugin) else type(plugin).__doc__
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    sentence = paragraph.split(". ")[0].rstrip(".")
    return sentence.replace("``", "")
