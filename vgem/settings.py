"""Every setting of a grounding run, in one validated, serializable place.

The defaults are the authors' (docs/method.md); the JSON output records the
whole object so any result can be reproduced. Validation happens here and
nowhere else: the context-free checks when a :class:`Settings` is made, the
checks that need the backbone (how many blocks it has, whether it sees
video) in :meth:`Settings.for_adapter`. Errors name the setting in
backquotes (`` `depth` ``) and list it in ``error.settings``; front ends
translate the names into their own words (the CLI into flags).

A few settings have no fixed default: ``None`` means "the backbone's". A
backbone plugin may declare its own (``BackboneSpec.defaults``), so a
4-block model grounds without the user knowing that the paper's depth of 7
does not fit it; otherwise the method's constants apply.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from vgem.backbones.base import BACKBONE_SETTINGS
from vgem.errors import SettingsError
from vgem.prompts import PROMPT_MODES, Templates

if TYPE_CHECKING:
    from vgem.backbones.base import BackboneAdapter

WEIGHTINGS: tuple[str, ...] = ("none", "static", "dynamic", "combined")
VIDEO_ATTENTIONS = ("auto", "joint", "released")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DEVICES = ("auto", "cpu", "cuda")

STATIC_WEIGHTS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.9, 0.9, 0.9)
DYNAMIC_TEMPERATURE = 20.0
DYNAMIC_LAYERS = 3
DEPTH = 7
#: Bounds far above any sensible value, so that a typo ends in one line, not in a run
#: that never ends (99999999999999999999 iterations) or overflows.
MAX_LAYERS = 1000
MAX_ITERATIONS = 100
MAX_BATCH_SIZE = 4096
MAX_TEMPERATURE = 1e6
MAX_CLIP_STEP = 3600.0

#: The method's values for the settings a backbone may choose (see the module docstring).
METHOD_DEFAULTS: dict[str, Any] = {
    "depth": DEPTH,
    "dynamic_layers": DYNAMIC_LAYERS,
    "static_weights": STATIC_WEIGHTS,
}
assert frozenset(METHOD_DEFAULTS) == BACKBONE_SETTINGS  # a backbone may set exactly these
DYNAMIC_WEIGHTINGS = frozenset({"dynamic", "combined"})


@dataclass(frozen=True)
class Settings:
    """How to ground: GEM, weighting, prompts, aggregation, clips, runtime."""

    depth: int | None = None
    iterations: int = 1
    temperature: float | None = None
    weighting: str = "combined"
    static_weights: tuple[float, ...] | None = None
    dynamic_layers: int | None = None
    dynamic_temperature: float = DYNAMIC_TEMPERATURE
    video_attention: str = "auto"
    outside_weight: float = 3.0
    prompts: str = "decomposed"
    extractor: str = "auto"
    aggregator: str = "position-average"
    templates: Templates = field(default_factory=Templates)
    clip_step: float = 0.25
    image_mode: bool = False
    batch_size: int = 1
    device: str = "auto"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        _choice("weighting", self.weighting, WEIGHTINGS)
        _choice("prompts", self.prompts, PROMPT_MODES)
        _choice("video_attention", self.video_attention, VIDEO_ATTENTIONS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("device", self.device, DEVICES)
        _name("extractor", self.extractor)
        _name("aggregator", self.aggregator)
        if self.depth is not None:
            self._set("depth", _whole("depth", self.depth, minimum=1, maximum=MAX_LAYERS))
        self._set(
            "iterations", _whole("iterations", self.iterations, minimum=0, maximum=MAX_ITERATIONS)
        )
        if self.dynamic_layers is not None:
            layers = _whole("dynamic_layers", self.dynamic_layers, minimum=0, maximum=MAX_LAYERS)
            self._set("dynamic_layers", layers)
        batch = _whole("batch_size", self.batch_size, minimum=1, maximum=MAX_BATCH_SIZE)
        self._set("batch_size", batch)
        if self.temperature is not None:
            self._set("temperature", _positive("temperature", self.temperature, MAX_TEMPERATURE))
        dynamic = _positive("dynamic_temperature", self.dynamic_temperature, MAX_TEMPERATURE)
        self._set("dynamic_temperature", dynamic)
        self._set("clip_step", _positive("clip_step", self.clip_step, MAX_CLIP_STEP))
        outside = _finite("outside_weight", self.outside_weight)
        if outside < 0:
            raise SettingsError(
                "`outside_weight` must not be negative.", settings=["outside_weight"]
            )
        self._set("outside_weight", outside)
        if self.static_weights is not None:
            self._set("static_weights", _weights(self.static_weights))
        if not isinstance(self.image_mode, bool):
            raise SettingsError("`image_mode` must be true or false.", settings=["image_mode"])
        if not isinstance(self.templates, Templates):
            raise SettingsError(
                "`templates` must be a vgem.prompts.Templates.", settings=["templates"]
            )

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @classmethod
    def from_options(cls, **options: Any) -> Settings:
        """Settings from keyword options, refusing names that do not exist.

        ``None`` stands for "not given", so front ends can pass every option
        they have and leave the defaults (the backbone's included) in charge.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise SettingsError(
                f"Unknown setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}."
            )
        return cls(**{key: value for key, value in options.items() if value is not None})

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, validated like a new object."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # -- what depends on the backbone -----------------------------------------------

    def with_defaults(self, defaults: Mapping[str, Any] | None = None) -> Settings:
        """Every "the backbone's" setting filled: from ``defaults`` (a backbone
        plugin's), else the method's constants. Given values are kept."""
        declared = dict(defaults or {})
        unknown = sorted(set(declared) - BACKBONE_SETTINGS)
        if unknown:
            raise SettingsError(
                f"A backbone can set defaults for {', '.join(sorted(BACKBONE_SETTINGS))} "
                f"only, not {', '.join(unknown)}."
            )
        filled = {
            name: declared.get(name, METHOD_DEFAULTS[name])
            for name in BACKBONE_SETTINGS
            if getattr(self, name) is None
        }
        return self.replace(**filled) if filled else self

    def for_adapter(self, adapter: BackboneAdapter, defaults: Mapping[str, Any] | None = None):
        """These settings checked against a loaded backbone, with every choice made.

        Fills the backbone's defaults, resolves ``video_attention="auto"``
        (``released`` for video backbones, as the authors ran ViCLIP; ``joint``
        for image ones) and refuses what the model cannot do.
        """
        resolved = self.with_defaults(defaults)
        blocks = len(adapter.blocks)
        frames = adapter.token_layout().frames
        depth = int(resolved.depth or DEPTH)
        if depth > blocks:
            raise SettingsError(
                f"`depth` must be between 1 and {blocks} for {adapter.name}, which has "
                f"{blocks} blocks (it is {depth}).",
                settings=["depth"],
            )
        dynamic_layers = int(resolved.dynamic_layers or 0)
        if resolved.weighting in DYNAMIC_WEIGHTINGS and not 1 <= dynamic_layers <= depth:
            raise SettingsError(
                f"`dynamic_layers` must be between 1 and `depth` ({depth}) for the "
                f"{resolved.weighting} weighting (it is {dynamic_layers}).",
                settings=["dynamic_layers", "depth"],
            )
        attention = resolved.video_attention
        if attention == "auto":
            attention = "released" if frames > 1 else "joint"
        if attention == "released" and frames < 2:
            raise SettingsError(
                f"`video_attention` released needs a video backbone; {adapter.name} sees one "
                "frame per clip.",
                settings=["video_attention"],
            )
        return resolved.replace(video_attention=attention)

    @property
    def removal_layers(self) -> int:
        """How many of the last blocks' class-token contributions the pass must keep
        (dynamic weighting reads them, the other weightings none)."""
        if self.weighting not in DYNAMIC_WEIGHTINGS:
            return 0
        return int(self.dynamic_layers if self.dynamic_layers is not None else DYNAMIC_LAYERS)


def settings_for_backbone(backbone: str, settings: Settings | None = None) -> Settings:
    """``settings`` with the named backbone plugin's declared defaults filled in.

    Reads the plugin's spec only (no weights), so a run can be identified and
    recorded before any model is built.
    """
    from vgem.backbones import backbone_spec

    spec, _variant = backbone_spec(backbone)
    return (settings or Settings()).with_defaults(spec.defaults)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SettingsError(
            f"`{name}` must be one of {', '.join(allowed)}, not {value!r}.", settings=[name]
        )


def _name(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(f"`{name}` must name a plugin, not {value!r}.", settings=[name])


def _whole(name: str, value: Any, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SettingsError(f"`{name}` must be a whole number, not {value!r}.", settings=[name])
    number = int(value)
    if number < minimum:
        floor = "at least 1" if minimum == 1 else f"{minimum} or more"
        raise SettingsError(f"`{name}` must be {floor} (it is {number}).", settings=[name])
    if number > maximum:
        shown = str(number) if len(str(number)) <= 24 else f"{str(number)[:12]}…"
        raise SettingsError(f"`{name}` must be at most {maximum} (it is {shown}).", settings=[name])
    return number


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingsError(f"`{name}` must be a number, not {value!r}.", settings=[name])
    number = float(value)
    if not math.isfinite(number):
        raise SettingsError(f"`{name}` must be a finite number, not {value!r}.", settings=[name])
    return number


def _positive(name: str, value: Any, maximum: float = math.inf) -> float:
    number = _finite(name, value)
    if number <= 0:
        raise SettingsError(f"`{name}` must be positive (it is {value!r}).", settings=[name])
    if number > maximum:
        raise SettingsError(
            f"`{name}` must be at most {maximum:g} (it is {value!r}).", settings=[name]
        )
    return number


def _weights(values: Any) -> tuple[float, ...]:
    if isinstance(values, str):
        raise SettingsError(
            "`static_weights` must be a sequence of numbers.", settings=["static_weights"]
        )
    try:
        weights = tuple(_finite("static_weights", value) for value in values)
    except TypeError:
        raise SettingsError(
            f"`static_weights` must be a sequence of numbers, not {values!r}.",
            settings=["static_weights"],
        ) from None
    if not weights:
        raise SettingsError(
            "`static_weights` needs at least one value.", settings=["static_weights"]
        )
    return weights
