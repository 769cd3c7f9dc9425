"""Where the commands talk to the user: stderr, and errors as one line.

The library raises :class:`vgem.errors.VgemError` with messages that name
settings in backquotes (`` `depth` ``) and lists those names in
``error.settings``; here, and only here, they become the flags that set them
(``--depth``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from vgem.errors import VgemError

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


def print_error(message: str, label: str = "error:") -> None:
    """One line on stderr; ``message`` is printed as is (no rich markup)."""
    stderr.print(Text.assemble((label, "bold red"), " ", message), soft_wrap=True)


@contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Turn errors into one line and an exit code; tracebacks only with --verbose."""
    from vgem.errors import VgemError

    try:
        yield
    except VgemError as error:
        if verbose:
            stderr.print_exception()
        print_error(error_text(error))
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        stderr.print("[bold red]interrupted[/]")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:
        if verbose:
            stderr.print_exception()
        else:
            print_error(
                f"{type(error).__name__}: {error} "
                "(run again with --verbose for the traceback, and please report it)",
                label="internal error:",
            )
        raise typer.Exit(1) from None
