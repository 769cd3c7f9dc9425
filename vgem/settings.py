"""Every setting of a grounding run, in one validated, serializable place.

The defaults are the authors' (../METHOD.md); the JSON output records the
whole object so any result can be reproduced.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from vgem.errors import SettingsError
from vgem.prompts import PROMPT_MODES, Templates
from vgem.weighting import DYNAMIC_LAYERS, DYNAMIC_TEMPERATURE, STATIC_WEIGHTS, WEIGHTINGS

VIDEO_ATTENTIONS = ("auto", "joint", "released")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Settings:
    """How to ground: GEM, weighting, prompts, aggregation, clips, runtime."""

    depth: int = 7
    iterations: int = 1
    temperature: float | None = None
    weighting: str = "combined"
    static_weights: tuple[float, ...] = STATIC_WEIGHTS
    dynamic_layers: int = DYNAMIC_LAYERS
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
        _choice("video-attention", self.video_attention, VIDEO_ATTENTIONS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("device", self.device, DEVICES)
        if self.depth < 1:
            raise SettingsError("--depth must be at least 1.")
        if self.clip_step <= 0:
            raise SettingsError("--clip-step must be a positive number of seconds.")
        if self.batch_size < 1:
            raise SettingsError("--batch-size must be at least 1.")
        if self.dynamic_temperature <= 0:
            raise SettingsError("--dynamic-temperature must be positive.")
        if self.outside_weight < 0:
            raise SettingsError("--outside-weight must not be negative.")
        object.__setattr__(self, "static_weights", tuple(float(w) for w in self.static_weights))

    @classmethod
    def from_options(cls, **options: Any) -> Settings:
        """Settings from keyword options, refusing names that do not exist."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise SettingsError(
                f"Unknown setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}."
            )
        return cls(**{key: value for key, value in options.items() if value is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SettingsError(f"--{option} must be one of {', '.join(allowed)}, not '{value}'.")
