"""``vgem eval``: a benchmark (or any manifest) in, a table and results.json out.

The command only wires things together: samples come from a dataset adapter
or a manifest, vgem.eval.runner grounds and records them, vgem.eval.report
turns the records into figures. Its method options are the very definitions
``vgem ground`` uses (vgem.cli_options), so every ablation of the paper is
one ``vgem eval`` with the flag that ``vgem ground`` would take.

``--task`` picks what is scored: ``spatial`` (one frame per sample, the
paper's protocol) or, on whole untrimmed videos, ``spatiotemporal`` and
``temporal`` (vgem.eval.spatiotemporal), which take the ``--threshold``,
``--min-segment``, ``--max-gap`` and ``--temporal-scorer`` of ``vgem ground
--temporal``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vgem.cli_options import (
    AggregatorOption,
    BackboneOption,
    BatchSizeOption,
    ClipStepOption,
    DepthOption,
    DeviceOption,
    DynamicLayersOption,
    DynamicTemperatureOption,
    ExtractorOption,
    ImageModeOption,
    IterationsOption,
    MaxGapOption,
    MinSegmentOption,
    PrecisionOption,
    PromptsOption,
    StaticWeightsOption,
    TemperatureOption,
    TemporalScorerOption,
    ThresholdOption,
    VideoAttentionOption,
    WeightingOption,
    WeightsOption,
    method_settings,
)
from vgem.cli_support import QUIET, VERBOSE, stderr, user_errors
from vgem.eval.progress import EvalProgress

if TYPE_CHECKING:
    from vgem.eval.manifest import ManifestProblem, Sample
    from vgem.eval.runner import Selection
    from vgem.settings import Settings
    from vgem.temporal import TemporalSettings

DATA_PANEL = "What to evaluate"
RUN_DIR_PANEL = "Run directory"
REPORT_PANEL = "Report"
DEFAULT_METRICS = "pointing,map"
TASKS = ("spatial", "spatiotemporal", "temporal")
PROBLEMS_SHOWN = 20


def eval_command(
    task: Annotated[
        str,
        typer.Option(
            help="spatial: one frame per sample (pointing game, spatial mAP); on whole "
            "untrimmed videos (--dataset gyt): spatiotemporal (IoU+Pointing, video mAP) or "
            "temporal (frame-wise IoU and IoD, segment mAP).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = "spatial",
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Dataset plugin to read: gyt, yc, daly, vhico (see `vgem plugins`).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="A sample manifest (JSON Lines, see the README) instead of --dataset.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            help="Folder holding the dataset (annotations and videos); with --manifest, "
            "videos are relative to it (default: the manifest's folder).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Evaluate only this many samples.", rich_help_panel=DATA_PANEL),
    ] = None,
    shuffle_seed: Annotated[
        int | None,
        typer.Option(
            help="Shuffle the samples with this seed before --limit (a random subset).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    source_fps: Annotated[
        float, typer.Option(help="Frame rate of frame folders.", rich_help_panel=DATA_PANEL)
    ] = 1.0,
    export_manifest: Annotated[
        Path | None,
        typer.Option(
            help="Write the samples as a manifest to this file and stop (loads no model).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where predictions and results go "
            "(default: runs/<dataset>-<backbone>-<settings hash>).",
            rich_help_panel=RUN_DIR_PANEL,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help="Skip samples the run directory already holds for these settings; "
            "--no-resume starts over (the old predictions are kept aside).",
            rich_help_panel=RUN_DIR_PANEL,
        ),
    ] = True,
    retry_errors: Annotated[
        bool,
        typer.Option(
            "--retry-errors",
            help="Ground again the samples that failed before (e.g. once missing videos "
            "are downloaded).",
            rich_help_panel=RUN_DIR_PANEL,
        ),
    ] = False,
    metrics: Annotated[
        str,
        typer.Option(
            help="Metrics, comma-separated: pointing (pointing game), map (spatial mAP).",
            rich_help_panel=REPORT_PANEL,
        ),
    ] = DEFAULT_METRICS,
    compare: Annotated[
        str | None,
        typer.Option(
            help="'paper': show the published accuracy (paper Table 1) beside ours.",
            rich_help_panel=REPORT_PANEL,
        ),
    ] = None,
    show: Annotated[
        list[Path] | None,
        typer.Option(
            help="Show finished runs (a run directory, repeatable) side by side with their "
            "average, instead of running.",
            rich_help_panel=REPORT_PANEL,
        ),
    ] = None,
    backbone: BackboneOption = "viclip-b16",
    weights: WeightsOption = None,
    weighting: WeightingOption = "combined",
    depth: DepthOption = 7,
    iterations: IterationsOption = 1,
    temperature: TemperatureOption = None,
    static_weights: StaticWeightsOption = None,
    dynamic_layers: DynamicLayersOption = 3,
    dynamic_temperature: DynamicTemperatureOption = 20.0,
    video_attention: VideoAttentionOption = "auto",
    prompts: PromptsOption = "decomposed",
    extractor: ExtractorOption = "auto",
    aggregator: AggregatorOption = "position-average",
    clip_step: ClipStepOption = 0.25,
    image_mode: ImageModeOption = False,
    batch_size: BatchSizeOption = 1,
    device: DeviceOption = "auto",
    precision: PrecisionOption = "fp32",
    threshold: ThresholdOption = "0.5",
    min_segment: MinSegmentOption = 2.0,
    max_gap: MaxGapOption = 1.0,
    temporal_scorer: TemporalScorerOption = "class-token",
    quiet: Annotated[bool, QUIET] = False,
    verbose: Annotated[bool, VERBOSE] = False,
) -> None:
    """Evaluate grounding on a benchmark or manifest: pointing game and spatial mAP,
    or (--task) when and where steps happen in whole videos."""
    with user_errors(verbose):
        from vgem.errors import SettingsError

        compare_paper = _compare_choice(compare)
        chosen_task = _task_choice(task)
        if show:
            if dataset is not None or manifest is not None or export_manifest is not None:
                raise SettingsError(
                    "--show prints finished runs; it runs nothing, so drop "
                    "--dataset, --manifest and --export-manifest."
                )
            _show_runs(show, compare_paper)
            return
        temporal_settings = None
        if chosen_task == "spatial":
            chosen_metrics = parse_metrics(metrics)
        else:
            temporal_settings = _temporal_settings(
                chosen_task,
                metrics,
                manifest,
                export_manifest,
                threshold,
                min_segment,
                max_gap,
                temporal_scorer,
            )
            chosen_metrics = _video_metrics(chosen_task)
        settings = method_settings(locals())
        from vgem.eval.runner import select_samples
        from vgem.settings import Settings

        # Bad options fail before the (possibly long) reading of annotations.
        resolved_settings = Settings.from_options(**settings)
        source = (
            _open_samples(dataset, manifest, root)
            if temporal_settings is None
            else _open_videos(dataset, root, chosen_task)
        )
        selection = select_samples(source.items, limit=limit, shuffle_seed=shuffle_seed)
        _warn_about(selection.problems)
        if export_manifest is not None:
            _export(selection.samples, export_manifest, quiet)
            return
        _evaluate(
            source=source,
            selection=selection,
            backbone=backbone,
            weights=weights,
            settings=settings,
            resolved_settings=resolved_settings,
            source_fps=source_fps,
            metrics=chosen_metrics,
            run_dir=run_dir,
            resume=resume,
            retry_errors=retry_errors,
            limit=limit,
            shuffle_seed=shuffle_seed,
            compare_paper=compare_paper,
            quiet=quiet,
            task=chosen_task,
            temporal=temporal_settings,
        )


# --------------------------------------------------------------------------- options


def parse_metrics(text: str) -> tuple[str, ...]:
    """``pointing,map`` → ("pointing", "map"), in the canonical order."""
    from vgem.errors import SettingsError
    from vgem.eval.runner import METRICS

    chosen = {part.strip().lower() for part in text.replace(" ", ",").split(",") if part.strip()}
    unknown = sorted(chosen - set(METRICS))
    if unknown or not chosen:
        raise SettingsError(
            f"--metrics takes {' and/or '.join(METRICS)} separated by commas, not {text!r}."
        )
    return tuple(name for name in METRICS if name in chosen)


def _task_choice(task: str) -> str:
    from vgem.errors import SettingsError

    chosen = task.strip().lower()
    if chosen not in TASKS:
        raise SettingsError(f"--task takes {', '.join(TASKS)}, not {task!r}.")
    return chosen


def _video_metrics(task: str) -> tuple[str, ...]:
    from vgem.eval.spatiotemporal import TASK_METRICS

    return TASK_METRICS[task]


def _temporal_settings(
    task: str,
    metrics: str,
    manifest: Path | None,
    export_manifest: Path | None,
    threshold: str,
    min_segment: float,
    max_gap: float,
    temporal_scorer: str,
) -> TemporalSettings:
    """The temporal settings of a whole-video task, refusing options that do not apply."""
    from vgem import plugins
    from vgem.errors import SettingsError
    from vgem.temporal import TemporalSettings

    if metrics != DEFAULT_METRICS:
        raise SettingsError(
            f"--metrics chooses spatial metrics; --task {task} reports all of its own."
        )
    if manifest is not None or export_manifest is not None:
        raise SettingsError(
            f"--task {task} reads whole videos from --dataset; a manifest holds single frames."
        )
    plugins.load("vgem.temporal", temporal_scorer)  # an unknown scorer fails before any work
    return TemporalSettings(
        scorer=temporal_scorer, threshold=threshold, min_segment=min_segment, max_gap=max_gap
    )


def _compare_choice(compare: str | None) -> bool:
    from vgem.errors import SettingsError

    if compare is None:
        return False
    if compare.strip().lower() != "paper":
        raise SettingsError(f"--compare takes 'paper', not {compare!r}.")
    return True


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class _SampleSource:
    """Where the samples come from: the items, the name runs are filed under, the root."""

    items: Iterable[Sample | ManifestProblem]
    label: str
    root: Path
    dataset: str | None
    manifest: Path | None


def _open_samples(dataset: str | None, manifest: Path | None, root: Path | None) -> _SampleSource:
    from vgem.errors import SettingsError

    if manifest is not None and dataset is None:
        from vgem.eval.datasets.base import dataset_root
        from vgem.eval.manifest import read_manifest

        manifest_path = manifest.expanduser().resolve()
        data_root = dataset_root(root or manifest_path.parent).resolve()
        items = read_manifest(manifest_path, data_root)
        return _SampleSource(items, manifest_path.stem, data_root, None, manifest_path)
    if dataset is None or manifest is not None:
        raise SettingsError("Give one of --dataset NAME and --manifest FILE.")
    if root is None:
        raise SettingsError(f"--dataset {dataset} needs --root DIR, the folder it was unpacked in.")
    from vgem import plugins
    from vgem.eval.datasets.base import dataset_root

    adapter = plugins.load("vgem.datasets", dataset)
    if isinstance(adapter, type):
        adapter = adapter()
    data_root = dataset_root(root).resolve()
    return _SampleSource(adapter.read(data_root), dataset, data_root, dataset, None)


def _open_videos(dataset: str | None, root: Path | None, task: str) -> _SampleSource:
    """Whole-video samples from a dataset adapter that has ``read_videos``."""
    from vgem.errors import SettingsError

    if dataset is None:
        raise SettingsError(f"--task {task} needs --dataset (gyt) and --root DIR.")
    if root is None:
        raise SettingsError(f"--dataset {dataset} needs --root DIR, the folder it was unpacked in.")
    from vgem import plugins
    from vgem.eval.datasets.base import dataset_root

    adapter = plugins.load("vgem.datasets", dataset)
    if isinstance(adapter, type):
        adapter = adapter()
    if not callable(getattr(adapter, "read_videos", None)):
        raise SettingsError(
            f"--task {task} needs whole-video annotations, which the {dataset} dataset "
            "does not provide (gyt does)."
        )
    data_root = dataset_root(root).resolve()
    return _SampleSource(adapter.read_videos(data_root), dataset, data_root, dataset, None)


def _warn_about(problems: list[ManifestProblem]) -> None:
    """Each unusable sample on one line, with its place; a long list is cut short."""
    from rich.markup import escape

    for problem in problems[:PROBLEMS_SHOWN]:
        stderr.print(f"[yellow]warning:[/] {escape(str(problem))}", soft_wrap=True)
    if len(problems) > PROBLEMS_SHOWN:
        more = len(problems) - PROBLEMS_SHOWN
        stderr.print(f"[yellow]warning:[/] … and {more} more problem(s)", soft_wrap=True)


def _export(samples: list[Sample], path: Path, quiet: bool) -> None:
    from vgem.eval.manifest import write_manifest

    written = write_manifest(samples, path.expanduser())
    if not quiet:
        stderr.print(f"wrote {written} sample(s) to {path}", soft_wrap=True, markup=False)


# --------------------------------------------------------------------------- running


def _evaluate(
    *,
    source: _SampleSource,
    selection: Selection,
    backbone: str,
    weights: str | None,
    settings: dict[str, Any],
    resolved_settings: Settings,
    source_fps: float,
    metrics: tuple[str, ...],
    run_dir: Path | None,
    resume: bool,
    retry_errors: bool,
    limit: int | None,
    shuffle_seed: int | None,
    compare_paper: bool,
    quiet: bool,
    task: str = "spatial",
    temporal: TemporalSettings | None = None,
) -> None:
    import json
    from dataclasses import asdict

    from rich.console import Console

    from vgem.eval.report import (
        RESULTS_FILE,
        RunDescription,
        build_results,
        render_tables,
        write_results,
    )
    from vgem.eval.run_log import fingerprint, run_identity
    from vgem.eval.runner import RunContext, evaluate

    identity = run_identity(backbone, weights, resolved_settings, source_fps)
    label = source.label
    if temporal is not None:  # a whole-video task: its own predictions and run directory
        identity.update(task=task, temporal=asdict(temporal))
        label = f"{source.label}-{task}"
    settings_hash = fingerprint(identity)
    directory = (run_dir or _default_run_dir(label, backbone, settings_hash)).expanduser()
    description = RunDescription(
        dataset=source.dataset,
        manifest=None if source.manifest is None else str(source.manifest),
        root=str(source.root),
        run_dir=str(directory.resolve()),
        backbone=backbone,
        weights=weights,
        settings=json.loads(json.dumps(resolved_settings.to_dict())),
        settings_hash=settings_hash,
        identity=identity,
        metrics=metrics,
        limit=limit,
        shuffle_seed=shuffle_seed,
        started_at=_now(),
        label=source.label,
    )
    context = RunContext(
        root=source.root,
        settings_hash=settings_hash,
        metrics=frozenset(metrics),
        source_fps=source_fps,
    )

    def load_grounder():
        from vgem.grounder import Grounder

        return Grounder(backbone, weights, **settings)

    with EvalProgress(len(selection.samples), quiet, accuracy=temporal is None) as progress:
        options: dict[str, Any] = {
            "run_dir": directory,
            "load_grounder": load_grounder,
            "resume": resume,
            "retry_errors": retry_errors,
            "on_resume": progress.resume,
            "on_record": progress.record,
        }
        if temporal is None:
            outcome = evaluate(selection, context=context, **options)
        else:
            from vgem.eval.spatiotemporal import VideoRunContext, evaluate_videos

            video_context = VideoRunContext(
                root=source.root,
                settings_hash=settings_hash,
                temporal=temporal,
                task=task,
                source_fps=source_fps,
            )
            outcome = evaluate_videos(selection, context=video_context, **options)
    if temporal is None:
        document = build_results(
            description,
            selection,
            outcome.records,
            finished_at=_now(),
            resumed=outcome.resumed,
            evaluated=outcome.written,
        )
    else:
        from vgem.eval.spatiotemporal import build_video_results

        document = build_video_results(
            description,
            selection,
            outcome.records,
            task=task,
            temporal=temporal,
            finished_at=_now(),
            resumed=outcome.resumed,
            evaluated=outcome.written,
        )
    results_path = write_results(directory / RESULTS_FILE, document)
    if outcome.interrupted:
        stderr.print(
            f"partial results in {results_path}; run the same command to finish", markup=False
        )
        raise KeyboardInterrupt
    for table in render_tables([document], compare_paper=compare_paper):
        Console(soft_wrap=False).print(table)
    if not quiet:
        stderr.print(f"results: {results_path}", soft_wrap=True, markup=False)


def _default_run_dir(label: str, backbone: str, settings_hash: str) -> Path:
    return Path("runs") / f"{_slug(label)}-{_slug(backbone)}-{settings_hash[:8]}"


def _slug(text: str) -> str:
    """A name safe in a path on any system ("openclip:ViT-B-16@x" → "openclip_ViT-B-16_x")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "run"


def _show_runs(run_dirs: list[Path], compare_paper: bool) -> None:
    from rich.console import Console

    from vgem.eval.report import load_results, render_tables

    documents = [load_results(run_dir) for run_dir in run_dirs]
    for table in render_tables(documents, compare_paper=compare_paper):
        Console(soft_wrap=False).print(table)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
