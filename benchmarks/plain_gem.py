"""A plain, unfused fp32 implementation of the GEM pass, for side-by-side timing.

The way the authors' code computes it: one clip at a time, every attention
matrix materialized, each of the q / k / v self-self streams on its own, the
released variant's chunks in a Python loop. It computes the same numbers as
vgem.gem.gem_forward (a benchmark checks the maps agree to 1e-4), only slower.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vgem.gem import GemPass
from vgem.settings import Settings


def _attention(query, key, value, scale):
    return torch.softmax(query @ key.transpose(-1, -2) * scale, dim=-1) @ value


def _self_self(stream, value, inverse_temperature, iterations):
    stream = F.normalize(stream, dim=-1)
    for _ in range(iterations):
        stream = F.normalize(_attention(stream, stream, stream, inverse_temperature), dim=-1)
    return _attention(stream, stream, value, inverse_temperature)


def _gem_attention(q, k, v, inverse_temperature, config, layout, original):
    """[H, N, d] streams of one clip to the self-self output [H, N, d]."""
    if config.video_attention != "released":
        return sum(_self_self(p, v, inverse_temperature, config.iterations) for p in (q, k, v)) / 3
    prefix, size = layout.prefix_tokens, layout.patches_per_frame
    output = torch.empty_like(v)
    output[:, :prefix] = original[:, :prefix]
    patch_values = v[:, prefix:]
    for chunk in range(layout.frames):
        rows = slice(prefix + chunk * size, prefix + (chunk + 1) * size)
        inside = (
            sum(
                _self_self(p[:, rows], v[:, rows], inverse_temperature, config.iterations)
                for p in (q, k, v)
            )
            / 3
        )
        outside_sum = patch_values.sum(dim=1, keepdim=True) - v[:, rows].sum(dim=1, keepdim=True)
        outside = outside_sum / (patch_values.shape[1] - size)
        weight = config.outside_weight
        output[:, rows] = (inside + weight * outside) / (1 + weight)
    return output


def plain_gem_forward(adapter, clip: torch.Tensor, config: Settings, target_frame: int) -> GemPass:
    """``clip``: one clip ``[1, T, 3, S, S]``."""
    layout = adapter.token_layout()
    rows = torch.tensor(layout.patch_token_indices(target_frame))
    x = adapter.embed(clip)[0]
    blocks = list(adapter.blocks)
    first = len(blocks) - config.depth
    terms, increments = [], []
    for index, block in enumerate(blocks):
        heads = block.num_heads
        length, width = x.shape
        head_dim = width // heads
        h = block.ln_1(x)
        qkv = h @ block.in_proj_weight.T + block.in_proj_bias
        q, k, v = (
            part.reshape(length, heads, head_dim).transpose(0, 1) for part in qkv.chunk(3, dim=-1)
        )
        original = _attention(q, k, v, head_dim**-0.5)
        attended = original.transpose(0, 1).reshape(length, width)
        output = x + block.layer_scale_1(block.out_proj(attended))
        output = output + block.layer_scale_2(block.mlp(block.ln_2(output)))
        if index >= first:
            if index == first:
                terms.append(x[rows])
            inverse_temperature = (
                float(h.norm(dim=-1).mean()) * head_dim**-0.5
                if config.temperature is None
                else config.temperature
            )
            self_self = _gem_attention(q, k, v, inverse_temperature, config, layout, original)
            merged = self_self.transpose(0, 1).reshape(length, width)
            terms.append(block.layer_scale_1(block.out_proj(merged))[rows])
            increments.append(output[0] - x[0])
        x = output
    final = x[0]
    kept = increments[len(increments) - config.removal_layers :]
    removal = adapter.head(final - torch.stack(kept)) if kept else final.new_zeros((0, 1))
    return GemPass(
        terms=torch.stack(terms).unsqueeze(1),
        class_embedding=adapter.head(final).unsqueeze(0),
        removal_embeddings=removal.unsqueeze(1),
        grid=layout.grid,
    )
