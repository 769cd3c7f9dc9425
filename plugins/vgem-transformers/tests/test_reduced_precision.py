"""The Hugging Face adapter in bf16: vgem lowers the block weights it can reach in place
(out-projection and MLP; the fused q/k/v is rebuilt per pass), and the maps follow fp32."""

from __future__ import annotations

import copy

import torch
from vgem_transformers.adapter import HfClipAdapter

from vgem.grounder import Grounder


def test_bf16_grounding_follows_fp32(tiny):
    clips = torch.randn(2, 1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    grounders = {}
    for precision in ("fp32", "bf16"):
        model = copy.deepcopy(tiny.hf)  # bf16 lowers its model's weights: one model each
        adapter = HfClipAdapter(
            model, tiny.tokenizer, name="hf-tiny", weights_source="random", input_size=64
        )
        grounders[precision] = Grounder(
            adapter=adapter, extractor="label", depth=2, dynamic_layers=2, precision=precision
        )
    block = grounders["bf16"].adapter.blocks[0]
    assert block.mlp.fc1.weight.dtype == torch.bfloat16
    assert grounders["fp32"].adapter.blocks[0].mlp.fc1.weight.dtype == torch.float32
    full = grounders["fp32"].ground_pixels(clips, ["cut onion"]).similarity.flatten(2)
    reduced = grounders["bf16"].ground_pixels(clips, ["cut onion"]).similarity.flatten(2)
    assert (full - reduced).abs().max() > 0  # it did run in bf16
    rows = full.reshape(-1, full.shape[-1]), reduced.reshape(-1, reduced.shape[-1])
    for a, b in zip(*rows, strict=True):
        assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.99
