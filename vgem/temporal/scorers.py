"""Temporal relevance scorers (plugins in ``vgem.temporal``).

A scorer names the extra prompts it needs per query and turns clip
embeddings and prompt embeddings into per-time scores. Heavier scorers (a
large vision-language model, say) can be added by third parties through the
same entry-point group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@dataclass
class TemporalScores:
    """``relevance`` ``[times, queries]``; optional ``start`` / ``end`` evidence of the
    same shape, used to place segment boundaries."""

    relevance: torch.Tensor
    start: torch.Tensor | None = None
    end: torch.Tensor | None = None


@runtime_checkable
class TemporalScorer(Protocol):
    name: str

    def prompts(self, action: str) -> dict[str, str]:
        """Extra prompt texts for one query's action text, by role."""
        ...

    def score(
        self, clip_embeddings: torch.Tensor, prompt_embeddings: dict[str, torch.Tensor]
    ) -> TemporalScores:
        """``clip_embeddings`` ``[times, D]`` and, per role, ``[queries, D]`` (both
        normalized; the role ``action`` is always present)."""
        ...


class ClassTokenScorer:
    """Cosine of the clip embedding with the action prompt: GroundingYouTube's global
    branch, without training."""

    name = "class-token"

    def prompts(self, action: str) -> dict[str, str]:
        return {}

    def score(self, clip_embeddings, prompt_embeddings) -> TemporalScores:
        return TemporalScores(relevance=clip_embeddings @ prompt_embeddings["action"].T)


class StartEndScorer(ClassTokenScorer):
    """Class-token relevance, plus prompts for an action starting and finishing
    (ZEAL-style) that move segment boundaries to where the clip looks most like
    the action beginning or ending."""

    name = "start-end"
    start_template = "A photo of a person starting to {}."
    end_template = "A photo of a person finishing to {}."

    def prompts(self, action: str) -> dict[str, str]:
        return {
            "start": self.start_template.format(action),
            "end": self.end_template.format(action),
        }

    def score(self, clip_embeddings, prompt_embeddings) -> TemporalScores:
        relevance = clip_embeddings @ prompt_embeddings["action"].T
        return TemporalScores(
            relevance=relevance,
            start=clip_embeddings @ prompt_embeddings["start"].T,
            end=clip_embeddings @ prompt_embeddings["end"].T,
        )
