"""Options shared by the commands that run the method (``ground``, ``eval``).

One definition per option, so the ablation flags of ``vgem eval`` are
exactly those of ``vgem ground``, help texts included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

GEM_PANEL = "VideoGEM method"
RUN_PANEL = "Runtime"

BackboneOption = Annotated[
    str,
    typer.Option(
        "--backbone",
        "-b",
        help="Backbone plugin: viclip-b16, viclip-l14, clip-b16, openclip-b16, openclip:ARCH@TAG…",
    ),
]

WeightsOption = Annotated[
    str | None,
    typer.Option(help="Local checkpoint for the backbone instead of the Hugging Face cache."),
]

WeightingOption = Annotated[
    str,
    typer.Option(
        help="Layer weighting: none, static, dynamic, combined.", rich_help_panel=GEM_PANEL
    ),
]

DepthOption = Annotated[
    int, typer.Option(help="Self-self attention layers K.", rich_help_panel=GEM_PANEL)
]

IterationsOption = Annotated[
    int, typer.Option(help="Self-self attention iterations J.", rich_help_panel=GEM_PANEL)
]

TemperatureOption = Annotated[
    float | None,
    typer.Option(
        help="Fixed inverse temperature (default: adaptive, per clip).",
        rich_help_panel=GEM_PANEL,
    ),
]

StaticWeightsOption = Annotated[
    str | None,
    typer.Option(
        help="Static layer weights, first to last (default 0.3,0.4,0.5,0.6,0.7,0.9,0.9,0.9).",
        rich_help_panel=GEM_PANEL,
    ),
]

DynamicLayersOption = Annotated[
    int, typer.Option(help="Last blocks that get dynamic weights D.", rich_help_panel=GEM_PANEL)
]

DynamicTemperatureOption = Annotated[
    float,
    typer.Option(help="Softmax temperature of dynamic weights.", rich_help_panel=GEM_PANEL),
]

VideoAttentionOption = Annotated[
    str,
    typer.Option(
        help="Video self-self attention: auto, joint or released "
        "(auto: released for video backbones, joint for image ones).",
        rich_help_panel=GEM_PANEL,
    ),
]

PromptsOption = Annotated[
    str,
    typer.Option(help="Prompts: decomposed, action, verb, object.", rich_help_panel=GEM_PANEL),
]

ExtractorOption = Annotated[
    str,
    typer.Option(
        help="Verb/object extractor plugin: auto, label, stanza.", rich_help_panel=GEM_PANEL
    ),
]

AggregatorOption = Annotated[
    str,
    typer.Option(
        help="Aggregator plugin: position-average, heatmap-mean, heatmap-product.",
        rich_help_panel=GEM_PANEL,
    ),
]

ClipStepOption = Annotated[
    float,
    typer.Option(help="Seconds between clip frames (video backbones).", rich_help_panel=GEM_PANEL),
]

ImageModeOption = Annotated[
    bool,
    typer.Option(help="Repeat the target frame instead of a clip.", rich_help_panel=GEM_PANEL),
]

BatchSizeOption = Annotated[
    int, typer.Option(help="Clips per forward pass.", rich_help_panel=RUN_PANEL)
]

DeviceOption = Annotated[str, typer.Option(help="auto, cpu or cuda.", rich_help_panel=RUN_PANEL)]

PrecisionOption = Annotated[
    str,
    typer.Option(
        help="fp32 (exact, the default), bf16 (2-4x faster on AMX CPUs and GPUs; "
        "recommended for everyday use) or fp16 (CUDA only).",
        rich_help_panel=RUN_PANEL,
    ),
]


# When: temporal localization in untrimmed videos (``ground --temporal``, ``eval --task``).
WHEN_PANEL = "When (untrimmed videos)"

ThresholdOption = Annotated[
    str,
    typer.Option(
        help="Background threshold on per-query normalized scores, in [0, 1], or 'auto' "
        "(Otsu's cut of this video's scores).",
        rich_help_panel=WHEN_PANEL,
    ),
]

MinSegmentOption = Annotated[
    float,
    typer.Option(help="Drop segments shorter than this (s).", rich_help_panel=WHEN_PANEL),
]

MaxGapOption = Annotated[
    float,
    typer.Option(
        help="Bridge background gaps up to this long inside a segment (s).",
        rich_help_panel=WHEN_PANEL,
    ),
]

TemporalScorerOption = Annotated[
    str,
    typer.Option(
        help="Temporal scorer plugin: class-token, start-end.", rich_help_panel=WHEN_PANEL
    ),
]


def parse_static_weights(text: str | None) -> tuple[float, ...] | None:
    """``0.3,0.4,…`` (commas or spaces) to floats."""
    from vgem.errors import SettingsError

    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.replace(",", " ").split())
    except ValueError:
        raise SettingsError(
            f"--static-weights must be numbers separated by commas, not {text!r}."
        ) from None


METHOD_OPTIONS = (
    "weighting",
    "depth",
    "iterations",
    "temperature",
    "static_weights",
    "dynamic_layers",
    "dynamic_temperature",
    "video_attention",
    "prompts",
    "extractor",
    "aggregator",
    "clip_step",
    "image_mode",
    "batch_size",
    "device",
    "precision",
)


def method_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """Grounder settings picked from a command's parsed options (its ``locals()``).

    Commands declare the method options with the aliases above under these
    names; picking them by name keeps the list in one place.
    """
    settings = {name: options[name] for name in METHOD_OPTIONS}
    settings["static_weights"] = parse_static_weights(settings["static_weights"])
    return settings
