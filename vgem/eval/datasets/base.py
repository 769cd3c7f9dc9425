"""The adapter contract, and the few helpers the built-in adapters share."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, runtime_checkable

from vgem.errors import DatasetError, os_error_text
from vgem.eval.samples import DataNote, ManifestProblem, Sample


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

    def read(self, root: Path) -> Iterator[Sample | ManifestProblem | DataNote]: ...


@dataclass(frozen=True)
class DatasetFile:
    """A file (or folder) a benchmark needs under the root, and where it is published."""

    path: str  # where it goes under the root (the first place looked)
    what: str  # what it holds
    published: str  # where to get it, by project name (and address)
    also_looked: tuple[str, ...] = ()  # other places under the root it is found
    optional: bool = False


@dataclass(frozen=True)
class DatasetGuide:
    """What a user needs to evaluate on a benchmark: what to download, where to put it,
    what the run should find. Built-in adapters carry one as ``guide``;
    ``describe`` renders it (the README's benchmark sections say the same)."""

    title: str
    reference: str  # the paper
    files: tuple[DatasetFile, ...]
    videos: str  # where the videos (or frames) go and where they are published
    counts: str  # what a full read finds, and what the reference evaluation counts
    differences: tuple[str, ...] = ()  # where vgem deliberately differs from the authors

    def lines(self, name: str) -> list[str]:
        lines = [f"{name}: {self.title}", f"  paper: {self.reference}", "  files under the root:"]
        for item in self.files:
            where = " or ".join([item.path, *item.also_looked])
            lines.append(f"    {where}{' (optional)' if item.optional else ''}")
            lines.append(f"        {item.what}")
            lines.append(f"        from: {item.published}")
        lines.append(f"  videos: {self.videos}")
        lines.append(f"  expected: {self.counts}")
        lines += [f"  differs from the authors: {text}" for text in self.differences]
        return lines


def describe(adapter: Any) -> list[str]:
    """An adapter's guide in words (its one-line description when it has no guide)."""
    guide = getattr(adapter, "guide", None)
    if isinstance(guide, DatasetGuide):
        return guide.lines(adapter.name)
    return [f"{adapter.name}: {adapter.description}"]


def find_file(root: Path, item: DatasetFile, candidates: Sequence[str] = ()) -> Path:
    """Where a guide's file is under the root (``candidates``: the relative paths to try,
    by default the guide's); ``DatasetError`` naming every place looked and where the
    file is published."""
    candidates = tuple(candidates) or (item.path, *item.also_looked)
    for candidate in candidates:
        path = root / candidate
        if path.is_file():
            return path
    tried = ", ".join(str(root / candidate) for candidate in candidates)
    raise DatasetError(
        f"No {PurePosixPath(item.path).name} under {root} (looked for {tried}). "
        f"It holds {item.what}; get it from {item.published}."
    )


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
    tried = ", ".join(str(root / candidate) for candidate in candidates)
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
        return ManifestProblem(source, f"{where}: {error}", kind="unusable entry")


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
