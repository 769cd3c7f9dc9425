"""``vgem ground``: where (and with --temporal, when) each query happens in a video.

One video (``vgem ground VIDEO QUERY...``) prints its JSON or writes the
outputs named by --json, --heatmaps and --video-out. With ``--out-dir DIR``,
VIDEO may also name many videos: a folder of videos, a quoted glob or a list
file (one path a line); each gets ``DIR/NAME.json`` (and, with --save-heatmaps
and --save-video, ``NAME.npz`` and ``NAME.mp4``), on this machine or on Ray
workers (the --executor options of ``vgem eval``). The batch is the library's
(:func:`vgem.batch.ground_videos`); this command converts options and prints.
Exit codes: 0 every video grounded (or done before), 3 some videos failed
(the others' outputs are written), 2 a bad option or input, 130 Ctrl-C.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vgem.cli.console import print_error, stderr, user_errors, warn_about_settings
from vgem.cli.options import (
    QUIET,
    VERBOSE,
    WHEN_PANEL,
    ExecutorOptions,
    MethodOptions,
    TemporalOptions,
    shared_options,
)
from vgem.cli.progress import progress_bar

if TYPE_CHECKING:
    from vgem.batch import BatchSummary, VideoOutcome
    from vgem.results import GroundingResult
    from vgem.settings import Settings
    from vgem.staging import StagedOutput

TIMES_PANEL = "Which times"
OUTPUT_PANEL = "Outputs"
BATCH_PANEL = "Many videos (--out-dir)"
REGION_PANEL = "Boxes and tracks"
#: The exit code of a batch in which some videos failed (the others are written).
SOME_FAILED = 3


@shared_options
def ground(
    video: Annotated[
        Path,
        typer.Argument(
            metavar="VIDEO",
            help="A video file, or a folder of image frames. With --out-dir, also many "
            "videos: a folder of videos, a quoted glob ('videos/*.mp4') or a text file "
            "with one path a line.",
        ),
    ],
    queries: Annotated[
        list[str],
        typer.Argument(metavar="QUERY", help="One or more actions to find, e.g. 'cut onion'."),
    ],
    fps: Annotated[
        float | None,
        typer.Option(
            metavar="RATE",
            help="Ground this many times per second (default 1).",
            rich_help_panel=TIMES_PANEL,
        ),
    ] = None,
    at: Annotated[
        list[float] | None,
        typer.Option(
            metavar="SECONDS",
            help="Ground at this time in seconds (repeatable).",
            rich_help_panel=TIMES_PANEL,
        ),
    ] = None,
    every_frame: Annotated[
        bool,
        typer.Option(
            "--every-frame", help="Ground every frame.", rich_help_panel=TIMES_PANEL, metavar=""
        ),
    ] = False,
    source_fps: Annotated[
        float,
        typer.Option(
            metavar="FPS", help="Frame rate of a frame folder.", rich_help_panel=TIMES_PANEL
        ),
    ] = 1.0,
    json_path: Annotated[
        str | None,
        typer.Option(
            "--json",
            metavar="FILE",
            help="Write the JSON here instead of stdout ('-': stdout).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    heatmaps: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="Write the raw similarity maps to this .npz.",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    video_out: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="Write an annotated video here: .mp4 (H.264), .webm (VP9), .gif, .mkv or .mov, "
            "by its extension.",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    csv: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="Write a table here: one row per query and grounded time (point, box, "
            "scores, and the label where --temporal ran).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    coco: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="Write COCO-style JSON here: grounded frames as images, queries as "
            "categories, boxes as annotations with scores.",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    masks: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="Write each query's region at each time here (.npz, bit-packed masks).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    html: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="Write a page that plays the video with each query's heatmap, box and point, "
            "and a timeline per query (the video is referred to by its relative path).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    box_threshold: Annotated[
        float | None,
        typer.Option(
            metavar="FRACTION",
            help="A box holds the heatmap around the point at or above this fraction of the "
            "heatmap's maximum (default 0.5, the evaluation's mask threshold).",
            rich_help_panel=REGION_PANEL,
        ),
    ] = None,
    smooth: Annotated[
        float | None,
        typer.Option(
            metavar="SECONDS",
            help="Steadier tracks: average each query's maps over the grounded times within "
            "SECONDS (Gaussian) before taking points and boxes (default: off, the paper's).",
            rich_help_panel=REGION_PANEL,
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Ground every video VIDEO names; write DIR/NAME.json for each. A video "
            "whose JSON is complete is skipped, so the same command resumes.",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = None,
    save_heatmaps: Annotated[
        bool,
        typer.Option(
            "--save-heatmaps",
            metavar="",
            help="With --out-dir: also write NAME.npz, the raw similarity maps.",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    save_video: Annotated[
        bool,
        typer.Option(
            "--save-video",
            metavar="",
            help="With --out-dir: also write NAME.mp4, the annotated video.",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    save_csv: Annotated[
        bool,
        typer.Option(
            "--save-csv",
            metavar="",
            help="With --out-dir: also write NAME.csv, the table of --csv.",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    save_coco: Annotated[
        bool,
        typer.Option(
            "--save-coco",
            metavar="",
            help="With --out-dir: also write NAME.coco.json, the COCO-style JSON of --coco.",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    *,
    method: MethodOptions,
    temporal: Annotated[
        bool,
        typer.Option(
            "--temporal",
            metavar="",
            help="Also say when each query happens: a label per time, and segments.",
            rich_help_panel=WHEN_PANEL,
        ),
    ] = False,
    when: TemporalOptions,
    scale: ExecutorOptions,
    quiet: Annotated[bool, QUIET] = False,
    verbose: Annotated[bool, VERBOSE] = False,
) -> None:
    """Find where each QUERY happens in VIDEO; print JSON (or write --json).
    With --out-dir, in many videos: one JSON each."""
    with user_errors(verbose):
        from vgem.errors import SettingsError

        if sum([fps is not None, bool(at), every_frame]) > 1:
            raise SettingsError("Choose one of --fps, --at and --every-frame.")
        _check_numbers(fps, at or [], source_fps)
        _check_queries(queries)
        settings = method.settings()
        temporal_settings = when.settings() if temporal else None
        warn_about_settings(settings, on_this_machine=scale.executor == "local")
        single = {
            "--json": json_path,
            "--heatmaps": heatmaps,
            "--video-out": video_out,
            "--csv": csv,
            "--coco": coco,
            "--masks": masks,
            "--html": html,
        }
        if out_dir is not None:
            named = [flag for flag, value in single.items() if value is not None]
            if named:
                raise SettingsError(
                    f"--out-dir writes NAME.json for each video; {', '.join(named)} name the "
                    "outputs of one video (with --out-dir: --save-heatmaps, --save-video, "
                    "--save-csv, --save-coco)."
                )
            code = _ground_many(
                video,
                queries,
                out_dir,
                method=method,
                settings=settings,
                scale=scale,
                fps=fps,
                at=at or None,
                every_frame=every_frame,
                source_fps=source_fps,
                temporal=temporal_settings,
                save_heatmaps=save_heatmaps,
                save_video=save_video,
                save_csv=save_csv,
                save_coco=save_coco,
                box_threshold=box_threshold,
                smooth=smooth,
                quiet=quiet,
            )
            if code:
                raise typer.Exit(code)
            return
        _refuse_batch_options(
            video,
            scale,
            {
                "save_heatmaps": save_heatmaps,
                "save_video": save_video,
                "save_csv": save_csv,
                "save_coco": save_coco,
            },
        )
        from vgem.extractors.base import normalize_sentence
        from vgem.staging import STDOUT, OutputSet
        from vgem.video import grounded_times, probe_video

        # Bad queries, outputs, videos and times fail here, before any weights are loaded;
        # the outputs appear together at the end, or none of them.
        for query in queries:
            normalize_sentence(query)
        if video_out:
            from vgem.video.encode import video_format

            video_format(video_out, setting="video_out")  # .mp4, .webm, .gif...: or one line
        with OutputSet(inputs=[video, method.weights]) as outputs:
            json_output = outputs.add(json_path or STDOUT, setting="json_path")
            staged = {
                name: outputs.add(path, setting=name)
                for name, path in (
                    ("heatmaps", heatmaps),
                    ("masks", masks),
                    ("csv", csv),
                    ("coco", coco),
                    ("html", html),
                    ("video_out", video_out),
                )
                if path
            }
            info = probe_video(video, source_fps=source_fps)
            times = grounded_times(info, fps=fps, at=at or None, every_frame=every_frame)
            if temporal_settings is not None:
                from vgem import plugins

                plugins.load("vgem.temporal", temporal_settings.scorer)  # unknown: fail now
            from vgem.grounder import Grounder

            grounder = Grounder(
                method.backbone, method.weights, settings=settings, nlp_dir=method.cache_dir
            )
            with progress_bar("grounding", quiet) as report:
                result = grounder.ground(
                    info,
                    queries,
                    at=times,
                    progress=report,
                    temporal=temporal_settings,
                    box_threshold=box_threshold,
                    smooth=smooth,
                    masks=masks is not None,
                )
            _write_outputs(result, json_output, staged, quiet)
        _warn_about_contrast(result)
        if not quiet:
            _say_what_was_written([json_output, *staged.values()])


def _warn_about_contrast(result: GroundingResult) -> None:
    """A query whose timeline has no time that stands out of its noise: said on stderr
    (its warning is in the JSON too)."""
    from vgem.temporal.segments import LOW_CONTRAST

    timeline = result.timeline
    if timeline is None:
        return
    for position, query in enumerate(result.queries):
        contrast = timeline.low_contrast(position)
        if contrast is not None:
            print_error(
                f"{query.query!r}: no time stands out (contrast {contrast:.1f}, below "
                f"{LOW_CONTRAST:g}): its labels and segments may say it happens where it "
                "does not",
                label="warning:",
            )


def _say_what_was_written(staged: list[StagedOutput]) -> None:
    """One stderr line naming the files written (standard output needs no mention)."""
    written = [output.path for output in staged if not output.is_stdout]
    if written:
        stderr.print(f"wrote {', '.join(written)}", soft_wrap=True, markup=False, highlight=False)


def _check_queries(queries: list[str]) -> None:
    """A query that is a video file is an unquoted glob the shell expanded: say so."""
    from vgem.batch import VIDEO_EXTENSIONS
    from vgem.errors import SettingsError

    for query in queries:
        if Path(query).suffix.lower() in VIDEO_EXTENSIONS and Path(query).is_file():
            raise SettingsError(
                f"The query {query!r} is a video file. To ground several videos, give one "
                "VIDEO that names them all with --out-dir DIR: a folder, a quoted glob "
                "('videos/*.mp4', so that the shell does not expand it) or a list file."
            )


def _refuse_batch_options(video: Path, scale: ExecutorOptions, saves: dict[str, bool]) -> None:
    """One video: refuse what only --out-dir takes, and many videos without it."""
    from vgem.batch import holds_many
    from vgem.errors import SettingsError

    if holds_many(video):
        raise SettingsError(
            f"{video} names several videos (a folder of videos, a glob or a list); "
            "give --out-dir DIR to ground them all, one JSON each."
        )
    given = scale.given() + [name for name, on in saves.items() if on]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise SettingsError(f"{flags}: only with --out-dir DIR (grounding many videos).")


def _ground_many(
    source: Path,
    queries: list[str],
    out_dir: Path,
    *,
    method: MethodOptions,
    settings: Settings,
    scale: ExecutorOptions,
    quiet: bool,
    **options: Any,
) -> int:
    """Ground every video ``source`` names into ``out_dir``; print the failures and a
    summary; the exit code (0, or SOME_FAILED)."""
    from vgem.batch import find_videos, ground_videos

    videos = find_videos(source, exclude=[out_dir])  # a bad source fails before Ray starts
    executor = scale.make()
    with progress_bar("grounding videos", quiet) as report:
        summary = ground_videos(
            videos,
            queries,
            out_dir,
            backbone=method.backbone,
            weights=method.weights,
            settings=settings,
            nlp_dir=method.cache_dir,
            executor=executor,
            progress=report,
            on_video=_report_failure,
            **options,
        )
    _print_summary(summary)
    if summary.interrupted:
        raise KeyboardInterrupt
    return SOME_FAILED if summary.failed else 0


def _report_failure(outcome: VideoOutcome) -> None:
    if outcome.status == "failed":
        print_error(f"{outcome.video}: {outcome.error}", label="failed:")


def _print_summary(summary: BatchSummary) -> None:
    """One line on stderr: how many videos succeeded, were skipped and failed."""
    counts = summary.counts()
    parts = [
        f"{counts['succeeded']} grounded",
        f"{counts['skipped']} skipped (done before)",
        f"{counts['failed']} failed",
    ]
    if counts["pending"]:
        parts.append(f"{counts['pending']} not reached (run the same command to finish)")
    stderr.print(
        f"{counts['videos']} video(s): {', '.join(parts)}; outputs in {summary.out_dir}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )


def _check_numbers(fps: float | None, at: list[float], source_fps: float) -> None:
    """The numbers only the command line takes: finite, and in range."""
    import math

    from vgem.errors import SettingsError

    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise SettingsError(f"`fps` must be a positive number, not {fps}.", settings=["fps"])
    for time in at:
        if not (math.isfinite(time) and time >= 0):
            raise SettingsError(
                f"`at` takes times in seconds from 0 on, not {time}.", settings=["at"]
            )
    if not (math.isfinite(source_fps) and source_fps > 0):
        raise SettingsError(
            f"`source_fps` must be a positive number, not {source_fps}.", settings=["source_fps"]
        )


def _write_outputs(
    result: GroundingResult,
    json_output: StagedOutput,
    staged: dict[str, StagedOutput],
    quiet: bool,
) -> None:
    """Write every output into its staged temporary; the OutputSet moves them into place."""
    from vgem.outputs import write_outputs

    video_output = staged.get("video_out")
    with progress_bar("writing video", quiet or video_output is None) as report:
        write_outputs(
            result,
            json_output,
            heatmaps=staged.get("heatmaps"),
            video=video_output,
            video_progress=report,
            csv=staged.get("csv"),
            coco=staged.get("coco"),
            masks=staged.get("masks"),
            html=staged.get("html"),
        )
