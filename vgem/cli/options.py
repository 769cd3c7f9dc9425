"""The options every command that runs the method shares, declared once.

:class:`MethodOptions` (backbone, weights, the VideoGEM settings, runtime)
and :class:`TemporalOptions` (how scores over time become segments) are
plain dataclasses whose fields *are* the declarations: each field carries its
default and its typer option (flag, help, help panel) in its metadata. The
:func:`shared_options` decorator turns a command's one ``MethodOptions`` /
``TemporalOptions`` parameter into those typer options and, on a call, hands
the command the filled-in dataclass. So ``vgem ground`` and ``vgem eval``
take the very same flags with the same help and defaults, and no list of
option names is kept anywhere else. :class:`ExecutorOptions` (where the work
runs: this process or Ray workers) is shared the same way by ``vgem eval`` and
``vgem ground --out-dir``.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from vgem.execution.executor import Executor
    from vgem.settings import Settings
    from vgem.temporal import TemporalSettings

GEM_PANEL = "VideoGEM method"
RUN_PANEL = "Runtime"
WHEN_PANEL = "When (untrimmed videos)"
SCALE_PANEL = "Scaling out (docs/scaling.md)"

VERBOSE = typer.Option(
    "--verbose", "-v", help="Show tracebacks and more detail on errors.", metavar=""
)
QUIET = typer.Option("--quiet", "-q", help="No progress bar.", metavar="")


def _option(
    default: Any,
    help: str,
    *flags: str,
    panel: str | None = GEM_PANEL,
    metavar: str | None = None,
) -> Any:
    """A dataclass field with its default and the typer option that sets it.

    A boolean that is off by default is a flag (``--image-mode``), shown as one in
    ``--help``: no value and no ``--no-…`` twin. ``metavar``: what ``--help``
    calls the value (default: by its type, TEXT, INTEGER, FLOAT, PATH).
    """
    if isinstance(default, bool) and not flags and default is False:
        return field(default=default, metadata={"flag": True, "help": help, "panel": panel})
    option = typer.Option(*flags, help=help, rich_help_panel=panel, metavar=metavar)
    return field(default=default, metadata={"option": option})


def installed_backbones_help() -> str:
    """The ``--backbone`` help, naming the backbones installed now, plugins included
    (their entry points are read, nothing is imported)."""
    from vgem import plugins

    try:
        names = plugins.names("vgem.backbones")
    except Exception:  # a broken installation must not break --help
        names = []
    listed = ", ".join(names) if names else "viclip-b16"
    return (
        f"Backbone plugin, one of the installed: {listed} (see `vgem plugins`); "
        "NAME:VARIANT for those that take one, e.g. openclip:ARCH@TAG."
    )


@dataclass(frozen=True)
class MethodOptions:
    """Which backbone, how VideoGEM runs on it, and on what: one command line's choice.

    ``None`` means "not given": the setting's default applies (for ``depth``
    and ``dynamic_layers``, the backbone's own).
    """

    backbone: str = _option(
        "viclip-b16",
        installed_backbones_help(),
        "--backbone",
        "-b",
        panel=None,
        metavar="NAME",
    )
    weights: str | None = _option(
        None,
        "Local checkpoint for the backbone instead of the Hugging Face cache.",
        panel=None,
        metavar="PATH",
    )
    weighting: str = _option("combined", "Layer weighting: none, static, dynamic, combined.")
    depth: int | None = _option(
        None, "Self-self attention layers K (default: the backbone's, 7 for built-ins)."
    )
    iterations: int = _option(1, "Self-self attention iterations J.")
    temperature: float | None = _option(
        None, "Fixed inverse temperature (default: adaptive, per clip)."
    )
    static_weights: str | None = _option(
        None,
        "Static layer weights, first to last (default: the backbone's, else "
        "0.3 0.4 0.5 0.6 0.7 0.9 0.9 0.9).",
        metavar="W,W,...",
    )
    dynamic_layers: int | None = _option(
        None, "Last blocks that get dynamic weights D (default: the backbone's, 3 for built-ins)."
    )
    dynamic_temperature: float = _option(20.0, "Softmax temperature of dynamic weights.")
    video_attention: str = _option(
        "auto",
        "Video self-self attention: auto, joint or released "
        "(auto: released for video backbones, joint for image ones).",
    )
    prompts: str = _option("decomposed", "Prompts: decomposed, action, verb, object.")
    extractor: str = _option("auto", "Verb/object extractor plugin: auto, label, stanza.")
    aggregator: str = _option(
        "position-average", "Aggregator plugin: position-average, heatmap-mean, heatmap-product."
    )
    clip_step: float = _option(
        0.25, "Seconds between clip frames (video backbones).", metavar="SECONDS"
    )
    image_mode: bool = _option(False, "Repeat the target frame instead of a clip.")
    batch_size: int = _option(1, "Clips per forward pass.", panel=RUN_PANEL)
    device: str = _option("auto", "auto, cpu or cuda.", panel=RUN_PANEL)
    precision: str = _option(
        "fp32",
        "fp32 (exact, the default), bf16 (1.3-2.7x faster on AMX CPUs, native on GPUs; "
        "recommended for everyday use there), fp16 (CUDA only) or auto (bf16 where "
        "the hardware runs it fast: a CPU with AMX or a GPU with bf16; fp32 elsewhere).",
        panel=RUN_PANEL,
    )
    cache_dir: Path | None = _option(  # noqa: RUF009 (a field with its option)
        None,
        "Where `vgem fetch --cache-dir` put the NLP models (default: $VGEM_CACHE).",
        panel=RUN_PANEL,
        metavar="DIR",
    )

    def setting_values(self) -> dict[str, Any]:
        """The options that are :class:`vgem.settings.Settings` fields (None: not given)."""
        values = {
            option.name: getattr(self, option.name)
            for option in fields(self)
            if option.name not in _NOT_SETTINGS
        }
        values["static_weights"] = parse_static_weights(values["static_weights"])
        return values

    def settings(self) -> Settings:
        """The validated settings (raises :class:`vgem.errors.SettingsError`)."""
        from vgem.settings import Settings

        return Settings.from_options(**self.setting_values())


#: MethodOptions fields that choose what to load and from where, not how to ground.
_NOT_SETTINGS = frozenset({"backbone", "weights", "cache_dir"})


@dataclass(frozen=True)
class TemporalOptions:
    """When a query happens in an untrimmed video: ``ground --temporal``, ``eval --task``."""

    threshold: str = _option(
        "0.5",
        "Background threshold on per-query normalized scores, in [0, 1], or 'auto' "
        "(Otsu's cut of this video's scores).",
        panel=WHEN_PANEL,
        metavar="VALUE",
    )
    min_segment: float = _option(
        2.0, "Drop segments shorter than this (s).", panel=WHEN_PANEL, metavar="SECONDS"
    )
    max_gap: float = _option(
        1.0,
        "Bridge background gaps up to this long inside a segment (s).",
        panel=WHEN_PANEL,
        metavar="SECONDS",
    )
    temporal_scorer: str = _option(
        "class-token", "Temporal scorer plugin: class-token, start-end.", panel=WHEN_PANEL
    )

    def settings(self) -> TemporalSettings:
        """The validated temporal settings (raises :class:`vgem.errors.SettingsError`)."""
        from vgem.temporal import TemporalSettings

        return TemporalSettings(
            scorer=self.temporal_scorer,
            threshold=self.threshold,
            min_segment=self.min_segment,
            max_gap=self.max_gap,
        )


@dataclass(frozen=True)
class ExecutorOptions:
    """Where the grounding runs: this process, or Ray workers (``eval``, ``ground --out-dir``).

    ``None`` means "not given": the executor's default applies.
    """

    executor: str = _option(
        "local",
        "local: ground in this process; ray: on Ray workers, each loading the "
        'model once (pip install "vgem\\[ray]").',
        panel=SCALE_PANEL,
    )
    ray_address: str | None = _option(
        None,
        "The Ray cluster to join: auto (the one this machine belongs to) or "
        "ray://HOST:10001 (default: start a local Ray instance).",
        panel=SCALE_PANEL,
        metavar="ADDRESS",
    )
    workers: int | None = _option(None, "Ray workers (default 1).", panel=SCALE_PANEL)
    cpus_per_worker: float | None = _option(
        None, "CPUs each Ray worker reserves (default 1).", panel=SCALE_PANEL
    )
    gpus_per_worker: float | None = _option(
        None,
        "GPUs each Ray worker reserves; a fraction (0.5) shares a GPU (default 0).",
        panel=SCALE_PANEL,
    )

    def given(self) -> list[str]:
        """The options set to something other than their default (as setting names)."""
        return [
            option.name for option in fields(self) if getattr(self, option.name) != option.default
        ]

    def make(self) -> Executor:
        """The chosen executor (raises :class:`vgem.errors.SettingsError`; Ray is imported
        only for ``ray``)."""
        from vgem.execution.factory import make_executor

        return make_executor(
            self.executor,
            ray_address=self.ray_address,
            workers=self.workers,
            cpus_per_worker=self.cpus_per_worker,
            gpus_per_worker=self.gpus_per_worker,
        )


OPTION_GROUPS: tuple[type, ...] = (MethodOptions, TemporalOptions, ExecutorOptions)

Command = TypeVar("Command", bound=Callable[..., Any])


def option_parameters(group: type) -> list[inspect.Parameter]:
    """The typer parameters that declare ``group``'s fields, in field order."""
    hints = typing.get_type_hints(group)
    parameters = []
    for option in fields(group):
        default = option.default if option.default is not MISSING else inspect.Parameter.empty
        declaration = option.metadata.get("option")
        if option.metadata.get("flag"):  # declared here, so each command gets its own object
            declaration = typer.Option(
                "--" + option.name.replace("_", "-"),
                help=option.metadata["help"],
                rich_help_panel=option.metadata["panel"],
                metavar="",
            )
        parameters.append(
            inspect.Parameter(
                option.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[hints[option.name], declaration],
            )
        )
    return parameters


def shared_options(command: Command) -> Command:
    """Give ``command`` the shared method, temporal and/or executor options.

    The command declares one parameter annotated with each group it takes
    (:class:`MethodOptions`, :class:`TemporalOptions`, :class:`ExecutorOptions`;
    any name, keyword-only, no default: typer never sees it). The decorator replaces each with its
    group's typer options, at that parameter's place (so ``--help`` lists them
    there), and on a call hands the command the group as one filled-in object.
    Apply it before registering the command::

        @shared_options
        def eval_command(
            task: Annotated[str, typer.Option(...)] = "spatial",
            ...,
            *,
            method: MethodOptions,
            temporal: TemporalOptions,
            quiet: Annotated[bool, QUIET] = False,
            verbose: Annotated[bool, VERBOSE] = False,
        ) -> None:
            with user_errors(verbose):
                settings = method.settings()  # vgem.settings.Settings
                temporal_settings = temporal.settings()  # vgem.temporal.TemporalSettings
                ... method.backbone, method.weights, method.cache_dir ...

        app.command("eval")(eval_command)

    typer reads the command's ``inspect.signature``, which the decorator sets
    on the wrapper it returns; the command's own annotations may be strings
    (``from __future__ import annotations``) as long as ``MethodOptions`` /
    ``TemporalOptions`` are imported at run time in its module.
    """
    signature = inspect.signature(command, eval_str=True)
    groups: dict[str, type] = {}
    parameters: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.annotation in OPTION_GROUPS:
            groups[parameter.name] = parameter.annotation
            parameters += option_parameters(parameter.annotation)
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    if not groups:
        raise TypeError(f"{command.__name__} has no shared option group parameter.")
    names = [parameter.name for parameter in parameters]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise TypeError(f"{command.__name__} declares shared options again: {', '.join(clashes)}.")

    @functools.wraps(command)
    def with_options(**values: Any) -> Any:
        for name, group in groups.items():
            picked = {option.name: values.pop(option.name) for option in fields(group)}
            values[name] = group(**picked)
        return command(**values)

    with_options.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_options.__annotations__ = {
        parameter.name: parameter.annotation
        for parameter in parameters
        if parameter.annotation is not inspect.Parameter.empty
    }
    if signature.return_annotation is not inspect.Signature.empty:
        with_options.__annotations__["return"] = signature.return_annotation
    return typing.cast(Command, with_options)


def parse_static_weights(text: str | None) -> tuple[float, ...] | None:
    """``0.3,0.4,…`` (commas or spaces) to floats."""
    from vgem.errors import SettingsError

    if text is None:
        return None
    try:
        return tuple(float(part) for part in text.replace(",", " ").split())
    except ValueError:
        raise SettingsError(
            f"`static_weights` must be numbers separated by commas, not {text!r}.",
            settings=["static_weights"],
        ) from None
