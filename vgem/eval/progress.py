"""The evaluation's progress bar, with the accuracy so far."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from vgem.cli_support import stderr


class EvalProgress:
    """A progress bar with the accuracy so far, on stderr when it is a terminal.

    Samples finished in earlier sittings count from the start, so the bar and
    the accuracy describe the whole run, not just this sitting. Whole-video
    lines have no single hit, so their bar shows no accuracy.
    """

    def __init__(self, total: int, quiet: bool, *, accuracy: bool = True) -> None:
        self.total = total
        self.show_accuracy = accuracy
        self.enabled = not quiet and sys.stderr.isatty()
        self.done = self.scored = self.hits = self.errors = 0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> EvalProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("evaluating"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[figures]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=stderr,
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("evaluating", total=self.total, figures="")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)

    def resume(self, finished_lines: list[dict[str, Any]]) -> None:
        for line in finished_lines:
            self._count(line)
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
        accuracy = f"{100 * self.hits / self.scored:.2f} %" if self.scored else "—"
        errors = f"{self.errors} error(s)" if self.errors else ""
        figures = f"accuracy {accuracy}" + (f" · {errors}" if errors else "")
        if not self.show_accuracy:
            figures = errors
        self._bar.update(self._task, completed=self.done, figures=figures)
