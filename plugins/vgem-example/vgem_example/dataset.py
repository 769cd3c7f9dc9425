"""The ``example-csv`` dataset adapter: one CSV row per ground-truth frame.

``<root>/annotations.csv`` with a header ``id,video,time,query,x1,y1,x2,y2``
(time in seconds, the box in pixels of the video's frames). A dataset
adapter is an object with ``name``, ``description`` and ``read(root)``
yielding ``Sample`` objects, or a ``ManifestProblem`` for a row it cannot
use, so one bad row never hides the rest; it raises ``DatasetError`` when the
release cannot be used at all. ``vgem eval --dataset example-csv --root DIR``
then evaluates it like any built-in benchmark.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from vgem.errors import DatasetError
from vgem.eval.datasets.base import UniqueIds, dataset_root, find_annotation, make_sample
from vgem.eval.manifest import ManifestProblem, Sample

ANNOTATION = "annotations.csv"
COLUMNS = ("id", "video", "time", "query", "x1", "y1", "x2", "y2")


class CsvDataset:
    name = "example-csv"
    description = "Example CSV: annotations.csv, one box per row (id, video, time, query, box)"

    def read(self, root: Path) -> Iterator[Sample | ManifestProblem]:
        folder = dataset_root(root)
        path = find_annotation(folder, (ANNOTATION,), f"{self.name} {ANNOTATION}")
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
            header = tuple(rows[0]) if rows else ()
        missing = [column for column in COLUMNS if rows and column not in header]
        if missing:
            raise DatasetError(f"{path.name} lacks the column(s) {', '.join(missing)}.")
        return self._samples(rows, path.name)

    def _samples(self, rows: list[dict], source: str) -> Iterator[Sample | ManifestProblem]:
        ids = UniqueIds()
        for number, row in enumerate(rows, start=2):  # line 1 is the header
            where = f"line {number}"
            try:
                time = float(row["time"])
                box = [float(row[key]) for key in ("x1", "y1", "x2", "y2")]
            except (TypeError, ValueError):
                yield ManifestProblem(source, f"{where}: time and box must be numbers")
                continue
            yield make_sample(
                source,
                where,
                id=ids.make(row["id"] or f"row-{number}"),
                video=row["video"],
                time=time,
                query=row["query"],
                boxes=[box],
                dataset=self.name,
            )


EXAMPLE_CSV = CsvDataset()
