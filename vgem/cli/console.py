"""Where the commands talk to the user: stderr, and errors as one line.

The one error edge of the command line. The library raises
:class:`vgem.errors.VgemError` with messages that name settings in
backquotes (`` `depth` ``) and lists those names in ``error.settings``;
here, and only here, they become the flags that set them (``--depth``).
Every error is printed by :func:`print_error`: one line, the user's text in
it shown as it is (never read as rich markup, control characters made
visible). An exception raised by a third-party plugin's code names the
plugin and its package; anything else is vgem's internal error. SIGTERM is
handled like Ctrl-C (:mod:`vgem.execution.signals`), under every executor, so
a terminated run stops its workers, writes what finished and leaves no
half-written output.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from rich.table import Table

    from vgem.errors import VgemError
    from vgem.settings import Settings

stderr = Console(stderr=True, highlight=False)

#: Settings whose flag is not ``--`` + the name with dashes.
FLAGS = {
    "nlp_dir": "--cache-dir",
    "scorer": "--temporal-scorer",
    "json_path": "--json",
}


def flag_for(setting: str) -> str:
    """The flag that sets ``setting`` (``dynamic_layers`` -> ``--dynamic-layers``)."""
    return FLAGS.get(setting) or "--" + setting.replace("_", "-")


def in_flags(message: str, settings: Iterable[str]) -> str:
    """``message`` with each of ``settings`` written as its flag where the message marks
    it as a setting (in backquotes: `` `depth` ``); the same word in prose stays."""
    for setting in set(settings):
        message = message.replace(f"`{setting}`", flag_for(setting))
    return message


def error_text(error: VgemError) -> str:
    """What the CLI says about ``error``: its message, in flags."""
    return in_flags(str(error), error.settings)


def one_line(message: str) -> str:
    """``message`` as one line: its lines joined, control characters shown escaped."""
    from vgem.plain import visible

    joined = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    return visible(joined)


def warn_about_settings(settings: Settings, *, on_this_machine: bool = True) -> None:
    """Say before any model loads what the settings will cost that a user may not
    expect: bf16 where this machine emulates it. ``on_this_machine``: False when
    the work runs elsewhere (Ray workers), where this machine's CPU says nothing."""
    if not on_this_machine:
        return
    from vgem.precision import resolve_device, slow_precision_warning

    warning = slow_precision_warning(settings.precision, resolve_device(settings.device))
    if warning:
        stderr.print(f"warning: {warning}", soft_wrap=True, markup=False)


def print_table(table: Table) -> None:
    """A table on stdout. On a terminal it fits the terminal's width (long texts wrap;
    a column that must not be cut keeps its width); into a pipe, a file or a CI log
    it gets the full width its content needs, so nothing is cut or folded there
    (``vgem plugins | grep NAME`` finds every name whole)."""
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(soft_wrap=False)
    if not console.is_terminal:
        wide = Console(width=10_000)
        needed = Measurement.get(wide, wide.options, table).maximum
        console = Console(soft_wrap=False, width=max(80, needed))
    console.print(table)


def print_error(message: str, label: str = "error:") -> None:
    """One line on stderr; ``message`` is printed as is (no rich markup), on one line."""
    stderr.print(Text.assemble((label, "bold red"), " ", one_line(message)), soft_wrap=True)


@contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Turn errors into one line and an exit code; tracebacks only with --verbose.

    A :class:`vgem.errors.VgemError` is the user's to fix (exit 2); an exception from a
    third-party plugin's code names that plugin (exit 2); anything else is a bug in
    vgem (exit 1). Ctrl-C exits 130, SIGTERM 143, after the cleanup.
    """
    from vgem.errors import VgemError
    from vgem.execution.signals import termination_as_interrupt, was_terminated

    try:
        with termination_as_interrupt():
            yield
    except VgemError as error:
        if verbose:
            stderr.print_exception()
        print_error(error_text(error))
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt as error:
        terminated = was_terminated(error)
        stderr.print(Text("terminated" if terminated else "interrupted", style="bold red"))
        raise typer.Exit(143 if terminated else 130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:
        if verbose:
            stderr.print_exception()
        from vgem.plugins import plugin_behind

        plugin = plugin_behind(error)
        if plugin is not None:
            print_error(
                f"{plugin} failed: {type(error).__name__}: {error} (an error in the plugin, "
                "not in vgem: report it to the plugin's authors; --verbose shows the traceback)"
            )
            raise typer.Exit(2) from None
        if not verbose:
            print_error(
                f"{type(error).__name__}: {error} "
                "(run again with --verbose for the traceback, and please report it)",
                label="internal error:",
            )
        raise typer.Exit(1) from None
