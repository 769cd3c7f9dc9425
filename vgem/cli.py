"""The ``vgem`` command: a thin shell over the library.

It parses options, calls the API and prints. Errors a user can cause
(:class:`vgem.errors.VgemError`) end with one line on stderr and exit code 2;
``--verbose`` shows the traceback. Heavy imports happen inside the commands so
``vgem --help`` is instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vgem import __version__
from vgem.cli_options import (
    RUN_PANEL,
    WHEN_PANEL,
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
from vgem.cli_support import QUIET, VERBOSE, progress_bar, user_errors
from vgem.commands_fetch import fetch_command
from vgem.eval.command import eval_command

app = typer.Typer(
    name="vgem",
    help="Find where (and when) an action described in words happens in a video, "
    "with no training (VideoGEM).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)

TIMES_PANEL = "Which times"
OUTPUT_PANEL = "Outputs"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vgem {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """vgem: training-free action grounding in video."""


@app.command()
def ground(
    video: Annotated[Path, typer.Argument(help="A video file, or a folder of image frames.")],
    queries: Annotated[
        list[str], typer.Argument(help="One or more actions to find, e.g. 'cut onion'.")
    ],
    backbone: BackboneOption = "viclip-b16",
    weights: WeightsOption = None,
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
        Path | None,
        typer.Option(
            "--json", help="Write the JSON here instead of stdout.", rich_help_panel=OUTPUT_PANEL
        ),
    ] = None,
    heatmaps: Annotated[
        Path | None,
        typer.Option(
            help="Write the raw similarity maps to this .npz.", rich_help_panel=OUTPUT_PANEL
        ),
    ] = None,
    video_out: Annotated[
        Path | None,
        typer.Option(help="Write an annotated H.264 video here.", rich_help_panel=OUTPUT_PANEL),
    ] = None,
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
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where `vgem fetch --cache-dir` put the NLP models (default: $VGEM_CACHE).",
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
    temporal: Annotated[
        bool,
        typer.Option(
            "--temporal",
            help="Also say when each query happens: a label per time, and segments.",
            rich_help_panel=WHEN_PANEL,
        ),
    ] = False,
    threshold: ThresholdOption = "0.5",
    min_segment: MinSegmentOption = 2.0,
    max_gap: MaxGapOption = 1.0,
    temporal_scorer: TemporalScorerOption = "class-token",
    quiet: Annotated[bool, QUIET] = False,
    verbose: Annotated[bool, VERBOSE] = False,
) -> None:
    """Find where each QUERY happens in VIDEO; print JSON (or write --json)."""
    with user_errors(verbose):
        from vgem.errors import SettingsError
        from vgem.grounder import Grounder
        from vgem.results import to_json_dict, write_json, write_npz

        if sum([fps is not None, bool(at), every_frame]) > 1:
            raise SettingsError("Choose one of --fps, --at and --every-frame.")
        settings = method_settings(locals())
        from vgem.extractors.base import normalize_sentence
        from vgem.video import grounded_times, probe_video

        # Bad queries, videos and times fail here, before any weights are loaded.
        for query in queries:
            normalize_sentence(query)
        info = probe_video(video, source_fps=source_fps)
        times = grounded_times(info, fps=fps, at=at or None, every_frame=every_frame)
        if cache_dir is not None:
            import os

            os.environ["VGEM_CACHE"] = str(cache_dir)
        temporal_settings = None
        if temporal:
            from vgem.temporal import TemporalSettings

            temporal_settings = TemporalSettings(
                scorer=temporal_scorer,
                threshold=threshold,
                min_segment=min_segment,
                max_gap=max_gap,
            )
        grounder = Grounder(backbone, weights, **settings)
        with progress_bar("grounding", quiet) as report:
            result = grounder.ground(
                info, queries, at=times, progress=report, temporal=temporal_settings
            )
        if heatmaps is not None:
            write_npz(result, heatmaps)
        if video_out is not None:
            from vgem.annotate import write_annotated_video

            with progress_bar("writing video", quiet) as report:
                write_annotated_video(result, video_out, progress=report)
        if json_path is not None:
            write_json(result, json_path)
        else:
            import json

            typer.echo(json.dumps(to_json_dict(result), indent=2))


app.command("eval")(eval_command)


@app.command()
def plugins(verbose: Annotated[bool, VERBOSE] = False) -> None:
    """List installed plugins: backbones, extractors, aggregators, datasets."""
    with user_errors(verbose):
        from rich.table import Table

        from vgem.plugins import GROUPS, list_plugins

        table = Table(title="vgem plugins")
        for column in ("group", "name", "package", "status"):
            table.add_column(column)
        rows = list_plugins()
        for row in rows:
            status = f"[red]failed: {row.error}[/]" if row.error else "[green]ok[/]"
            table.add_row(GROUPS[row.group], row.name, f"{row.package} {row.version}", status)
        Console(soft_wrap=False).print(table)


app.command("fetch")(fetch_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
