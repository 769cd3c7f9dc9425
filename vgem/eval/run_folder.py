"""A run folder: the files an evaluation keeps there, and the folder as vgem owns it.

A run folder holds a run's whole state and its outputs: ``predictions.jsonl``
(every line, appended as samples are grounded), ``sittings.jsonl`` (how each
sitting was executed), ``results.json``, ``report.html`` and the report's
pictures in ``report/``, plus vgem's own ``.vgem/`` (the lock and the record
of what vgem wrote: :class:`vgem.outputs.OwnedFolder`). A run may be pointed at
a folder that holds other files: vgem leaves them alone, and refuses, before
any work, a run that would replace one of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from vgem.outputs import OwnedFolder

PREDICTIONS_FILE = "predictions.jsonl"
SITTINGS_FILE = "sittings.jsonl"
RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"
REPORT_FOLDER = "report"
#: The schema of results.json.
RESULTS_SCHEMA = "vgem.eval/1"
#: How report.html says vgem made it (and how reports said so before the generator tag).
GENERATOR = b'<meta name="generator" content="vgem">'
LEGACY_TITLE = "<title>vgem · ".encode()


def run_folder(
    directory: str | os.PathLike[str],
    *,
    setting: str = "run_dir",
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> OwnedFolder:
    """The run folder at ``directory`` (not yet entered: nothing is created)."""
    return OwnedFolder(directory, setting=setting, inputs=inputs, recognise=is_run_file)


def check_run_folder(folder: OwnedFolder) -> None:
    """Refuse now a run whose files would land on files vgem did not write."""
    folder.check(
        [PREDICTIONS_FILE, SITTINGS_FILE, RESULTS_FILE, REPORT_FILE], folders=[REPORT_FOLDER]
    )


def is_run_file(path: Path) -> bool:
    """Whether ``path`` is a run-folder file vgem wrote before it kept a record of its
    files (an earlier version's run): told by its contents."""
    name = path.name
    try:
        if name.startswith("predictions") and name.endswith(".jsonl"):
            with path.open("rb") as handle:
                first = handle.readline(1 << 20)
            if not first.strip():
                return path.stat().st_size == 0
            line = json.loads(first)
            return isinstance(line, dict) and {"id", "settings", "sample"} <= set(line)
        if name == RESULTS_FILE:
            document = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(document, dict) and document.get("schema") == RESULTS_SCHEMA
        if name == REPORT_FILE:
            with path.open("rb") as handle:
                head = handle.read(2048)
            return GENERATOR in head or LEGACY_TITLE in head
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return False
