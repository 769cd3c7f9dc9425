"""From patch-grid similarity maps to heatmaps and points (docs/method.md §4).

The order of operations follows the authors' code: bilinear upsampling to the
model input (align_corners False), min-max normalization per map, then the
first maximum in row-major order. Normalizing before the arg-max is kept on
purpose: rounding in the division can merge near-ties, and the authors'
points come from the normalized maps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """``[..., h, w]`` → ``[..., size, size]``, bilinear, align_corners False."""
    import torch.nn.functional as F

    leading = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    resized = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False)
    return resized.reshape(*leading, size, size)


def min_max_normalize(maps: torch.Tensor) -> torch.Tensor:
    """Each ``[H, W]`` map scaled to [0, 1] (a constant map becomes all 0)."""
    flat = maps.flatten(-2)
    low = flat.min(dim=-1, keepdim=True).values.unsqueeze(-1)
    high = flat.max(dim=-1, keepdim=True).values.unsqueeze(-1)
    span = high - low
    return (maps - low) / span.where(span > 0, span.new_ones(()))


def argmax_points(maps: torch.Tensor) -> torch.Tensor:
    """The first maximum of each ``[H, W]`` map, as integer (x, y): ``[..., 2]``."""
    import torch

    width = maps.shape[-1]
    index = maps.flatten(-2).argmax(dim=-1)
    return torch.stack([index % width, index // width], dim=-1)


def heatmaps_and_points(similarity: torch.Tensor, input_size: int):
    """Normalized heatmaps ``[..., S, S]`` and their points ``[..., 2]``."""
    heatmaps = min_max_normalize(upsample(similarity, input_size))
    return heatmaps, argmax_points(heatmaps)


def to_original_pixels(
    point: tuple[float, float], input_size: int, frame_size: tuple[int, int]
) -> tuple[float, float]:
    """A model-input pixel (S × S) to the original frame (W × H), centres aligned."""
    width, height = frame_size
    x, y = point
    return (
        (x + 0.5) * width / input_size - 0.5,
        (y + 0.5) * height / input_size - 0.5,
    )
