"""The toy backbone conforms, loads safely and grounds through vgem's front door."""

from __future__ import annotations

import pytest
import torch
from vgem_example.toy import INPUT_SIZE, TRAINED_SIZE, load_toy

from vgem.errors import WeightsError
from vgem.grounder import Grounder
from vgem.testing import check_adapter


@pytest.mark.parametrize("input_size", [TRAINED_SIZE, INPUT_SIZE])
def test_the_toy_backbone_passes_the_conformance_kit(input_size):
    adapter = load_toy(input_size=input_size)
    check_adapter(adapter, load_weights=lambda path: load_toy(str(path)))


def test_weights_round_trip_through_a_checkpoint(tmp_path):
    original = load_toy(seed=3)
    torch.save(original.module.state_dict(), tmp_path / "toy.pt")
    loaded = load_toy(str(tmp_path / "toy.pt"))
    for key, value in original.module.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[key], value)


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    torch.save({"something.else": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="does not fit toy-vit"):
        load_toy(str(tmp_path / "other.pt"))


def test_grounding_with_the_example_plugins():
    """The example's extractor and aggregator, by their entry-point names, on the toy."""
    grounder = Grounder(
        backbone="toy-vit",
        extractor="keywords",
        aggregator="action-only",
        device="cpu",
    )
    pixels = torch.randn(1, 1, 3, INPUT_SIZE, INPUT_SIZE)
    result = grounder.ground_pixels(pixels, ["pour water into the cup"])
    assert result.heatmaps.shape == (1, 1, 3, INPUT_SIZE, INPUT_SIZE)
    assert grounder.prompts_for(["pour water into the cup"])[0].extraction.objects == ("cup",)
    action_point = tuple(result.prompt_points[0, 0, 2].tolist())
    assert result.points[0][0] == action_point
    # no method options were given: the spec's declared defaults were used
    assert (grounder.settings.depth, grounder.settings.dynamic_layers) == (2, 2)
