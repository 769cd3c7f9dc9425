"""Combining the verb, object and action locations into one point (docs/method.md §5).

Aggregators are plugins (``vgem.aggregators``): a class built with no
arguments, called with the three normalized heatmaps ``[3, S, S]`` (verb,
object, action) and their arg-max points ``[3, 2]`` (integer x, y in model
input pixels), returning one integer point (x, y) in the same space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from vgem.heatmaps import argmax_points

if TYPE_CHECKING:
    import torch

VERB_WEIGHT = 1.0
OBJECT_WEIGHT = 1.0
ACTION_WEIGHT = 3.0


@runtime_checkable
class Aggregator(Protocol):
    name: str

    def __call__(self, heatmaps: torch.Tensor, points: torch.Tensor) -> tuple[int, int]: ...


class PositionAverage:
    """The paper's choice: the weighted mean of the three points (1 : 1 : 3),
    truncated to integers as the authors' code does."""

    name = "position-average"

    def __init__(
        self,
        verb_weight: float = VERB_WEIGHT,
        object_weight: float = OBJECT_WEIGHT,
        action_weight: float = ACTION_WEIGHT,
    ) -> None:
        self.weights = (verb_weight, object_weight, action_weight)

    def __call__(self, heatmaps: torch.Tensor, points: torch.Tensor) -> tuple[int, int]:
        verb_weight, object_weight, action_weight = self.weights
        total = verb_weight + object_weight + action_weight
        (verb_x, verb_y), (object_x, object_y), (action_x, action_y) = points.tolist()
        x = (action_weight * action_x + verb_weight * verb_x + object_weight * object_x) / total
        y = (action_weight * action_y + verb_weight * verb_y + object_weight * object_y) / total
        return int(x), int(y)


class HeatmapMean:
    """Arg-max of the weighted mean of the normalized heatmaps (1 : 1 : 3)."""

    name = "heatmap-mean"

    def __init__(self, action_weight: float = ACTION_WEIGHT) -> None:
        self.action_weight = action_weight

    def __call__(self, heatmaps: torch.Tensor, points: torch.Tensor) -> tuple[int, int]:
        verb, obj, action = heatmaps
        combined = (verb + obj + self.action_weight * action) / (self.action_weight + 2)
        x, y = argmax_points(combined).tolist()
        return x, y


class HeatmapProduct:
    """Arg-max of verb · object · action³: a location must suit all three."""

    name = "heatmap-product"

    def __init__(self, action_power: float = ACTION_WEIGHT) -> None:
        self.action_power = action_power

    def __call__(self, heatmaps: torch.Tensor, points: torch.Tensor) -> tuple[int, int]:
        verb, obj, action = heatmaps
        combined = verb * obj * action**self.action_power
        x, y = argmax_points(combined).tolist()
        return x, y
