"""What every conformance check shares: the failure type, the report, and helpers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from vgem.backbones.base import BackboneAdapter, run_block

if TYPE_CHECKING:
    import torch

    from vgem.gem import VideoAttention
    from vgem.settings import Settings

DEFAULT_PROMPTS: tuple[str, ...] = (
    "a person cutting an onion",
    "a dog catching a frisbee in the park",
    "pour",
)
DEFAULT_TOLERANCE = 1e-4

CheckStatus = Literal["passed", "failed", "skipped"]

TextReference = Callable[[list[str]], "torch.Tensor"]
ClipReference = Callable[["torch.Tensor"], "torch.Tensor"]


class ConformanceError(AssertionError):
    """An adapter breaks the backbone contract; ``problems`` lists each finding."""

    def __init__(self, problems: str | Sequence[str], adapter: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1 and adapter is None:
            message = self.problems[0]
        else:
            count = len(self.problems)
            head = f"adapter {adapter!r} does not conform" if adapter else "does not conform"
            lines = "\n".join(f"- {problem}" for problem in self.problems)
            message = f"{head} ({count} problem{'s' if count > 1 else ''}):\n{lines}"
        super().__init__(message)


@dataclass(frozen=True)
class CheckOutcome:
    """One check's result; ``detail`` says what was (or was not) compared."""

    name: str
    status: CheckStatus
    detail: str = ""


@dataclass
class ConformanceReport:
    """What :func:`check_adapter` ran, for printing when it passes."""

    adapter: str
    outcomes: list[CheckOutcome] = field(default_factory=list)

    @property
    def failures(self) -> list[CheckOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    def __str__(self) -> str:
        width = max((len(outcome.name) for outcome in self.outcomes), default=0)
        lines = [f"conformance of {self.adapter}:"]
        for outcome in self.outcomes:
            detail = f"  {outcome.detail}" if outcome.detail else ""
            lines.append(f"  {outcome.name:<{width}}  {outcome.status}{detail}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def sample_clip(adapter: BackboneAdapter, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Random normalized pixels ``[batch, T, 3, S, S]`` in the module's dtype and device."""
    import torch

    preprocessing = adapter.preprocessing
    size = preprocessing.input_size
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, preprocessing.frames_per_clip, 3, size, size)
    return torch.randn(shape, generator=generator).to(adapter.device, module_dtype(adapter))


def module_dtype(adapter: BackboneAdapter) -> torch.dtype:
    import torch

    for tensor in adapter.module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def original_path(adapter: BackboneAdapter, clip: torch.Tensor) -> torch.Tensor:
    """The final tokens of the plain path: embed, then every block through ``run_block``."""
    tokens = adapter.embed(clip)
    for block in adapter.blocks:
        tokens = run_block(block, tokens)
    return tokens


def max_difference(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """(max absolute difference, the same relative to the largest expected value)."""
    difference = (actual.double() - expected.double()).abs().max().item()
    scale = max(expected.double().abs().max().item(), 1e-12)
    return difference, difference / scale


def clip_kind(adapter: BackboneAdapter) -> str:
    return "video" if adapter.preprocessing.frames_per_clip > 1 else "image"


@contextlib.contextmanager
def evaluating(adapter: BackboneAdapter) -> Iterator[None]:
    """No autograd, module in eval mode: how the Grounder runs an adapter."""
    import torch

    adapter.module.eval()
    with torch.no_grad():
        yield


def gem_settings(
    adapter: BackboneAdapter, removal_layers: int, video_attention: VideoAttention = "joint"
) -> Settings:
    """A GEM setting every adapter can run: the authors' depth capped at the model's,
    checked against the adapter."""
    from vgem.settings import DEPTH, Settings

    depth = min(DEPTH, len(adapter.blocks))
    dynamic_layers = min(removal_layers, depth)
    return Settings(
        depth=depth,
        weighting="combined" if dynamic_layers else "static",
        dynamic_layers=dynamic_layers,
        video_attention=video_attention,
    ).for_adapter(adapter)
