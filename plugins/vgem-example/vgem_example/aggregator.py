"""The ``action-only`` aggregator: trust the whole-action prompt, ignore verb and object.

An aggregator is a class built with no arguments, with a ``name``, called
with the three normalized heatmaps ``[3, S, S]`` (verb, object, action) and
their arg-max points ``[3, 2]`` (integer x, y in model-input pixels); it
returns one integer point (x, y) in the same space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ACTION = 2  # rows are ordered verb, object, action


class ActionOnly:
    name = "action-only"

    def __call__(self, heatmaps: torch.Tensor, points: torch.Tensor) -> tuple[int, int]:
        x, y = points[ACTION].tolist()
        return int(x), int(y)
