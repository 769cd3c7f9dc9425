"""The hf-clip adapter: HF's CLIP blocks as contract views, and the conformance kit."""

from __future__ import annotations

import pytest
import torch
from vgem_transformers.adapter import HfClipAdapter
from vgem_transformers.loader import load_hf_clip

from vgem.backbones.base import Block, run_block
from vgem.testing import ConformanceError, check_adapter, check_original_path

PROMPTS = ["a person cutting an onion", "Pour WATER into the cup!", "dog's frisbee, 3 times"]


def adapter_for(tiny, input_size: int, cls: type[HfClipAdapter] = HfClipAdapter):
    return cls(
        tiny.hf, tiny.tokenizer, name="hf-tiny", weights_source="random", input_size=input_size
    )


def test_each_block_view_reproduces_hfs_own_layer(tiny):
    """Fused q/k/v + SDPA's default 1/sqrt(d) scale = CLIPAttention with its ``scale``."""
    adapter = adapter_for(tiny, 64)
    tokens = adapter.embed(torch.randn(2, 1, 3, 64, 64))
    with torch.no_grad():
        for view, layer in zip(adapter.blocks, tiny.hf.vision_model.encoder.layers, strict=True):
            attention = layer.self_attn
            assert attention.scale == (attention.embed_dim // attention.num_heads) ** -0.5
            own = layer(tokens, None)
            own = own[0] if isinstance(own, tuple) else own  # transformers 4 returns a tuple
            torch.testing.assert_close(run_block(view, tokens), own, atol=1e-5, rtol=0)
            tokens = own


def test_tokenizers_agree(tiny):
    """HF's CLIP tokenizer and open_clip's give the same ids (up to padding after the end)."""
    hf_ids = tiny.tokenizer(PROMPTS, padding="max_length", max_length=77, return_tensors="pt")
    open_clip_ids = tiny.open_clip_tokens(PROMPTS)
    mask = hf_ids["attention_mask"].bool()
    assert torch.equal(hf_ids["input_ids"][mask], open_clip_ids[mask])
    assert torch.all(open_clip_ids[~mask] == 0)
    adapter = adapter_for(tiny, 32)
    assert [adapter.count_tokens(p) for p in PROMPTS] == mask.sum(dim=1).tolist()


@pytest.mark.parametrize("input_size", [32, 64])
def test_the_adapter_conforms(tiny, saved_folder, input_size):
    """At the trained size and at a resampled one; texts against open_clip's encoder."""
    adapter = adapter_for(tiny, input_size)
    check_adapter(
        adapter,
        reference_text=tiny.open_clip_text,
        load_weights=lambda path: load_hf_clip(str(saved_folder), str(path)),
        skip=() if input_size == 64 else ("loader",),
    )


class KeyQueryValue(HfClipAdapter):
    """A plausible mistake: k, q, v stacked in the wrong order."""

    @property
    def blocks(self) -> list[Block]:
        blocks = []
        for block in super().blocks:
            q, k, v = block.in_proj_weight.chunk(3)
            block.in_proj_weight = torch.cat([k, q, v])
            blocks.append(block)
        return blocks


def test_the_kit_catches_a_qkv_order_mistake(tiny):
    """encode_clip is HF's own forward, independent enough to see the fused order."""
    with pytest.raises(ConformanceError, match="does not reproduce the model's own image"):
        check_original_path(adapter_for(tiny, 64, KeyQueryValue))


def test_hfs_own_interpolation_is_not_used_for_gem(tiny):
    """HF's plain bicubic differs from GEM's antialiased one, which the adapter uses."""
    adapter = adapter_for(tiny, 64)
    clip = torch.randn(1, 1, 3, 64, 64)
    with torch.no_grad():
        gem = adapter.encode_clip(clip)
        hf_own = tiny.hf.get_image_features(pixel_values=clip[:, 0], interpolate_pos_encoding=True)
        hf_own = hf_own if isinstance(hf_own, torch.Tensor) else hf_own.pooler_output
    assert not torch.allclose(gem, hf_own, atol=1e-4)
    assert "interpolate_pos_encoding" not in vars(tiny.hf.vision_model.embeddings)  # restored


def test_an_input_size_off_the_patch_grid_is_refused(tiny):
    from vgem.errors import SettingsError

    with pytest.raises(SettingsError, match="not a multiple of hf-tiny's patch 8"):
        adapter_for(tiny, 60)
