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

How the work is executed is pluggable: the loop hands per-video
:class:`~vgem.eval.tasks.WorkUnit` objects and one picklable
:class:`GroundingJob` (the task, the run context and how to build the
grounder) to an :class:`Executor`, and every line comes back through one
callback, so the driver stays the only writer of the log. The
:class:`LocalExecutor` grounds in this process; a distributed executor gives
each worker process the job, lets it build its grounder once and keep it, and
streams the lines back the same way.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vgem.errors import SettingsError
from vgem.eval.html_report import write_report
from vgem.eval.paper import weights_checksum
from vgem.eval.report import RESULTS_FILE, RunDescription, build_results, write_results
from vgem.eval.run_log import PredictionLog, fingerprint, run_identity
from vgem.eval.tasks import Emit, Line, RunContext, SupportsGround, Task, WorkUnit, make_task
from vgem.plain import plain_json, utc_timestamp
from vgem.results import check_output

if TYPE_CHECKING:
    from vgem.eval.samples import Sample, Selection
    from vgem.eval.sources import SampleSource
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
    """What a sitting of a run leaves: the lines to score, and what this sitting did."""

    records: dict[str, dict[str, Any]]
    resumed: int
    written: int
    interrupted: bool
    execution: dict[str, Any] | None = None  # how the work was executed (see Executor)


# --------------------------------------------------------------------------- executing


@dataclass(frozen=True)
class GrounderRecipe:
    """How to build a run's grounder; picklable, so that a worker process builds its own."""

    backbone: str
    weights: str | None
    settings: Settings
    nlp_dir: str | None = None

    def __call__(self) -> SupportsGround:
        from vgem.grounder import Grounder

        return Grounder(self.backbone, self.weights, settings=self.settings, nlp_dir=self.nlp_dir)


class UnitWork(Protocol):
    """What a worker needs of a job's task: an evaluation :class:`~vgem.eval.tasks.Task`
    has it, and so has the grounding of many videos (:mod:`vgem.batch`)."""

    def ground_unit(
        self,
        unit: WorkUnit,
        context: RunContext,
        grounder: Callable[[], SupportsGround],
        emit: Emit,
    ) -> None:
        """Ground one unit, handing each of its lines (a dict with an ``id``) to ``emit``."""

    def error_record(self, sample: Any, context: RunContext, reason: str, seconds: float) -> Line:
        """The line of a sample that could not be run (a distributed executor gives one
        to each sample of a unit whose workers keep dying)."""


@dataclass(frozen=True)
class GroundingJob:
    """What every worker of a run needs: the task, the run context, the grounder's recipe.

    Picklable when ``load_grounder`` is (a :class:`GrounderRecipe` is).
    """

    task: UnitWork
    context: RunContext
    load_grounder: Callable[[], SupportsGround]


class Worker:
    """Grounds work units of one job, building the grounder on first need and keeping it."""

    def __init__(self, job: GroundingJob) -> None:
        self.job = job
        self._grounder: SupportsGround | None = None
        self.load_seconds = 0.0  # building the grounder

    def grounder(self) -> SupportsGround:
        if self._grounder is None:
            started = time.perf_counter()
            self._grounder = self.job.load_grounder()
            self.load_seconds = time.perf_counter() - started
        return self._grounder

    def run(self, unit: WorkUnit, emit: Emit) -> None:
        self.job.task.ground_unit(unit, self.job.context, self.grounder, emit)


class Executor(Protocol):
    """Runs the work units of a job, handing every line to ``emit`` in the driver.

    An executor may also have ``execution() -> dict``: how its last
    ``execute`` went (the executor, its workers, each worker's throughput),
    which results.json records under ``execution``.
    """

    def execute(self, job: GroundingJob, units: Sequence[WorkUnit], emit: Emit) -> None: ...


@dataclass
class WorkerMeter:
    """One worker's share of a sitting: units and lines done, seconds busy (loading included)."""

    worker: str
    units: int = 0
    samples: int = 0
    busy_seconds: float = 0.0
    load_seconds: float = 0.0

    def counting(self, emit: Emit) -> Emit:
        def counted(line: Line) -> None:
            self.samples += 1
            emit(line)

        return counted

    @contextmanager
    def timing(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.busy_seconds += time.perf_counter() - started

    def to_dict(self) -> dict[str, Any]:
        """The counts and ``samples_per_second`` once the model was loaded."""
        grounding = self.busy_seconds - self.load_seconds
        rate = self.samples / grounding if self.samples and grounding > 0 else None
        return {
            "worker": self.worker,
            "units": self.units,
            "samples": self.samples,
            "busy_seconds": round(self.busy_seconds, 3),
            "load_seconds": round(self.load_seconds, 3),
            "samples_per_second": None if rate is None else round(rate, 4),
        }


class LocalExecutor:
    """Grounds the units one after another in this process, with one grounder.

    The grounder is built when the first probed video needs it, so a run with
    nothing left to do, or with only missing videos, loads no model.
    """

    def __init__(self) -> None:
        self._meter = WorkerMeter("local")

    def execute(self, job: GroundingJob, units: Sequence[WorkUnit], emit: Emit) -> None:
        worker = Worker(job)
        self._meter = meter = WorkerMeter("local")
        counted = meter.counting(emit)
        for unit in units:
            with meter.timing():
                worker.run(unit, counted)
            meter.units += 1
            meter.load_seconds = worker.load_seconds

    def execution(self) -> dict[str, Any]:
        return {"executor": "local", "workers": 1, "per_worker": [self._meter.to_dict()]}


def make_executor(
    name: str = "local",
    *,
    ray_address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float | None = None,
    gpus_per_worker: float | None = None,
) -> Executor:
    """The executor called ``name``: ``local`` (this process) or ``ray`` (Ray actors,
    :class:`vgem.eval.ray_executor.RayExecutor`; needs the ``ray`` extra).

    The local executor takes none of the other settings.
    """
    chosen = str(name).strip().lower()
    ray_settings = {
        "ray_address": ray_address,
        "workers": workers,
        "cpus_per_worker": cpus_per_worker,
        "gpus_per_worker": gpus_per_worker,
    }
    if chosen == "local":
        given = [setting for setting, value in ray_settings.items() if value is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise SettingsError(
                f"{', '.join(f'`{setting}`' for setting in given)} {verb} to `executor` ray; "
                "the local executor is this process alone.",
                settings=("executor", *given),
            )
        return LocalExecutor()
    if chosen == "ray":
        from vgem.eval.ray_executor import RayExecutor

        return RayExecutor(
            ray_address,
            workers=1 if workers is None else workers,
            cpus_per_worker=1.0 if cpus_per_worker is None else cpus_per_worker,
            gpus_per_worker=0.0 if gpus_per_worker is None else gpus_per_worker,
        )
    raise SettingsError(f"`executor` takes local or ray, not {name!r}.", settings=("executor",))


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
) -> RunOutcome:
    """Ground every selected sample that is not finished yet, and collect the lines to score.

    Ctrl-C stops the sitting cleanly: the outcome says ``interrupted`` and
    holds what was finished, so the caller can still report it.
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
    with log.open(fresh=not resume):
        previous = task.current_records(log.records(), selection.samples, context.settings_hash)
        finished = [
            line for line in previous.values() if task.is_finished(line, retry_errors=retry_errors)
        ]
        finished_ids = {line["id"] for line in finished}
        if listener is not None:
            listener.resume(finished)
        pending = [sample for sample in selection.samples if sample.id not in finished_ids]
        job = GroundingJob(task, context, load_grounder)
        interrupted = False
        chosen = executor or LocalExecutor()
        try:
            units = task.units(pending, selection.known_errors)
            chosen.execute(job, units, emit)
        except KeyboardInterrupt:
            interrupted = True
        records = task.current_records(log.records(), selection.samples, context.settings_hash)
    execution = getattr(chosen, "execution", None)
    return RunOutcome(
        records,
        len(finished_ids),
        written,
        interrupted,
        execution() if callable(execution) else {"executor": type(chosen).__name__},
    )


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
    # its results file must be writable (the default folder too): say so before any model
    check_output(directory / RESULTS_FILE, setting="run_dir", inputs=[source.manifest])
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
    outcome = evaluate(
        selection,
        chosen,
        context=RunContext(source.root, settings_hash, source_fps),
        run_dir=directory,
        load_grounder=load_grounder
        or GrounderRecipe(backbone, weights, settings, None if nlp_dir is None else str(nlp_dir)),
        resume=resume,
        retry_errors=retry_errors,
        executor=executor,
        listener=progress,
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
    )
    results_path = write_results(directory / RESULTS_FILE, document)
    write_report(directory, document)  # report.html beside it (vgem.eval.html_report)
    return EvalResult(document, results_path, directory, outcome.interrupted)


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
