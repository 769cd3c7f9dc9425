"""From predictions to figures: ``results.json`` and the tables a reviewer reads.

Every number is computed from the prediction lines alone (the latest line of
each selected sample, see :func:`vgem.eval.run_log.current_records`), so what
is reported does not depend on how many sittings a run took. One document
builder serves every task: the common keys here, the task's figures and own
keys from its task object (vgem.eval.tasks). Tables are drawn from
``results.json`` documents, which is what lets :func:`show_runs` put several
finished runs side by side with their average; one table builder serves
every task too, with the columns its task object gives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.errors import DatasetError
from vgem.eval.paper import DATASET_TITLES, PUBLISHED_AVERAGE, paper_comparison
from vgem.eval.run_folder import RESULTS_FILE, RESULTS_SCHEMA
from vgem.eval.tasks import SpatialTask, Task, task_of_document
from vgem.plain import mean_of, visible

if TYPE_CHECKING:
    from rich.table import Table

    from vgem.eval.selection import Selection
    from vgem.outputs import OwnedFolder

SCHEMA = RESULTS_SCHEMA
__all__ = ["RESULTS_FILE", "SCHEMA", "build_results", "load_results", "render_tables"]


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
    # The sha256 of a local weights file (None: the hub default), for `--compare paper`.
    weights_sha256: str | None = None


def build_results(
    description: RunDescription,
    selection: Selection,
    records_by_id: Mapping[str, Mapping[str, Any]],
    *,
    task: Task | None = None,
    finished_at: str,
    resumed: int,
    evaluated: int,
    execution: Mapping[str, Any] | None = None,
    damaged: int = 0,
) -> dict[str, Any]:
    """The results.json document: every figure, every error, the full settings.

    ``task`` defaults to the spatial task with the description's metrics;
    ``execution`` says how the run's work was executed, over all its sittings
    (the executor, its workers, where each ran and its throughput);
    ``damaged``: lines of the predictions file that could not be used (their
    samples were grounded again).
    """
    from vgem.version import __version__

    task = task or SpatialTask(tuple(description.metrics))
    overall, per_dataset = task.score(
        selection.samples, records_by_id, description.dataset or description.label
    )
    errors = [
        {
            "id": sample.id,
            **task.error_fields(sample),
            "video": sample.video,
            "error": records_by_id[sample.id]["error"],
        }
        for sample in selection.samples
        if "error" in records_by_id.get(sample.id, {})
    ]
    return {
        "schema": SCHEMA,
        "vgem_version": __version__,
        "complete": overall["counts"]["pending"] == 0,
        "dataset": description.dataset,
        "manifest": description.manifest,
        "root": description.root,
        "run_dir": description.run_dir,
        "backbone": description.backbone,
        "weights": description.weights,
        "weights_sha256": description.weights_sha256,
        "versions": versions(description.backbone),
        "ran": what_ran(execution or {}),
        "settings": description.settings,
        "settings_hash": description.settings_hash,
        "identity": description.identity,
        "metrics": list(description.metrics),
        "selection": {
            "limit": description.limit,
            "shuffle_seed": description.shuffle_seed,
            task.unit_name: len(selection.samples),
        },
        "started_at": description.started_at,
        "finished_at": finished_at,
        "this_sitting": {"resumed": resumed, "evaluated": evaluated},
        "damaged_lines": damaged,
        "execution": dict(execution or {}),
        "overall": overall,
        "datasets": per_dataset,
        **task.document_part(description.backbone, description.settings, per_dataset),
        "data": None if selection.data is None else selection.data.to_dict(),
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


def versions(backbone: str | None = None) -> dict[str, str | None]:
    """The versions of Python and of the packages that decide the figures (installed
    metadata only: nothing heavy is imported), and of the package that provides
    ``backbone`` when a plugin package does."""
    import platform
    from importlib import metadata

    found: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("vgem", "torch", "open_clip_torch", "numpy", "pillow", "imageio-ffmpeg"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    if backbone:
        from vgem import plugins
        from vgem.backbones import parse_backbone_name

        try:
            family, _ = parse_backbone_name(backbone)
            provided = plugins.provider("vgem.backbones", family)
        except Exception:  # a name that is not installed: nothing more to say
            provided = None
        if provided is not None and provided[0] not in found:
            found[provided[0]] = provided[1]
    return found


def what_ran(execution: Mapping[str, Any]) -> dict[str, Any]:
    """What the run's grounder really was (resolved device, precision, video attention;
    the weights as its backbone describes them): the last worker's that said it."""
    for worker in reversed(list(execution.get("per_worker") or [])):
        if isinstance(worker, Mapping) and isinstance(worker.get("ran"), Mapping):
            return dict(worker["ran"])
    return {}


def write_results(
    path: str | Path, document: Mapping[str, Any], *, folder: OwnedFolder | None = None
) -> Path:
    """Write results.json atomically: a reader never sees half of it. ``folder``: the
    run folder it lands in (entered), which must not replace a file vgem did not write."""
    from vgem.staging import atomic_write

    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def write(temporary: Path) -> None:
        temporary.write_text(text, encoding="utf-8")

    if folder is not None:
        return folder.write(Path(path).name, write)
    return atomic_write(path, write)


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


@dataclass
class _Row:
    dataset: str
    scores: Mapping[str, Any]
    published: float | None
    run: str = ""


#: What a table's note tells a Python user to do about samples that failed.
RETRY_HINT = "run again with retry_errors=True"


def render_tables(
    documents: Sequence[Mapping[str, Any]], *, compare_paper: bool, retry_hint: str = RETRY_HINT
) -> list[Table]:
    """One table per settings: a row per dataset, their average, the paper beside.

    Runs with different settings are never averaged together; runs with the
    same settings (one per benchmark) make one table, like the paper's.
    ``retry_hint`` is how the reader retries failed samples, in the words of
    the front end that prints the table (the CLI names its flag).
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for document in documents:
        groups.setdefault(str(document.get("settings_hash")), []).append(document)
    return [_table(group, compare_paper, retry_hint) for group in groups.values()]


def _table(documents: list[Mapping[str, Any]], compare_paper: bool, retry_hint: str) -> Table:
    """The counts, the task's figure columns, and (spatial) the paper's figure beside."""
    from rich.table import Table

    first = documents[0]
    task = task_of_document(first)
    paper = first.get("paper") or {}
    with_runs = len(documents) > 1  # several runs: each row says which one it is
    rows = [
        _Row(
            name,
            scores,
            (document.get("paper") or {}).get("accuracy", {}).get(name),
            run_name(document),
        )
        for document in documents
        for name, scores in document["datasets"].items()
    ]
    columns = task.figure_columns([row.scores for row in rows])
    with_pending = any(row.scores["counts"]["pending"] for row in rows)
    comparisons = [paper_comparison(document) for document in documents]
    refused = [str(match.reason) for match in comparisons if match.row is None]
    with_paper = compare_paper and task.compares_with_paper and not refused
    table = Table(title=_shown(task.table_title(first)), title_justify="left")
    # The same counts as report.html and results.json: selected, scored, errors (pending).
    count_names = ["selected", "scored", "errors"] + (["pending"] if with_pending else [])
    # Headers fold rather than end in "…" when space is short: a title is never cut.
    if with_runs:
        table.add_column("run", overflow="fold")
    table.add_column("dataset", overflow="fold")
    for title in [task.unit_name, *count_names[1:]]:
        table.add_column(title, justify="right", overflow="fold")
    for column in columns:
        table.add_column(column.title, justify="right", overflow="fold")
    if with_paper:
        table.add_column("paper %", justify="right", overflow="fold")
        table.add_column("Δ", justify="right")

    def cells(selected: list[_Row]) -> list[str]:
        """Counts summed, figures averaged over datasets (each dataset weighing alike)."""
        counts = [str(sum(row.scores["counts"][name] for row in selected)) for name in count_names]
        rates = [mean_of(column.rate(row.scores) for row in selected) for column in columns]
        return counts + [_percent(rate) for rate in rates]

    def paper_cells(selected: list[_Row], published: float | None) -> list[str]:
        if not with_paper:
            return []
        accuracy = mean_of(row.scores["pointing"]["accuracy"] for row in selected)
        return _paper_cells(accuracy, published)

    for row in rows:
        label = _shown(DATASET_TITLES.get(row.dataset, row.dataset))
        run = [_shown(row.run)] if with_runs else []
        table.add_row(*run, label, *cells([row]), *paper_cells([row], row.published))
    if len(rows) > 1:
        table.add_section()
        average = ["average", ""] if with_runs else ["average"]
        table.add_row(*average, *cells(rows), *paper_cells(rows, _published_average(rows, paper)))
    notes = _paper_notes(rows, paper) if with_paper else []
    if compare_paper and not task.compares_with_paper:
        notes.append("the VideoGEM paper publishes no whole-video figures")
    elif compare_paper and refused:
        notes.append(f"no published figure shown: {'; '.join(dict.fromkeys(refused))}")
    errors = sum(row.scores["counts"]["errors"] for row in rows)
    if errors:
        what = "sample(s)" if task.unit_name == "samples" else "video(s)"
        notes.append(
            f"{errors} {what} could not be run: see results.json; once fixed, {retry_hint}"
        )
    if with_pending:
        notes.append("the run is incomplete: run the same command again to finish it")
    if notes:
        table.caption = _shown("; ".join(notes))
        table.caption_justify = "left"
    return table


def _shown(text: str) -> str:
    """Text from a results document as a table shows it: never read as rich markup, and
    its control characters escaped (a dataset name from a manifest cannot reach the
    terminal as an escape sequence)."""
    from rich.markup import escape

    return escape(visible(str(text)))


def run_name(document: Mapping[str, Any]) -> str:
    """What a run is called where several are shown: its run directory's name."""
    return Path(str(document.get("run_dir") or "run")).name or "run"


def _paper_cells(accuracy: float | None, published: float | None) -> list[str]:
    if published is None:
        return ["—", ""]
    if accuracy is None:
        return [f"{published:.2f}", ""]
    return [f"{published:.2f}", f"{100 * accuracy - published:+.2f}"]


def _published_average(rows: list[_Row], paper: Mapping[str, Any]) -> float | None:
    """The paper's mean over the rows' datasets: its own avg column when all four are here."""
    published = [row.published for row in rows]
    if any(value is None for value in published):
        return None
    row_name = paper.get("row")
    if (
        sorted(row.dataset for row in rows) == sorted(DATASET_TITLES)
        and row_name in PUBLISHED_AVERAGE
    ):
        return PUBLISHED_AVERAGE[row_name]
    return mean_of(published)


def _paper_notes(rows: list[_Row], paper: Mapping[str, Any]) -> list[str]:
    if paper.get("row") is None:
        return [f"no published figure: {paper.get('reason')}"]
    missing = [row.dataset for row in rows if row.published is None]
    return [f"the paper has no figure for {', '.join(missing)}"] if missing else []


def show_runs(
    run_dirs: Sequence[str | Path], *, compare_paper: bool = False, retry_hint: str = RETRY_HINT
) -> list[Table]:
    """The tables of finished runs (run directories or results files), side by side."""
    documents = [load_results(run_dir) for run_dir in run_dirs]
    return render_tables(documents, compare_paper=compare_paper, retry_hint=retry_hint)
