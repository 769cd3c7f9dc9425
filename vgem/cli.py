"""The ``vgem`` command: a thin shell over the library.

It parses options, calls the API and prints. Errors a user can cause
(:class:`vgem.errors.VgemError`) end with one line on stderr and exit code 2;
``--verbose`` shows the traceback. Heavy imports happen inside the commands so
``vgem --help`` is instant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vgem import __version__

app = typer.Typer(
    name="vgem",
    help="Find where (and when) an action described in words happens in a video, "
    "with no training (VideoGEM).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)
stderr = Console(stderr=True, highlight=False)

VERBOSE = typer.Option("--verbose", "-v", help="Show tracebacks and more detail on errors.")
QUIET = typer.Option("--quiet", "-q", help="No progress bar.")

GEM_PANEL = "VideoGEM method"
TIMES_PANEL = "Which times"
OUTPUT_PANEL = "Outputs"
RUN_PANEL = "Runtime"


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


@contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Turn errors into one line and an exit code; tracebacks only with --verbose."""
    from vgem.errors import VgemError

    try:
        yield
    except VgemError as error:
        if verbose:
            stderr.print_exception()
        stderr.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt:
        stderr.print("[bold red]interrupted[/]")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as error:
        if verbose:
            stderr.print_exception()
        else:
            stderr.print(
                f"[bold red]internal error:[/] {type(error).__name__}: {error} "
                "(run again with --verbose for the traceback, and please report it)",
                soft_wrap=True,
            )
        raise typer.Exit(1) from None


@contextmanager
def progress_bar(description: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr, or a no-op when quiet or not a terminal."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _parse_weights(text: str | None) -> tuple[float, ...] | None:
    from vgem.errors import SettingsError

    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.replace(",", " ").split())
    except ValueError:
        raise SettingsError(
            f"--static-weights must be numbers separated by commas, not {text!r}."
        ) from None


@app.command()
def ground(
    video: Annotated[Path, typer.Argument(help="A video file, or a folder of image frames.")],
    queries: Annotated[
        list[str], typer.Argument(help="One or more actions to find, e.g. 'cut onion'.")
    ],
    backbone: Annotated[
        str,
        typer.Option(
            "--backbone", "-b", help="Backbone plugin: clip-b16, openclip-b16, openclip:ARCH@TAG…"
        ),
    ] = "clip-b16",
    weights: Annotated[
        str | None,
        typer.Option(help="Local checkpoint for the backbone instead of the Hugging Face cache."),
    ] = None,
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
    weighting: Annotated[
        str,
        typer.Option(
            help="Layer weighting: none, static, dynamic, combined.", rich_help_panel=GEM_PANEL
        ),
    ] = "combined",
    depth: Annotated[
        int, typer.Option(help="Self-self attention layers K.", rich_help_panel=GEM_PANEL)
    ] = 7,
    iterations: Annotated[
        int, typer.Option(help="Self-self attention iterations J.", rich_help_panel=GEM_PANEL)
    ] = 1,
    temperature: Annotated[
        float | None,
        typer.Option(
            help="Fixed inverse temperature (default: adaptive, per clip).",
            rich_help_panel=GEM_PANEL,
        ),
    ] = None,
    static_weights: Annotated[
        str | None,
        typer.Option(
            help="Static layer weights, first to last (default 0.3,0.4,0.5,0.6,0.7,0.9,0.9,0.9).",
            rich_help_panel=GEM_PANEL,
        ),
    ] = None,
    dynamic_layers: Annotated[
        int, typer.Option(help="Last blocks that get dynamic weights D.", rich_help_panel=GEM_PANEL)
    ] = 3,
    dynamic_temperature: Annotated[
        float,
        typer.Option(help="Softmax temperature of dynamic weights.", rich_help_panel=GEM_PANEL),
    ] = 20.0,
    video_attention: Annotated[
        str,
        typer.Option(
            help="Video self-self attention: auto, joint or released "
            "(auto: released for video backbones, joint for image ones).",
            rich_help_panel=GEM_PANEL,
        ),
    ] = "auto",
    prompts: Annotated[
        str,
        typer.Option(help="Prompts: decomposed, action, verb, object.", rich_help_panel=GEM_PANEL),
    ] = "decomposed",
    extractor: Annotated[
        str, typer.Option(
            help="Verb/object extractor plugin: auto, label, stanza.", rich_help_panel=GEM_PANEL
        ),
    ] = "auto",
    aggregator: Annotated[
        str,
        typer.Option(
            help="Aggregator plugin: position-average, heatmap-mean, heatmap-product.",
            rich_help_panel=GEM_PANEL,
        ),
    ] = "position-average",
    clip_step: Annotated[
        float,
        typer.Option(
            help="Seconds between clip frames (video backbones).", rich_help_panel=GEM_PANEL
        ),
    ] = 0.25,
    image_mode: Annotated[
        bool,
        typer.Option(help="Repeat the target frame instead of a clip.", rich_help_panel=GEM_PANEL),
    ] = False,
    batch_size: Annotated[
        int, typer.Option(help="Clips per forward pass.", rich_help_panel=RUN_PANEL)
    ] = 1,
    device: Annotated[
        str, typer.Option(help="auto, cpu or cuda.", rich_help_panel=RUN_PANEL)
    ] = "auto",
    precision: Annotated[
        str, typer.Option(help="fp32, bf16 or fp16 (CUDA only).", rich_help_panel=RUN_PANEL)
    ] = "fp32",
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
        settings: dict[str, Any] = dict(
            depth=depth,
            iterations=iterations,
            temperature=temperature,
            weighting=weighting,
            static_weights=_parse_weights(static_weights),
            dynamic_layers=dynamic_layers,
            dynamic_temperature=dynamic_temperature,
            video_attention=video_attention,
            prompts=prompts,
            extractor=extractor,
            aggregator=aggregator,
            clip_step=clip_step,
            image_mode=image_mode,
            batch_size=batch_size,
            device=device,
            precision=precision,
        )
        from vgem.extractors.base import normalize_sentence
        from vgem.video import grounded_times, probe_video

        # Bad queries, videos and times fail here, before any weights are loaded.
        for query in queries:
            normalize_sentence(query)
        info = probe_video(video, source_fps=source_fps)
        times = grounded_times(info, fps=fps, at=at or None, every_frame=every_frame)
        grounder = Grounder(backbone, weights, **settings)
        with progress_bar("grounding", quiet) as report:
            result = grounder.ground(info, queries, at=times, progress=report)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
