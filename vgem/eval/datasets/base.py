"""The adapter contract, and the few helpers the built-in adapters share."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vgem.errors import DatasetError, os_error_text
from vgem.eval.samples import ManifestProblem, Sample


@runtime_checkable
class DatasetAdapter(Protocol):
    """A ``vgem.datasets`` entry point names an object of this shape.

    ``read`` raises ``DatasetError`` when the release cannot be used at all
    (no annotation file, not the expected structure) and otherwise yields one
    sample per ground-truth frame, or a problem for an entry it cannot use, so
    that one bad entry never hides the rest.
    """

    name: str
    description: str

    def read(self, root: Path) -> Iterator[Sample | ManifestProblem]: ...


def dataset_root(root: str | os.PathLike[str]) -> Path:
    """The root as a path, refused early when it is not a folder."""
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"The dataset root {folder} is not a folder.")
    return folder


def find_annotation(root: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of the candidate paths that exists under the root.

    Releases get unpacked with or without their top folder; looking in the
    few usual places saves users from moving files around.
    """
    for candidate in candidates:
        path = root / candidate
        if path.is_file():
            return path
    tried = ", ".join(candidates)
    raise DatasetError(f"No {what} under {root} (looked for {tried}).")


def load_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as error:
        raise DatasetError(f"Cannot read {path}: {os_error_text(error)}.") from error
    except ValueError as error:  # JSONDecodeError and bad UTF-8 alike
        raise DatasetError(f"{path.name} is not valid JSON: {error}.") from error


def first_existing(root: Path, candidates: Sequence[str]) -> str:
    """The first candidate (relative path) present under the root, else the first one.

    Used for videos, whose extension and folder depend on how they were
    downloaded; when none is present yet the manifest still names the
    documented default, and the runner reports it as missing.
    """
    for candidate in candidates:
        if (root / candidate).exists():
            return candidate
    return candidates[0]


def make_sample(source: str, where: str, **fields: Any) -> Sample | ManifestProblem:
    """A sample, or a problem naming the annotation entry that could not make one."""
    try:
        return Sample(**fields)
    except ValueError as error:
        return ManifestProblem(source, f"{where}: {error}")


class UniqueIds:
    """Stable, unique sample ids: a repeated base id gets ``#2``, ``#3``, ...

    Ids must not depend on anything but the annotation file, since resumed
    runs match finished samples by id.
    """

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def make(self, base: str) -> str:
        count = self._seen.get(base, 0) + 1
        self._seen[base] = count
        return base if count == 1 else f"{base}#{count}"
