"""``vgem ground``: where (and with --temporal, when) each query happens in one video."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vgem.cli.console import user_errors
from vgem.cli.options import (
    QUIET,
    VERBOSE,
    WHEN_PANEL,
    MethodOptions,
    TemporalOptions,
    shared_options,
)
from vgem.cli.progress import progress_bar

if TYPE_CHECKING:
    from vgem.results import GroundingResult, StagedOutput

TIMES_PANEL = "Which times"
OUTPUT_PANEL = "Outputs"


@shared_options
def ground(
    video: Annotated[Path, typer.Argument(help="A video file, or a folder of image frames.")],
    queries: Annotated[
        list[str], typer.Argument(help="One or more actions to find, e.g. 'cut onion'.")
    ],
    fps: Annotated[
        float | None,
        typer.Option(
            help="Ground this many times per second (default 1).", rich_help_panel=TIMES_PANEL
        ),
    ] = None,
    at: Annotated[
        list[float] | None,
        typer.Option(
            help="Ground at this time in seconds (repeatable).", rich_help_panel=TIMES_PANEL
        ),
    ] = None,
    every_frame: Annotated[
        bool, typer.Option(help="Ground every frame.", rich_help_panel=TIMES_PANEL)
    ] = False,
    source_fps: Annotated[
        float, typer.Option(help="Frame rate of a frame folder.", rich_help_panel=TIMES_PANEL)
    ] = 1.0,
    json_path: Annotated[
        str | None,
        typer.Option(
            "--json",
            help="Write the JSON here instead of stdout ('-': stdout).",
            rich_help_panel=OUTPUT_PANEL,
        ),
    ] = None,
    heatmaps: Annotated[
        str | None,
        typer.Option(
            help="Write the raw similarity maps to this .npz.", rich_help_panel=OUTPUT_PANEL
        ),
    ] = None,
    video_out: Annotated[
        str | None,
        typer.Option(help="Write an annotated H.264 video here.", rich_help_panel=OUTPUT_PANEL),
    ] = None,
    *,
    method: MethodOptions,
    temporal: Annotated[
        bool,
        typer.Option(
            "--temporal",
            help="Also say when each query happens: a label per time, and segments.",
            rich_help_panel=WHEN_PANEL,
        ),
    ] = False,
    when: TemporalOptions,
    quiet: Annotated[bool, QUIET] = False,
    verbose: Annotated[bool, VERBOSE] = False,
) -> None:
    """Find where each QUERY happens in VIDEO; print JSON (or write --json)."""
    with user_errors(verbose):
        from vgem.errors import SettingsError

        if sum([fps is not None, bool(at), every_frame]) > 1:
            raise SettingsError("Choose one of --fps, --at and --every-frame.")
        _check_numbers(fps, at or [], source_fps)
        settings = method.settings()
        temporal_settings = when.settings() if temporal else None
        from vgem.extractors.base import normalize_sentence
        from vgem.results import STDOUT, OutputSet
        from vgem.video import grounded_times, probe_video

        # Bad queries, outputs, videos and times fail here, before any weights are loaded;
        # the outputs appear together at the end, or none of them.
        for query in queries:
            normalize_sentence(query)
        with OutputSet(inputs=[video, method.weights]) as outputs:
            json_output = outputs.add(json_path or STDOUT, setting="json_path")
            maps_output = outputs.add(heatmaps, setting="heatmaps") if heatmaps else None
            video_output = outputs.add(video_out, setting="video_out") if video_out else None
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
                    info, queries, at=times, progress=report, temporal=temporal_settings
                )
            _write_outputs(result, json_output, maps_output, video_output, quiet)


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
    maps_output: StagedOutput | None,
    video_output: StagedOutput | None,
    quiet: bool,
) -> None:
    """Write every output into its staged temporary; the OutputSet moves them into place."""
    from vgem.results import write_json, write_npz

    if maps_output is not None:
        write_npz(result, maps_output)
    if video_output is not None:
        from vgem.annotate import write_annotated_video

        with progress_bar("writing video", quiet) as report:
            write_annotated_video(result, video_output, progress=report)
    write_json(result, json_output)
