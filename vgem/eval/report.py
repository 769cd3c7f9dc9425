"""From predictions to figures: ``results.json`` and the tables a reviewer reads.

Every number is computed from the prediction lines alone (the latest line of
each selected sample, see :func:`vgem.eval.run_log.current_records`), so what
is reported does not depend on how many sittings a run took. Tables are
drawn from ``results.json`` documents, which is what lets ``vgem eval
--show`` put several finished runs side by side with their average. Whole-video
runs (``--task spatiotemporal|temporal``, vgem.eval.spatiotemporal) write the
same schema with a ``task`` and their own figures, and get their own table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.errors import DatasetError
from vgem.eval.metrics import PointingGame, PointingResult, SpatialAP, SpatialAPResult
from vgem.eval.paper import DATASET_TITLES, PUBLISHED_AVERAGE, match_paper_row

if TYPE_CHECKING:
    from rich.table import Table

    from vgem.eval.runner import Selection

SCHEMA = "vgem.eval/1"
RESULTS_FILE = "results.json"
UNNAMED_DATASET = "samples"


@dataclass(frozen=True)
class Scores:
    """The figures of one dataset, or of a whole run.

    ``pending`` counts selected samples with no line yet (an interrupted
    run); they are in no rate and no error count.
    """

    selected: int
    pending: int
    pointing: PointingResult
    spatial: SpatialAPResult | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": {
                "selected": self.selected,
                "scored": self.pointing.samples,
                "errors": self.pointing.errors,
                "pending": self.pending,
            },
            "pointing": self.pointing.to_dict(),
            "map": None if self.spatial is None else self.spatial.to_dict(),
        }


class _Tally:
    def __init__(self, with_map: bool) -> None:
        self.selected = 0
        self.pending = 0
        self.pointing = PointingGame()
        self.spatial = SpatialAP() if with_map else None

    def add(self, class_key: str, record: Mapping[str, Any] | None) -> None:
        self.selected += 1
        if record is None:
            self.pending += 1
        elif "error" in record:
            self.pointing.add_error(class_key)
        else:
            self.pointing.add(class_key, bool(record["hit"]))
            if self.spatial is not None and "iou" in record:
                self.spatial.add_iou(class_key, float(record["iou"]))

    def scores(self) -> Scores:
        spatial = None if self.spatial is None else self.spatial.result()
        return Scores(self.selected, self.pending, self.pointing.result(), spatial)


def score_run(
    selection: Selection,
    records_by_id: Mapping[str, Mapping[str, Any]],
    metrics: Iterable[str],
    default_dataset: str | None = None,
) -> tuple[Scores, dict[str, Scores]]:
    """Overall figures and figures per dataset (a sample's ``dataset``, else the run's)."""
    with_map = "map" in set(metrics)
    overall = _Tally(with_map)
    per_dataset: dict[str, _Tally] = {}
    for sample in selection.samples:
        record = records_by_id.get(sample.id)
        dataset = sample.dataset or default_dataset or UNNAMED_DATASET
        overall.add(sample.class_key, record)
        per_dataset.setdefault(dataset, _Tally(with_map)).add(sample.class_key, record)
    return overall.scores(), {name: tally.scores() for name, tally in per_dataset.items()}


@dataclass(frozen=True)
class RunDescription:
    """What a run evaluated and how: everything results.json records besides figures."""

    dataset: str | None
    manifest: str | None
    root: str
    run_dir: str
    backbone: str
    weights: str | None
    settings: dict[str, Any]
    settings_hash: str
    identity: dict[str, Any]
    metrics: tuple[str, ...]
    limit: int | None = None
    shuffle_seed: int | None = None
    started_at: str = ""
    # What samples without a ``dataset`` field are reported under: the manifest's name.
    label: str | None = None


def build_results(
    description: RunDescription,
    selection: Selection,
    records_by_id: Mapping[str, Mapping[str, Any]],
    *,
    finished_at: str,
    resumed: int,
    evaluated: int,
) -> dict[str, Any]:
    """The results.json document: every figure, every error, the full settings."""
    from vgem import __version__

    overall, per_dataset = score_run(
        selection, records_by_id, description.metrics, description.dataset or description.label
    )
    match = match_paper_row(description.backbone, description.settings)
    errors = [
        {
            "id": sample.id,
            "class": sample.class_key,
            "video": sample.video,
            "error": records_by_id[sample.id]["error"],
        }
        for sample in selection.samples
        if "error" in records_by_id.get(sample.id, {})
    ]
    return {
        "schema": SCHEMA,
        "vgem_version": __version__,
        "complete": overall.pending == 0,
        "dataset": description.dataset,
        "manifest": description.manifest,
        "root": description.root,
        "run_dir": description.run_dir,
        "backbone": description.backbone,
        "weights": description.weights,
        "settings": description.settings,
        "settings_hash": description.settings_hash,
        "identity": description.identity,
        "metrics": list(description.metrics),
        "selection": {
            "limit": description.limit,
            "shuffle_seed": description.shuffle_seed,
            "samples": len(selection.samples),
        },
        "started_at": description.started_at,
        "finished_at": finished_at,
        "this_sitting": {"resumed": resumed, "evaluated": evaluated},
        "overall": overall.to_dict(),
        "datasets": {name: scores.to_dict() for name, scores in per_dataset.items()},
        "paper": {
            "row": match.row,
            "reason": match.reason,
            "accuracy": {name: match.accuracy(name) for name in per_dataset},
        },
        "errors": errors,
        "problems": [
            {
                "source": problem.source,
                "line": problem.line,
                "reason": problem.reason,
                "id": None if problem.sample is None else problem.sample.id,
            }
            for problem in selection.problems
        ],
    }


def write_results(path: str | Path, document: Mapping[str, Any]) -> Path:
    """Write results.json atomically: a reader never sees half of it."""
    from vgem.results import atomic_write

    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def load_results(run_dir: str | Path) -> dict[str, Any]:
    """A run's results.json (the run directory or the file itself)."""
    path = Path(run_dir).expanduser()
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"No results at {path}; has `vgem eval` finished there?") from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"Cannot read {path}: {error}.") from error
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise DatasetError(f"{path} is not a vgem eval results file ({SCHEMA}).")
    return document


# --------------------------------------------------------------------------- tables


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.2f}"


def _mean(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


@dataclass
class _Row:
    dataset: str
    scores: Mapping[str, Any]
    published: float | None


def render_tables(documents: Sequence[Mapping[str, Any]], *, compare_paper: bool) -> list[Table]:
    """One table per settings: a row per dataset, their average, the paper beside.

    Runs with different settings are never averaged together; runs with the
    same settings (one per benchmark) make one table, like the paper's.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for document in documents:
        groups.setdefault(str(document.get("settings_hash")), []).append(document)
    return [
        _video_table(group, compare_paper)
        if group[0].get("task") in VIDEO_TASK_FIGURES
        else _table(group, compare_paper)
        for group in groups.values()
    ]


def _table(documents: list[Mapping[str, Any]], compare_paper: bool) -> Table:
    from rich.markup import escape
    from rich.table import Table

    first = documents[0]
    paper = first.get("paper") or {}
    rows = [
        _Row(name, scores, (document.get("paper") or {}).get("accuracy", {}).get(name))
        for document in documents
        for name, scores in document["datasets"].items()
    ]
    with_map = any(row.scores.get("map") for row in rows)
    with_pending = any(row.scores["counts"]["pending"] for row in rows)
    method = paper.get("row") or "ablation"
    table = Table(
        title=escape(f"{method} · {first['backbone']} · settings {first['settings_hash']}"),
        title_justify="left",
    )
    table.add_column("dataset")
    table.add_column("samples", justify="right")
    table.add_column("errors", justify="right")
    if with_pending:
        table.add_column("pending", justify="right")
    table.add_column("accuracy %", justify="right")
    table.add_column("class-mean %", justify="right")
    if with_map:
        table.add_column("mAP %", justify="right")
    if compare_paper:
        table.add_column("paper %", justify="right")
        table.add_column("Δ", justify="right")
    for row in rows:
        counts = row.scores["counts"]
        pointing = row.scores["pointing"]
        cells = [escape(DATASET_TITLES.get(row.dataset, row.dataset)), str(counts["scored"])]
        cells.append(str(counts["errors"]))
        if with_pending:
            cells.append(str(counts["pending"]))
        cells += [_percent(pointing["accuracy"]), _percent(pointing["class_mean_accuracy"])]
        if with_map:
            cells.append(_percent((row.scores.get("map") or {}).get("mean_ap")))
        if compare_paper:
            cells += _paper_cells(pointing["accuracy"], row.published)
        table.add_row(*cells)
    if len(rows) > 1:
        table.add_section()
        table.add_row(*_average_cells(rows, with_pending, with_map, compare_paper, paper))
    notes = []
    if compare_paper and paper.get("row") is None:
        notes.append(f"no published figure: {paper.get('reason')}")
    elif compare_paper:
        missing = [row.dataset for row in rows if row.published is None]
        if missing:
            notes.append(f"the paper has no figure for {', '.join(missing)}")
    errors = sum(row.scores["counts"]["errors"] for row in rows)
    if errors:
        notes.append(
            f"{errors} sample(s) could not be run: see results.json; once fixed, "
            "run again with --retry-errors"
        )
    if with_pending:
        notes.append("the run is incomplete: run the same command again to finish it")
    if notes:
        table.caption = escape("; ".join(notes))
        table.caption_justify = "left"
    return table


def _paper_cells(accuracy: float | None, published: float | None) -> list[str]:
    if published is None:
        return ["—", ""]
    if accuracy is None:
        return [f"{published:.2f}", ""]
    return [f"{published:.2f}", f"{100 * accuracy - published:+.2f}"]


def _average_cells(
    rows: list[_Row],
    with_pending: bool,
    with_map: bool,
    compare_paper: bool,
    paper: Mapping[str, Any],
) -> list[str]:
    """The mean over datasets, each dataset weighing alike as in the paper's avg column."""
    cells = ["average", str(sum(row.scores["counts"]["scored"] for row in rows))]
    cells.append(str(sum(row.scores["counts"]["errors"] for row in rows)))
    if with_pending:
        cells.append(str(sum(row.scores["counts"]["pending"] for row in rows)))
    accuracy = _mean(row.scores["pointing"]["accuracy"] for row in rows)
    cells.append(_percent(accuracy))
    cells.append(_percent(_mean(row.scores["pointing"]["class_mean_accuracy"] for row in rows)))
    if with_map:
        cells.append(_percent(_mean((row.scores.get("map") or {}).get("mean_ap") for row in rows)))
    if compare_paper:
        published = [row.published for row in rows]
        row_name = paper.get("row")
        if None in published:
            cells += ["—", ""]
        else:
            all_four = sorted(row.dataset for row in rows) == sorted(DATASET_TITLES)
            mean = (
                PUBLISHED_AVERAGE[row_name]
                if all_four and row_name in PUBLISHED_AVERAGE
                else sum(published) / len(published)  # type: ignore[arg-type]
            )
            cells += _paper_cells(accuracy, mean)
    return cells


# --------------------------------------------------------------------------- whole-video tables

# Per task: the frame-wise columns (title, figure) and the detection mAP figure.
VIDEO_TASK_FIGURES: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {
    "spatiotemporal": ((("IoU+Pointing %", "iou_pointing"),), "video_map"),
    "temporal": ((("IoU %", "iou"), ("IoD %", "iod")), "segment_map"),
}


def _video_table(documents: list[Mapping[str, Any]], compare_paper: bool) -> Table:
    """A row per dataset: the frame-wise figures (video means), mAP per threshold, mean."""
    from rich.markup import escape
    from rich.table import Table

    first = documents[0]
    ratios, map_name = VIDEO_TASK_FIGURES[first["task"]]
    rows = [
        (name, scores) for document in documents for name, scores in document["datasets"].items()
    ]
    keys = list((rows[0][1][map_name]["map"] if rows else {}).keys())
    with_pending = any(scores["counts"]["pending"] for _, scores in rows)
    table = Table(
        title=escape(f"{first['task']} · {first['backbone']} · settings {first['settings_hash']}"),
        title_justify="left",
    )
    for column in ["dataset", "videos", "errors"] + (["pending"] if with_pending else []):
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for title, _ in ratios:
        table.add_column(title, justify="right")
    for key in keys:
        table.add_column(f"mAP@{key} %", justify="right")
    table.add_column("mAP avg %", justify="right")

    def counts(selected: list[Mapping[str, Any]]) -> list[str]:
        names = ["scored", "errors"] + (["pending"] if with_pending else [])
        return [str(sum(scores["counts"][name] for scores in selected)) for name in names]

    def figures(selected: list[Mapping[str, Any]]) -> list[str]:
        values = [[scores[figure]["video_mean"] for scores in selected] for _, figure in ratios]
        values += [[scores[map_name]["map"].get(key) for scores in selected] for key in keys]
        values.append([scores[map_name]["mean"] for scores in selected])
        return [_percent(_mean(column)) for column in values]

    for name, scores in rows:
        label = escape(DATASET_TITLES.get(name, name))
        table.add_row(label, *counts([scores]), *figures([scores]))
    if len(rows) > 1:
        table.add_section()
        selected = [scores for _, scores in rows]
        table.add_row("average", *counts(selected), *figures(selected))
    notes = []
    if compare_paper:
        notes.append("the VideoGEM paper publishes no whole-video figures")
    errors = sum(scores["counts"]["errors"] for _, scores in rows)
    if errors:
        notes.append(
            f"{errors} video(s) could not be run: see results.json; once fixed, "
            "run again with --retry-errors"
        )
    if with_pending:
        notes.append("the run is incomplete: run the same command again to finish it")
    if notes:
        table.caption = escape("; ".join(notes))
        table.caption_justify = "left"
    return table
