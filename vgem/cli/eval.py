"""``vgem eval``: a benchmark (or any manifest) in, a table and results.json out.

The command only translates its options into one :func:`vgem.eval.run` call
and prints what comes back; everything else is the library's (vgem.eval).
Its method options are the very declarations ``vgem ground`` uses
(vgem.cli.options), so every ablation of the paper is one ``vgem eval`` with
the flag that ``vgem ground`` would take.

``--task`` picks what is scored: ``spatial`` (one frame per sample, the
paper's protocol) or, on whole untrimmed videos, ``spatiotemporal`` and
``temporal`` (vgem.eval.tasks), which take the ``--threshold``,
``--min-segment``, ``--max-gap`` and ``--temporal-scorer`` of ``vgem ground
--temporal``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import vgem.eval
from vgem.cli.console import (
    one_line,
    print_error,
    print_table,
    stderr,
    user_errors,
    warn_about_settings,
)
from vgem.cli.options import (
    QUIET,
    VERBOSE,
    ExecutorOptions,
    MethodOptions,
    TemporalOptions,
    shared_options,
)
from vgem.cli.progress import EvalProgress
from vgem.eval.engine import select
from vgem.eval.report import render_tables

if TYPE_CHECKING:
    from vgem.eval.samples import ManifestProblem
    from vgem.eval.sources import SampleSource
    from vgem.eval.tasks import Task

DATA_PANEL = "What to evaluate"
RUN_DIR_PANEL = "Run directory"
REPORT_PANEL = "Report"
DEFAULT_METRICS = "pointing,map"
TASKS = ("spatial", "spatiotemporal", "temporal")
PROBLEMS_SHOWN = 20
RETRY_HINT = "run again with --retry-errors"


@shared_options
def eval_command(
    task: Annotated[
        str,
        typer.Option(
            metavar="TASK",
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
            metavar="NAME",
            help="Dataset plugin to read: gyt, yc, daly, vhico (see `vgem plugins`).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="A sample manifest (JSON Lines, see the README) instead of --dataset.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
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
        float,
        typer.Option(
            metavar="FPS", help="Frame rate of frame folders.", rich_help_panel=DATA_PANEL
        ),
    ] = 1.0,
    export_manifest: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Write the samples as a manifest to this file and stop (loads no model).",
            rich_help_panel=DATA_PANEL,
        ),
    ] = None,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Where predictions and results go "
            "(default: runs/<dataset>-<backbone>-<settings hash>).",
            rich_help_panel=RUN_DIR_PANEL,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            metavar="",
            help="Skip samples the run directory already holds for these settings; "
            "--no-resume starts over (the old predictions are kept aside).",
            rich_help_panel=RUN_DIR_PANEL,
        ),
    ] = True,
    retry_errors: Annotated[
        bool,
        typer.Option(
            "--retry-errors",
            metavar="",
            help="Ground again the samples that failed before (e.g. once missing videos "
            "are downloaded).",
            rich_help_panel=RUN_DIR_PANEL,
        ),
    ] = False,
    metrics: Annotated[
        str,
        typer.Option(
            metavar="LIST",
            help="Metrics, comma-separated: pointing (pointing game), map (the VideoGEM "
            "authors' spatial mAP), www (the GroundingYouTube authors' own spatial measure).",
            rich_help_panel=REPORT_PANEL,
        ),
    ] = DEFAULT_METRICS,
    mask_threshold: Annotated[
        float | None,
        typer.Option(
            help="Where spatial mAP cuts the normalized heatmap: 0.5 (default, the authors' "
            "spatial_eval) or 0.4 (their released entry point).",
            rich_help_panel=REPORT_PANEL,
        ),
    ] = None,
    describe: Annotated[
        bool,
        typer.Option(
            "--describe",
            metavar="",
            help="Say what --dataset needs (files, where they are published, where they go "
            "under --root, expected counts) and stop.",
            rich_help_panel=DATA_PANEL,
        ),
    ] = False,
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
            metavar="DIR",
            help="Show finished runs (a run directory, repeatable) side by side with their "
            "average, instead of running.",
            rich_help_panel=REPORT_PANEL,
        ),
    ] = None,
    *,
    method: MethodOptions,
    when: TemporalOptions,
    scale: ExecutorOptions,
    quiet: Annotated[bool, QUIET] = False,
    verbose: Annotated[bool, VERBOSE] = False,
) -> None:
    """Evaluate grounding on a benchmark or manifest: pointing game and spatial mAP,
    or (--task) when and where steps happen in whole videos."""
    with user_errors(verbose):
        from vgem.errors import DatasetError, SettingsError
        from vgem.staging import OutputSet, check_output

        compare_paper = _compare_choice(compare)
        if describe:
            _describe(dataset)
            return
        if show:
            if dataset is not None or manifest is not None or export_manifest is not None:
                raise SettingsError(
                    "--show prints finished runs; it runs nothing, so drop "
                    "--dataset, --manifest and --export-manifest."
                )
            _print_tables(_shown_tables(show, compare_paper))
            _write_reports(show, quiet)
            return
        if not (math.isfinite(source_fps) and source_fps > 0):
            raise SettingsError(f"--source-fps must be a positive number, not {source_fps}.")
        chosen_task = _task(task, metrics, when, mask_threshold)
        if chosen_task.whole_video and export_manifest is not None:
            raise SettingsError(
                f"`task` {chosen_task.name} grounds whole videos; a manifest holds single frames.",
                settings=("task",),
            )
        # Bad options fail before the (possibly long) reading of annotations.
        settings = method.settings()
        chosen_executor = None
        if export_manifest is None:
            chosen_executor = scale.make()
            warn_about_settings(settings, on_this_machine=scale.executor == "local")
        if export_manifest is not None:  # a bad output fails before the annotations are read
            check_output(export_manifest, setting="export_manifest", inputs=[manifest])
        source = _open(dataset, manifest, root, whole_videos=chosen_task.whole_video)
        selection = select(source, chosen_task, limit=limit, shuffle_seed=shuffle_seed)
        _warn_about(selection.problems)
        if not quiet and selection.data is not None:
            for line in selection.data.lines():
                stderr.print(f"data: {one_line(line)}", soft_wrap=True, markup=False)
        if not selection.samples:
            read = f"The manifest {manifest}" if manifest is not None else f"--dataset {dataset}"
            unusable = (
                f" ({len(selection.problems)} unusable, see above)" if selection.problems else ""
            )
            raise DatasetError(f"{read} holds no samples to evaluate{unusable}.")
        if export_manifest is not None:
            with OutputSet(inputs=[manifest]) as outputs:
                staged = outputs.add(export_manifest, setting="export_manifest")
                written = vgem.eval.export_manifest(selection.samples, staged.temporary)
            if not quiet:
                stderr.print(
                    f"wrote {written} sample(s) to {export_manifest}", soft_wrap=True, markup=False
                )
            return
        with EvalProgress(quiet=quiet, accuracy=not chosen_task.whole_video) as progress:
            result = vgem.eval.run(
                source,
                task=chosen_task,
                backbone=method.backbone,
                weights=method.weights,
                settings=settings,
                run_dir=run_dir,
                resume=resume,
                retry_errors=retry_errors,
                limit=limit,
                shuffle_seed=shuffle_seed,
                source_fps=source_fps,
                nlp_dir=method.cache_dir,
                executor=chosen_executor,
                progress=progress,
            )
        if result.interrupted:
            stderr.print(
                f"partial results in {result.results_path}; run the same command to finish",
                markup=False,
            )
            raise KeyboardInterrupt
        _print_tables(
            render_tables([result.document], compare_paper=compare_paper, retry_hint=RETRY_HINT)
        )
        _report_failures(result.document)
        damaged = result.document.get("damaged_lines") or 0
        if damaged:
            print_error(
                f"{damaged} damaged line(s) in {result.run_dir / 'predictions.jsonl'} are "
                "skipped (a sample without a usable line is grounded again)",
                label="warning:",
            )
        if not quiet:
            stderr.print(f"results: {result.results_path}", soft_wrap=True, markup=False)
            report = result.run_dir / "report.html"
            stderr.print(f"report: {report}", soft_wrap=True, markup=False)


# --------------------------------------------------------------------------- options


def _task(
    task: str, metrics: str, when: TemporalOptions, mask_threshold: float | None = None
) -> Task:
    """The task object; the spatial metrics, or the temporal settings of a whole-video task."""
    from vgem.eval.tasks import VIDEO_TASK_METRICS, make_task

    if task.strip().lower() not in VIDEO_TASK_METRICS:
        return make_task(task, metrics=_metric_names(metrics), mask_threshold=mask_threshold)
    chosen_metrics = None if metrics == DEFAULT_METRICS else _metric_names(metrics)
    return make_task(
        task, metrics=chosen_metrics, temporal=when.settings(), mask_threshold=mask_threshold
    )


def _describe(dataset: str | None) -> None:
    """The guide of one dataset plugin (or of every one) on stdout."""
    from vgem import plugins
    from vgem.eval.sources import describe_dataset

    names = [dataset] if dataset is not None else sorted(plugins.names("vgem.datasets"))
    blocks = ["\n".join(describe_dataset(name)) for name in names]
    typer.echo("\n\n".join(blocks))


def _metric_names(text: str) -> list[str]:
    """``pointing,map`` → ["pointing", "map"]; the library checks the names."""
    return [part for part in text.replace(" ", ",").split(",") if part.strip()]


def _compare_choice(compare: str | None) -> bool:
    from vgem.errors import SettingsError

    if compare is None:
        return False
    if compare.strip().lower() != "paper":
        raise SettingsError(f"--compare takes 'paper', not {compare!r}.")
    return True


# --------------------------------------------------------------------------- samples


def _open(
    dataset: str | None, manifest: Path | None, root: Path | None, *, whole_videos: bool
) -> SampleSource:
    from vgem.errors import SettingsError

    if manifest is not None and dataset is None:
        return vgem.eval.open_manifest(manifest, root)
    if dataset is None or manifest is not None:
        raise SettingsError("Give one of --dataset NAME and --manifest FILE.")
    if root is None:
        raise SettingsError(f"--dataset {dataset} needs --root DIR, the folder it was unpacked in.")
    return vgem.eval.open_dataset(dataset, root, whole_videos=whole_videos)


#: Failed samples named on the terminal after a run (the rest: "and N more").
FAILURES_SHOWN = 5


def _report_failures(document: dict[str, Any]) -> None:
    """The first few failed samples with their reasons, on stderr (all are in results.json
    and report.html)."""
    errors = list(document.get("errors") or [])
    for error in errors[:FAILURES_SHOWN]:
        where = f" ({error.get('video')})" if error.get("video") else ""
        print_error(f"{error.get('id')}{where}: {error.get('error')}", label="failed:")
    if len(errors) > FAILURES_SHOWN:
        print_error(
            f"… and {len(errors) - FAILURES_SHOWN} more (results.json lists them all)",
            label="failed:",
        )


def _warn_about(problems: list[ManifestProblem]) -> None:
    """Each unusable sample on one line, with its place; a long list is cut short."""
    from rich.markup import escape

    for problem in problems[:PROBLEMS_SHOWN]:
        stderr.print(f"[yellow]warning:[/] {escape(one_line(str(problem)))}", soft_wrap=True)
    if len(problems) > PROBLEMS_SHOWN:
        more = len(problems) - PROBLEMS_SHOWN
        stderr.print(f"[yellow]warning:[/] … and {more} more problem(s)", soft_wrap=True)


# --------------------------------------------------------------------------- printing


def _shown_tables(paths: list[Path], compare_paper: bool) -> list[Any]:
    """The tables of finished runs; a results file that cannot be shown is one clear error."""
    from vgem.errors import DatasetError
    from vgem.eval.report import load_results

    documents = []
    for path in paths:
        document = load_results(path)
        try:
            render_tables([document], compare_paper=compare_paper, retry_hint=RETRY_HINT)
        except (LookupError, TypeError, ValueError, AttributeError, ArithmeticError) as error:
            raise DatasetError(
                f"{path}: the results file is damaged ({type(error).__name__}: {error}); "
                "run the evaluation again to rewrite it."
            ) from error
        documents.append(document)
    try:
        return render_tables(documents, compare_paper=compare_paper, retry_hint=RETRY_HINT)
    except (LookupError, TypeError, ValueError, AttributeError, ArithmeticError) as error:
        raise DatasetError(
            f"These runs cannot be shown side by side ({type(error).__name__}: {error})."
        ) from error


def _write_reports(paths: list[Path], quiet: bool) -> None:
    """report.html in each shown run directory (vgem.eval.html_report), and a warning
    for a predictions file with lines that cannot be used."""
    from vgem.eval.engine import damaged_lines
    from vgem.eval.html_report import write_report
    from vgem.eval.report import load_results

    for path in paths:
        run_dir = path if path.is_dir() else path.parent
        damaged = damaged_lines(run_dir, load_results(path))
        if damaged:
            print_error(
                f"{run_dir}: {damaged} damaged line(s) in predictions.jsonl are skipped (the "
                "report leaves them out; resuming the run grounds again every sample left "
                "without a usable line)",
                label="warning:",
            )
        written = write_report(run_dir)
        if not quiet:
            stderr.print(f"report: {written}", soft_wrap=True, markup=False)


def _print_tables(tables: list[Any]) -> None:
    """Each table on stdout (vgem.cli.console.print_table: headers fold on a terminal,
    never end in "…"; full width into a file or a CI log)."""
    for table in tables:
        print_table(table)
