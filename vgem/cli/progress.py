"""Progress display on stderr: a plain bar, and the evaluation's bar with its accuracy.

Both show only at a terminal and never with ``--quiet``, so scripts and
tests see the outcome alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from vgem.cli.console import stderr


def _columns(*middle: Any) -> tuple[Any, ...]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (BarColumn(), MofNCompleteColumn(), *middle, TimeElapsedColumn(), TimeRemainingColumn())


def _shown(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@contextmanager
def progress_bar(description: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr, or a no-op when quiet or not a terminal.

    Yields ``report(done, total)``, the callback the library's ``progress=`` takes.
    """
    if not _shown(quiet):
        yield lambda done, total: None
        return
    from rich.progress import Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"), *_columns(), console=stderr, transient=True
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


class EvalProgress:
    """An evaluation's progress bar with the accuracy so far (a ``vgem.eval`` run listener).

    ``start(total)``, ``resume(finished_lines)`` and ``record(line)`` are
    called by the run; lines finished in earlier sittings count from the
    start, so the bar and the accuracy describe the whole run, not just this
    sitting. Whole-video lines have no single hit, so ``accuracy=False``
    shows errors only.
    """

    def __init__(self, total: int | None = None, quiet: bool = False, *, accuracy: bool = True):
        self.total = total
        self.show_accuracy = accuracy
        self.quiet = quiet
        self.enabled = _shown(quiet)
        self.done = self.scored = self.hits = self.errors = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> EvalProgress:
        if self.enabled:
            from rich.progress import Progress, TextColumn

            self._bar = Progress(
                TextColumn("evaluating"),
                *_columns(TextColumn("{task.fields[figures]}")),
                console=stderr,
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("evaluating", total=self.total, figures="")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)

    def start(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def resume(self, finished_lines: list[dict[str, Any]]) -> None:
        """Count what earlier sittings finished, and say so once (unless quiet)."""
        for line in finished_lines:
            self._count(line)
        if finished_lines and not self.quiet:
            failed = sum("error" in line for line in finished_lines)
            note = f", {failed} of them failed" if failed else ""
            message = (
                f"resuming: {len(finished_lines)} of {self.total} found done by an earlier "
                f"sitting{note}"
            )
            (self._bar.console if self._bar is not None else stderr).print(
                message, soft_wrap=True, markup=False, highlight=False
            )
        self._refresh()

    def record(self, line: dict[str, Any]) -> None:
        self._count(line)
        self._refresh()

    def _count(self, line: Mapping[str, Any]) -> None:
        self.done += 1
        if "error" in line:
            self.errors += 1
        else:
            self.scored += 1
            self.hits += bool(line.get("hit"))

    def _refresh(self) -> None:
        if self._bar is None:
            return
        errors = f"{self.errors} error(s)" if self.errors else ""
        figures = errors
        if self.show_accuracy:
            accuracy = f"{100 * self.hits / self.scored:.2f} %" if self.scored else "—"
            figures = f"accuracy {accuracy}" + (f" · {errors}" if errors else "")
        self._bar.update(self._task, completed=self.done, figures=figures)
