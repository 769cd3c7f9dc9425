"""Aggregators combine verb, object and action locations (docs/method.md §5)."""

from __future__ import annotations

import pytest
import torch

from vgem import plugins
from vgem.aggregators import HeatmapMean, HeatmapProduct, PositionAverage


def _maps_with_peaks(peaks, size=10, background=0.0):
    maps = torch.full((3, size, size), background)
    for role, (x, y, value) in enumerate(peaks):
        maps[role, y, x] = value
    return maps


def test_position_average_weights_action_three_times_and_truncates():
    points = torch.tensor([[0, 9], [9, 0], [4, 6]])
    # x = (1*0 + 1*9 + 3*4) / 5 = 4.2 -> 4 ; y = (9 + 0 + 18) / 5 = 5.4 -> 5
    assert PositionAverage()(torch.zeros(3, 10, 10), points) == (4, 5)


def test_position_average_truncates_rather_than_rounds():
    points = torch.tensor([[4, 4], [4, 4], [5, 5]])  # (4 + 4 + 15) / 5 = 4.6
    assert PositionAverage()(torch.zeros(3, 10, 10), points) == (4, 4)


def test_heatmap_mean_picks_the_best_weighted_sum():
    # verb and object agree on (1, 1) with 1.0 each: (1 + 1 + 0) / 5 = 0.4
    # action alone at (8, 8) with 0.9: 3 * 0.9 / 5 = 0.54 -> wins
    maps = torch.zeros(3, 10, 10)
    maps[0, 1, 1] = maps[1, 1, 1] = 1.0
    maps[2, 8, 8] = 0.9
    assert HeatmapMean()(maps, torch.zeros(3, 2, dtype=torch.long)) == (8, 8)


def test_heatmap_mean_lets_verb_and_object_outvote_a_weak_action():
    maps = torch.zeros(3, 10, 10)
    maps[0, 1, 1] = maps[1, 1, 1] = 1.0
    maps[2, 8, 8] = 0.6  # 1.8 / 5 = 0.36 < 0.4
    assert HeatmapMean()(maps, torch.zeros(3, 2, dtype=torch.long)) == (1, 1)


def test_heatmap_product_needs_all_three():
    maps = torch.full((3, 10, 10), 0.1)
    maps[:, 2, 7] = torch.tensor([0.5, 0.5, 0.5])  # 0.5 * 0.5 * 0.125 = 0.03125
    maps[2, 6, 3] = 1.0  # 0.1 * 0.1 * 1 = 0.01 despite the best action
    assert HeatmapProduct()(maps, torch.zeros(3, 2, dtype=torch.long)) == (7, 2)


def test_ties_go_to_the_first_maximum_in_row_major_order():
    maps = torch.zeros(3, 10, 10)
    maps[:, 3, 8] = 1.0
    maps[:, 4, 1] = 1.0
    assert HeatmapMean()(maps, torch.zeros(3, 2, dtype=torch.long)) == (8, 3)


@pytest.mark.parametrize("name", ["position-average", "heatmap-mean", "heatmap-product"])
def test_built_in_aggregators_are_plugins(name):
    assert plugins.load("vgem.aggregators", name)().name == name
