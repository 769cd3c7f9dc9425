"""One run loop for every evaluation task, and :func:`run`, the library's front door.

A run's whole state is its predictions file, ``predictions.jsonl`` in the run
directory. Each line is written, flushed and fsynced as soon as its sample is
grounded, so a run killed at any moment keeps everything it finished, and a
resumed run skips every sample that already has a line made with the same
settings for the same sample (the task's "already done" rule). The figures
are computed from that file alone, so an interrupted and resumed run reports
exactly what an uninterrupted one does. An error line counts as done, so
resuming never records a sample twice; ``retry_errors`` grounds those samples
again and their new line replaces the error.

How the work is executed is the execution layer's (:mod:`vgem.execution`):
the loop hands per-video :class:`~vgem.execution.units.WorkUnit` objects and
one picklable :class:`~vgem.execution.units.GroundingJob` (the task, the run
context and how to build the grounder) to an executor, and every line comes
back through one callback, so the driver stays the only writer of the log.
Each sitting's account of how it was executed is kept in the run folder, and
results.json's ``execution`` covers every sitting.

The run folder is vgem's only in part (:mod:`vgem.eval.run_folder`): a run
refuses, before any work, to replace a file vgem did not write there, locks
the folder while it runs, and connects the executor (a Ray cluster) before it
creates anything, so a refused connection leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vgem.errors import SettingsError
from vgem.eval.html_report import write_report
from vgem.eval.paper import weights_checksum
from vgem.eval.report import RunDescription, build_results, write_results
from vgem.eval.run_folder import RESULTS_FILE, check_run_folder, run_folder
from vgem.eval.run_log import (
    PredictionLog,
    append_sitting,
    fingerprint,
    read_sittings,
    run_identity,
)
from vgem.eval.tasks import Line, RunContext, SupportsGround, Task, make_task
from vgem.execution.executor import (
    Executor,
    WorkerError,
    execution_of,
    start_executor,
    stop_executor,
)
from vgem.execution.factory import make_executor
from vgem.execution.local import LocalExecutor
from vgem.execution.recipe import GrounderRecipe
from vgem.execution.sittings import combine_sittings
from vgem.execution.units import GroundingJob, UnitWork
from vgem.execution.worker import Worker, WorkerMeter
from vgem.plain import plain_json, utc_timestamp

__all__ = [
    "EvalResult",
    "Executor",
    "GrounderRecipe",
    "GroundingJob",
    "LocalExecutor",
    "RunListener",
    "RunOutcome",
    "UnitWork",
    "Worker",
    "WorkerMeter",
    "damaged_lines",
    "default_run_dir",
    "evaluate",
    "export_manifest",
    "make_executor",
    "run",
    "select",
]

if TYPE_CHECKING:
    from vgem.eval.samples import Sample
    from vgem.eval.selection import Selection
    from vgem.eval.sources import SampleSource
    from vgem.outputs import OwnedFolder
    from vgem.settings import Settings
    from vgem.temporal import TemporalSettings


class RunListener(Protocol):
    """Follows a run as it goes (the CLI's progress bar is one)."""

    def start(self, total: int) -> None:
        """The run covers ``total`` samples (finished ones included)."""

    def resume(self, finished_lines: list[dict[str, Any]]) -> None:
        """The lines of samples finished in earlier sittings, before anything is grounded."""

    def record(self, line: dict[str, Any]) -> None:
        """A line just written to the predictions file."""


@dataclass(frozen=True)
class EvalResult:
    """What :func:`run` returns: ``document`` is exactly what results.json holds."""

    document: dict[str, Any]
    results_path: Path
    run_dir: Path
    interrupted: bool


@dataclass(frozen=True)
class RunOutcome:
    """What a sitting of a run leaves: the lines to score, and what this sitting did.

    ``execution`` covers every sitting of the run (see
    :func:`vgem.execution.sittings.combine_sittings`); ``damaged``: lines of the
    predictions file that could not be used (their samples were grounded
    again); ``failure``: the executor's error that ended the sitting after
    what finished was kept (raise it once the results are written).
    """

    records: dict[str, dict[str, Any]]
    resumed: int
    written: int
    interrupted: bool
    execution: dict[str, Any] | None = None
    damaged: int = 0
    failure: WorkerError | None = None


# --------------------------------------------------------------------------- the run loop


def evaluate(
    selection: Selection,
    task: Task,
    *,
    context: RunContext,
    run_dir: str | os.PathLike[str],
    load_grounder: Callable[[], SupportsGround],
    resume: bool = True,
    retry_errors: bool = False,
    executor: Executor | None = None,
    listener: RunListener | None = None,
    folder: OwnedFolder | None = None,
) -> RunOutcome:
    """Ground every selected sample that is not finished yet, and collect the lines to score.

    ``folder``: the run folder, entered (locked) by the caller; without one the
    run folder at ``run_dir`` is entered for the while. Ctrl-C (and SIGTERM, under
    :func:`vgem.execution.signals.termination_as_interrupt`) stops the sitting
    cleanly: the outcome says ``interrupted`` and holds what was finished, so
    the caller can still report it; so does an executor that gave up
    (``failure``).
    """
    log = PredictionLog(run_dir)
    written = 0

    def emit(line: Line) -> None:
        nonlocal written
        log.append(line)
        written += 1
        if listener is not None:
            listener.record(line)

    if listener is not None:
        listener.start(len(selection.samples))
    chosen = executor or LocalExecutor()
    interrupted = False
    failure: WorkerError | None = None
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(run_folder(run_dir))  # nothing exists before this
        stack.enter_context(log.open(fresh=not resume, folder=folder))
        previous, damaged = _current(task, log, selection, context)
        finished = [
            line for line in previous.values() if task.is_finished(line, retry_errors=retry_errors)
        ]
        finished_ids = {line["id"] for line in finished}
        if listener is not None:
            listener.resume(finished)
        pending = [sample for sample in selection.samples if sample.id not in finished_ids]
        job = GroundingJob(task, context, load_grounder)
        started_at = utc_timestamp()
        units = task.units(pending, selection.known_errors)
        try:
            if units:
                chosen.execute(job, units, emit)
        except KeyboardInterrupt:
            interrupted = True
        except WorkerError as error:  # the executor gave up; what finished is kept
            failure = error
        records, _ = _current(task, log, selection, context)
        if units:
            sitting = {
                **execution_of(chosen),
                "started_at": started_at,
                "finished_at": utc_timestamp(),
                "interrupted": interrupted,
            }
            append_sitting(run_dir, plain_json(sitting))
    sittings = read_sittings(run_dir)
    execution = combine_sittings(sittings) if sittings else {"executor": "none: nothing to do"}
    return RunOutcome(records, len(finished_ids), written, interrupted, execution, damaged, failure)


def _current(
    task: Task, log: PredictionLog, selection: Selection, context: RunContext
) -> tuple[dict[str, dict[str, Any]], int]:
    """The lines a run may keep, and how many lines of the file could not be used."""
    records = log.records()
    usable = [record for record in records if task.line_problem(record) is None]
    damaged = log.damaged + len(records) - len(usable)
    return task.current_records(usable, selection.samples, context.settings_hash), damaged


def pending_count(
    selection: Selection,
    task: Task,
    run_dir: str | os.PathLike[str],
    settings_hash: str,
    *,
    resume: bool = True,
    retry_errors: bool = False,
) -> int:
    """How many samples a sitting would ground (reads the predictions file, locks and
    writes nothing): what decides whether an executor must be started at all."""
    if not resume:
        return len(selection.samples)
    log = PredictionLog(run_dir)
    usable = [record for record in log.records() if task.line_problem(record) is None]
    previous = task.current_records(usable, selection.samples, settings_hash)
    finished = {
        line["id"]
        for line in previous.values()
        if task.is_finished(line, retry_errors=retry_errors)
    }
    return sum(1 for sample in selection.samples if sample.id not in finished)


# --------------------------------------------------------------------------- the front door


def select(
    source: SampleSource,
    task: Task,
    *,
    limit: int | None = None,
    shuffle_seed: int | None = None,
) -> Selection:
    """The samples of ``source`` that a run of ``task`` evaluates (refusing a source of
    the wrong kind before anything is read)."""
    if task.whole_video and source.manifest is not None:
        raise SettingsError(
            f"`task` {task.name} reads whole videos from a dataset; "
            "a manifest holds single frames.",
            settings=("task",),
        )
    if task.whole_video != source.holds_whole_videos():
        wanted = "whole videos" if task.whole_video else "single frames"
        raise SettingsError(
            f"`task` {task.name} evaluates {wanted}, which the samples of {source.label} are not"
            + (" (open the dataset with whole_videos=True)." if task.whole_video else "."),
            settings=("task",),
        )
    return source.select(limit=limit, shuffle_seed=shuffle_seed)


def run(
    source: SampleSource,
    *,
    task: str | Task = "spatial",
    backbone: str = "viclip-b16",
    weights: str | None = None,
    settings: Settings | None = None,
    temporal: TemporalSettings | None = None,
    metrics: Sequence[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    retry_errors: bool = False,
    limit: int | None = None,
    shuffle_seed: int | None = None,
    source_fps: float = 1.0,
    nlp_dir: str | os.PathLike[str] | None = None,
    executor: Executor | None = None,
    progress: RunListener | None = None,
    load_grounder: Callable[[], SupportsGround] | None = None,
) -> EvalResult:
    """Evaluate grounding on ``source`` (see :func:`vgem.eval.open_dataset` and
    :func:`vgem.eval.open_manifest`); write and return the results document.

    ``task``: ``spatial`` (one frame per sample: pointing game and, with
    ``map`` in ``metrics``, spatial mAP), or on whole videos ``spatiotemporal``
    (IoU+Pointing, video mAP) or ``temporal`` (IoU, IoD, segment mAP), which
    take ``temporal`` settings. The run directory (default
    ``runs/<label>-<backbone>-<settings hash>``) keeps every prediction; with
    ``resume`` a run continues where an earlier one with the same settings
    stopped, ``retry_errors`` grounds again the samples that failed.
    ``load_grounder`` replaces building the grounder from ``backbone``,
    ``weights`` and ``settings`` (tests, a grounder already in memory).
    A Ctrl-C ends the run with ``interrupted`` set and the results of what was
    finished written.
    """
    from vgem.settings import Settings, settings_for_backbone

    chosen = make_task(task, metrics=metrics, temporal=temporal)
    settings = settings or Settings()
    selection = select(source, chosen, limit=limit, shuffle_seed=shuffle_seed)
    resolved = settings_for_backbone(backbone, settings)  # what the identity hashes
    if resolved.precision == "auto":  # bf16 moves points: hash what this machine runs
        from vgem.precision import resolve_precision

        resolved = resolved.replace(precision=resolve_precision("auto", resolved.device))
    identity = run_identity(backbone, weights, resolved, source_fps)
    identity.update(chosen.identity())
    settings_hash = fingerprint(identity)
    directory = Path(
        run_dir or default_run_dir(chosen.run_label(source.label), backbone, settings_hash)
    ).expanduser()
    inputs = [source.manifest, weights]
    folder = run_folder(directory, inputs=inputs)
    check_run_folder(folder)  # a file vgem did not write there is refused before any work
    description = RunDescription(
        dataset=source.dataset,
        manifest=None if source.manifest is None else str(source.manifest),
        root=str(source.root),
        run_dir=str(directory.resolve()),
        backbone=backbone,
        weights=weights,
        settings=plain_json(resolved.to_dict()),
        settings_hash=settings_hash,
        identity=identity,
        metrics=chosen.metrics,
        limit=limit,
        shuffle_seed=shuffle_seed,
        started_at=utc_timestamp(),
        label=source.label,
        weights_sha256=weights_checksum(weights),  # is it the published file? (`compare`)
    )
    chosen_executor = executor or LocalExecutor()
    pending = pending_count(
        selection, chosen, directory, settings_hash, resume=resume, retry_errors=retry_errors
    )
    if pending:
        start_executor(chosen_executor)  # a refused start leaves nothing behind
    try:
        with folder:
            outcome = evaluate(
                selection,
                chosen,
                context=RunContext(source.root, settings_hash, source_fps),
                run_dir=directory,
                load_grounder=load_grounder
                or GrounderRecipe(
                    backbone, weights, settings, None if nlp_dir is None else str(nlp_dir)
                ),
                resume=resume,
                retry_errors=retry_errors,
                executor=chosen_executor,
                listener=progress,
                folder=folder,
            )
            document = build_results(
                description,
                selection,
                outcome.records,
                task=chosen,
                finished_at=utc_timestamp(),
                resumed=outcome.resumed,
                evaluated=outcome.written,
                execution=outcome.execution,
                damaged=outcome.damaged,
            )
            results_path = write_results(directory / RESULTS_FILE, document, folder=folder)
            write_report(directory, document, folder=folder)  # report.html beside it
    finally:
        stop_executor(chosen_executor)
    if outcome.failure is not None:
        raise outcome.failure  # said once the results of what finished are written
    return EvalResult(document, results_path, directory, outcome.interrupted)


def damaged_lines(run_dir: str | os.PathLike[str], document: Mapping[str, Any]) -> int:
    """How many lines of a finished run's predictions file cannot be used now (an edit
    gone wrong): ``vgem eval --show`` says so; resuming the run grounds their samples
    again."""
    from vgem.eval.tasks import task_of_document

    task = task_of_document(document)
    log = PredictionLog(run_dir)
    records = log.records()
    return log.damaged + sum(1 for record in records if task.line_problem(record) is not None)


def export_manifest(samples: Sequence[Sample], path: str | os.PathLike[str]) -> int:
    """Write samples (e.g. a selection's) as a manifest; returns how many were written."""
    from vgem.eval.manifest import write_manifest

    return write_manifest(samples, Path(path).expanduser())


def default_run_dir(label: str, backbone: str, settings_hash: str) -> Path:
    """``runs/<label>-<backbone>-<first 8 of the settings hash>``."""
    return Path("runs") / f"{_slug(label)}-{_slug(backbone)}-{settings_hash[:8]}"


def _slug(text: str) -> str:
    """A name safe in a path on any system ("openclip:ViT-B-16@x" → "openclip_ViT-B-16_x")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "run"
