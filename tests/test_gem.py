"""The GEM pathway and layer weighting against a naive re-computation of docs/method.md."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.reference_gem import naive_similarity, naive_terms, naive_weights
from vgem.backbones.base import run_block
from vgem.gem import gem_forward, similarity_maps
from vgem.settings import Settings
from vgem.weighting import layer_weights, static_schedule


def _clip(adapter, batch=2, seed=0):
    size = adapter.preprocessing.input_size
    frames = adapter.preprocessing.frames_per_clip
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, 3, size, size, generator=generator)


def _text(adapter, prompts=("A photo of a person cutting something.", "A photo of a person.")):
    with torch.inference_mode():
        return F.normalize(adapter.encode_text(list(prompts)), dim=-1)


def test_plain_path_equals_encode_image(tiny_adapter):
    from tests.tiny_models import tiny_openclip_adapter

    native = tiny_openclip_adapter(input_size=32)  # encode_image needs the trained grid
    clip = _clip(native)
    with torch.inference_mode():
        tokens = native.embed(clip)
        for block in native.blocks:
            tokens = run_block(block, tokens)
        plain = native.head(tokens[:, 0])
        expected = native.module.encode_image(clip[:, 0])
        gem_pass = gem_forward(native, clip, Settings(depth=3), 0)
    torch.testing.assert_close(plain, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(gem_pass.class_embedding, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("iterations", [0, 1, 2])
@pytest.mark.parametrize("temperature", [None, 3.0])
def test_terms_match_naive_self_self_attention(tiny_adapter, iterations, temperature):
    clip = _clip(tiny_adapter)
    config = Settings(depth=3, iterations=iterations, temperature=temperature)
    with torch.inference_mode():
        gem_pass = gem_forward(tiny_adapter, clip, config, 0)
        rows = tiny_adapter.token_layout().patch_token_indices(0)
        for b in range(clip.shape[0]):
            terms, _ = naive_terms(tiny_adapter, clip[b], 3, iterations, temperature)
            expected = torch.stack([term[rows] for term in terms])
            torch.testing.assert_close(gem_pass.terms[:, b], expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", ["none", "static", "dynamic", "combined"])
def test_every_weighting_matches_the_formulas(tiny_adapter, mode):
    depth = 4  # all blocks of the tiny model; the static list is aligned at its end
    clip = _clip(tiny_adapter)
    text = _text(tiny_adapter)
    with torch.inference_mode():
        gem_pass = gem_forward(tiny_adapter, clip, Settings(depth=depth), 0)
        weights = layer_weights(
            mode,
            terms=depth + 1,
            removal_embeddings=gem_pass.removal_embeddings,
            text_embeddings=text,
        )
        maps = similarity_maps(tiny_adapter, gem_pass, weights, text)
        for b in range(clip.shape[0]):
            terms, states = naive_terms(tiny_adapter, clip[b], depth)
            for p in range(text.shape[0]):
                expected_weights = naive_weights(mode, tiny_adapter, states, text[p], depth)
                torch.testing.assert_close(
                    weights[b, p], torch.tensor(expected_weights), atol=1e-5, rtol=0
                )
                expected = naive_similarity(tiny_adapter, terms, expected_weights, text[p])
                torch.testing.assert_close(maps[b, p], expected, atol=1e-5, rtol=0)


def test_dynamic_weights_differ_per_prompt_and_clip(tiny_adapter):
    clip = _clip(tiny_adapter, batch=3)
    text = _text(tiny_adapter, ("a dog", "a red car", "someone slicing bread"))
    with torch.inference_mode():
        gem_pass = gem_forward(tiny_adapter, clip, Settings(depth=4), 0)
        weights = layer_weights(
            "dynamic", terms=5, removal_embeddings=gem_pass.removal_embeddings, text_embeddings=text
        )
    assert weights.shape == (3, 3, 5)
    assert not torch.allclose(weights[0, 0], weights[0, 1])
    assert not torch.allclose(weights[0, 0], weights[1, 0])
    # the dynamic share of the last three layers always sums to 1, the base to 2
    torch.testing.assert_close(weights[..., -3:].sum(-1), torch.full((3, 3), 3.0))


def test_one_pass_serves_prompts_added_later(tiny_adapter):
    """Maps for prompts embedded after the visual pass equal a fresh computation."""
    clip = _clip(tiny_adapter)
    first, second = _text(tiny_adapter, ("a cat",)), _text(tiny_adapter, ("a person riding",))
    with torch.inference_mode():
        gem_pass = gem_forward(tiny_adapter, clip, Settings(depth=4), 0)
        both = torch.cat([first, second])
        weights = layer_weights(
            "combined",
            terms=5,
            removal_embeddings=gem_pass.removal_embeddings,
            text_embeddings=both,
        )
        together = similarity_maps(tiny_adapter, gem_pass, weights, both)
        alone = similarity_maps(tiny_adapter, gem_pass, weights[:, 1:], second)
    torch.testing.assert_close(together[:, 1:], alone)


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (8, [0.3, 0.4, 0.5, 0.6, 0.7, 0.9, 0.9, 0.9]),
        (4, [0.7, 0.9, 0.9, 0.9]),
        (10, [0.3, 0.3, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9, 0.9, 0.9]),
    ],
)
def test_static_schedule_is_aligned_at_the_top_layer(count, expected):
    assert static_schedule([0.3, 0.4, 0.5, 0.6, 0.7, 0.9, 0.9, 0.9], count) == expected


def test_depth_beyond_the_backbone_is_refused(tiny_adapter):
    from vgem.errors import SettingsError

    with pytest.raises(SettingsError, match="`depth` must be between 1 and 4") as refusal:
        Settings(depth=5).for_adapter(tiny_adapter)
    assert refusal.value.settings == ("depth",)


def test_released_attention_needs_a_video_backbone(tiny_adapter):
    from vgem.errors import SettingsError

    with pytest.raises(SettingsError, match="video backbone"):
        Settings(depth=4, video_attention="released").for_adapter(tiny_adapter)
