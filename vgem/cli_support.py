"""What every ``vgem`` command shares: one-line errors and a progress bar.

Kept apart from vgem.cli so command modules can import it without importing
the app that registers them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

stderr = Console(stderr=True, highlight=False)

VERBOSE = typer.Option("--verbose", "-v", help="Show tracebacks and more detail on errors.")
QUIET = typer.Option("--quiet", "-q", help="No progress bar.")


@contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Turn errors into one line and an exit code; tracebacks only with --verbose."""
    from vgem.errors import VgemError

    try:
        yield
    except VgemError as error:
        if verbose:
            stderr.print_exception()
        stderr.print(f"[bold red]error:[/] {error}", soft_wrap=True)
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
            stderr.print(
                f"[bold red]internal error:[/] {type(error).__name__}: {error} "
                "(run again with --verbose for the traceback, and please report it)",
                soft_wrap=True,
            )
        raise typer.Exit(1) from None


@contextmanager
def progress_bar(description: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, or a no-op when quiet or not a terminal."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
