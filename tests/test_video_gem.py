"""GEM on a video backbone: the released chunked attention, joint attention, target frame."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from tests.backbones.viclip_fixtures import TINY, random_clip, random_model
from tests.reference_gem import naive_similarity, naive_terms, naive_weights
from vgem.backbones.viclip.adapter import ViCLIPAdapter
from vgem.gem import gem_forward, similarity_maps
from vgem.grounder import Grounder
from vgem.settings import Settings
from vgem.weighting import layer_weights

DEPTH = 3
CONFIG = dataclasses.replace(TINY, name="viclip-tiny-4", vision_layers=4)


@pytest.fixture(scope="module")
def adapter():
    return ViCLIPAdapter(random_model(CONFIG, seed=5), "random")


@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_released_matches_a_naive_chunk_by_chunk_computation(adapter, iterations):
    clip = random_clip(CONFIG, batch=2)
    target = adapter.preprocessing.target_index
    config = Settings(depth=DEPTH, iterations=iterations, video_attention="released")
    rows = adapter.token_layout().patch_token_indices(target)
    with torch.inference_mode():
        gem_pass = gem_forward(adapter, clip, config, target)
        for b in range(clip.shape[0]):
            terms, _ = naive_terms(adapter, clip[b], DEPTH, iterations, released_weight=3.0)
            expected = torch.stack([term[rows] for term in terms])
            torch.testing.assert_close(gem_pass.terms[:, b], expected, atol=2e-5, rtol=1e-4)


def test_joint_matches_the_naive_computation_over_all_frames(adapter):
    clip = random_clip(CONFIG, batch=1)
    target = adapter.preprocessing.target_index
    text = F.normalize(adapter.encode_text(["A photo of a person cut onion."]), dim=-1)
    with torch.inference_mode():
        gem_pass = gem_forward(
            adapter, clip, Settings(depth=DEPTH, video_attention="joint"), target
        )
        weights = layer_weights(
            "combined",
            terms=DEPTH + 1,
            removal_embeddings=gem_pass.removal_embeddings,
            text_embeddings=text,
        )
        maps = similarity_maps(adapter, gem_pass, weights, text)
        terms, states = naive_terms(adapter, clip[0], DEPTH)
        expected_weights = naive_weights("combined", adapter, states, text[0], DEPTH)
        expected = naive_similarity(adapter, terms, expected_weights, text[0], target)
    torch.testing.assert_close(maps[0, 0], expected, atol=1e-5, rtol=0)


def test_joint_and_released_differ(adapter):
    clip = random_clip(CONFIG, batch=1)
    with torch.inference_mode():
        joint = gem_forward(adapter, clip, Settings(depth=DEPTH, video_attention="joint"), 4)
        released = gem_forward(adapter, clip, Settings(depth=DEPTH, video_attention="released"), 4)
    torch.testing.assert_close(joint.terms[0], released.terms[0])  # x^{L-K} is shared
    assert (joint.terms[1:] - released.terms[1:]).abs().max() > 1e-3
    torch.testing.assert_close(joint.class_embedding, released.class_embedding)


def test_heatmaps_are_read_from_the_target_frame(adapter):
    """Changing a frame other than the target changes the map less than changing the target."""
    clip = random_clip(CONFIG, batch=1)
    grounder = Grounder(adapter=adapter, depth=DEPTH, extractor="label")
    base = grounder.ground_pixels(clip, ["cut onion"]).similarity
    other, target = clip.clone(), clip.clone()
    other[:, 0] = torch.randn_like(other[:, 0])
    target[:, 4] = torch.randn_like(target[:, 4])
    changed_other = grounder.ground_pixels(other, ["cut onion"]).similarity
    changed_target = grounder.ground_pixels(target, ["cut onion"]).similarity
    assert (changed_target - base).abs().mean() > 3 * (changed_other - base).abs().mean()


def test_video_backbones_default_to_released(adapter):
    grounder = Grounder(adapter=adapter, depth=DEPTH, extractor="label")
    assert grounder.settings.video_attention == "released"
    joint = Grounder(adapter=adapter, depth=DEPTH, extractor="label", video_attention="joint")
    assert joint.settings.video_attention == "joint"
