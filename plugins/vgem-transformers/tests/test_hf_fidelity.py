"""The key fidelity test: the same weights through open_clip and through transformers
give the same similarity maps through vgem.

The transformers model is converted from the open_clip one in the test
(openclip_to_hf), so the two hold identical random weights; vgem then runs its
whole pathway on each (prompts, text encoder, one GEM pass, layer weighting,
maps, heatmaps, points) and the results must agree.
"""

from __future__ import annotations

import open_clip
import pytest
import torch
from hf_twins import Twins, open_clip_model
from openclip_to_hf import convert
from vgem_transformers.adapter import HfClipAdapter

from vgem.backbones.openclip import OpenClipAdapter
from vgem.grounder import Grounder

QUERIES = ["cut onion", "pour water into the cup", "catch frisbee"]
TOLERANCE = 1e-4


def ground(adapter, pixels: torch.Tensor):
    depth = min(7, len(adapter.blocks))  # the authors' K, capped for tiny models
    grounder = Grounder(adapter=adapter, extractor="label", device="cpu", depth=depth)
    return grounder.ground_pixels(pixels, QUERIES)


def assert_same_maps(twins: Twins, input_size: int, seed: int = 0, batch: int = 2) -> None:
    reference = OpenClipAdapter(
        twins.open_clip,
        open_clip.get_tokenizer(twins.arch),
        name="open_clip",
        weights_source="random",
        input_size=input_size,
    )
    converted = HfClipAdapter(
        twins.hf, twins.tokenizer, name="hf", weights_source="random", input_size=input_size
    )
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn((batch, 1, 3, input_size, input_size), generator=generator)
    expected, actual = ground(reference, pixels), ground(converted, pixels)
    assert actual.similarity.shape == expected.similarity.shape
    torch.testing.assert_close(actual.similarity, expected.similarity, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(actual.scores, expected.scores, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(actual.heatmaps, expected.heatmaps, atol=TOLERANCE, rtol=0)
    assert_points_are_maxima(actual.prompt_points, expected.heatmaps)


def assert_points_are_maxima(points: torch.Tensor, heatmaps: torch.Tensor) -> None:
    """Each point is a maximum of the other library's heatmap, up to the tolerance.

    Bilinear upsampling leaves flat stretches along the borders, where a
    difference in the 7th digit picks another pixel of the same height; the
    points must agree wherever the maps do.
    """
    flat = heatmaps.flatten(-2)
    width = heatmaps.shape[-1]
    at_points = flat.gather(-1, (points[..., 1] * width + points[..., 0]).unsqueeze(-1))
    assert torch.all(at_points.squeeze(-1) >= flat.max(dim=-1).values - TOLERANCE)


@pytest.mark.parametrize("input_size", [32, 448])
def test_tiny_clip_gives_the_same_maps_through_both_libraries(tiny, input_size):
    assert_same_maps(tiny, input_size)


@pytest.fixture(scope="module")
def vit_b16(tiny) -> Twins:
    """open_clip's ViT-B-16 architecture (GELU, 12 layers, 768 wide), random weights."""
    model = open_clip_model("ViT-B-16", None, seed=1)
    return Twins("ViT-B-16", model, convert(model), tiny.tokenizer)


def test_vit_b16_gives_the_same_maps_through_both_libraries(vit_b16):
    """At GEM's 448 px: positions resampled from the trained 14 x 14 grid to 28 x 28."""
    assert_same_maps(vit_b16, 448, seed=1, batch=1)
