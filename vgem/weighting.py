"""Layer weights over the K+1 GEM terms (docs/method.md §3).

Higher layers localize better, so the static schedule favours them; the
dynamic part asks, per prompt, which of the last blocks the prompt's match
depends on most (removing that block hurts the class-token match most) and
gives it more weight. Only these weights depend on the prompt, which is why
one visual pass serves every prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from vgem.settings import DYNAMIC_LAYERS, DYNAMIC_TEMPERATURE, STATIC_WEIGHTS, WEIGHTINGS

if TYPE_CHECKING:
    import torch

__all__ = [
    "DYNAMIC_LAYERS",
    "DYNAMIC_TEMPERATURE",
    "STATIC_WEIGHTS",
    "WEIGHTINGS",
    "Weighting",
    "dynamic_weights",
    "layer_weights",
    "static_schedule",
]

Weighting = Literal["none", "static", "dynamic", "combined"]


def static_schedule(weights: Sequence[float], terms: int) -> list[float]:
    """``weights`` fitted to ``terms`` entries, aligned at the last layer.

    The default schedule has 8 entries (K = 7). For a shallower GEM the first
    entries are dropped; for a deeper one the first entry is repeated in front,
    so the top layers always keep their weights.
    """
    if not weights:
        raise ValueError("a static schedule needs at least one weight")
    weights = list(weights)
    if len(weights) >= terms:
        return weights[len(weights) - terms :]
    return [weights[0]] * (terms - len(weights)) + weights


def dynamic_weights(
    removal_embeddings: torch.Tensor, text_embeddings: torch.Tensor, temperature: float
) -> torch.Tensor:
    """softmax over the last R blocks of −τ · cos(removal embedding, prompt).

    ``removal_embeddings``: ``[R, B, D]``; ``text_embeddings``: ``[B, P, D]``
    or ``[P, D]``, normalized. Returns ``[B, P, R]``.
    """
    import torch
    import torch.nn.functional as F

    removed = F.normalize(removal_embeddings.float(), dim=-1)
    text = text_embeddings.float()
    if text.ndim == 2:
        text = text.unsqueeze(0).expand(removed.shape[1], -1, -1)
    cosine = torch.einsum("rbd,bpd->bpr", removed, text)
    return torch.softmax(-temperature * cosine, dim=-1)


def layer_weights(
    mode: str,
    *,
    terms: int,
    removal_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    static_weights: Sequence[float] = STATIC_WEIGHTS,
    dynamic_layers: int = DYNAMIC_LAYERS,
    dynamic_temperature: float = DYNAMIC_TEMPERATURE,
) -> torch.Tensor:
    """The weights of each of the K+1 terms, per clip and prompt: ``[B, P, K+1]``.

    - none: all 1 (plain GEM);
    - static: the static schedule;
    - dynamic: 1 for the first terms, ``1 − 1/R + w_d`` for the last R
      (``2/3 + w_d`` with R = 3, as in the authors' code);
    - combined: the static schedule with ``−1/R + w_d`` added to the last R
      (``0.9 − 1/3 + w_d``), the paper's default.

    The values come from validated :class:`vgem.settings.Settings`; what is
    refused here is a caller's mistake, not a user's.
    """
    import torch

    if mode not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {mode!r}; one of {', '.join(WEIGHTINGS)}")
    batch = removal_embeddings.shape[1]
    prompts = text_embeddings.shape[-2]
    uniform = mode in ("none", "dynamic")
    base = [1.0] * terms if uniform else static_schedule(static_weights, terms)
    weights = torch.tensor(base, dtype=torch.float32, device=removal_embeddings.device)
    weights = weights.expand(batch, prompts, terms).clone()
    if mode in ("dynamic", "combined"):
        if not 1 <= dynamic_layers <= min(terms - 1, removal_embeddings.shape[0]):
            raise ValueError(
                f"{dynamic_layers} dynamic layers need that many of the {terms - 1} GEM "
                f"layers and removal embeddings ({removal_embeddings.shape[0]} kept)"
            )
        removal = removal_embeddings[-dynamic_layers:]
        adaptive = dynamic_weights(removal, text_embeddings, dynamic_temperature)
        weights[..., -dynamic_layers:] += adaptive - 1.0 / dynamic_layers
    return weights
