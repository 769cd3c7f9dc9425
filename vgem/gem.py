"""The GEM pathway: self-self attention run beside a backbone (../METHOD.md §2, §6a).

Backbone-agnostic: everything comes through a :class:`BackboneAdapter`. One
call of :func:`gem_forward` is the only visual pass a batch of clips gets; it
keeps what every prompt needs later (the K+1 layer terms at the target frame's
patches and a few class-token embeddings), because only the layer weights
depend on the prompt.

Every attention step is ``scaled_dot_product_attention``: self-self attention
is attention with query = key = the normalized projection, so the fused kernel
computes it without materializing N × N matrices. The adaptive temperature is
one scalar per clip, folded into the queries so a whole batch shares one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vgem.backbones.base import BackboneAdapter, Block, TokenLayout, run_block
from vgem.errors import SettingsError

if TYPE_CHECKING:
    import torch

VideoAttention = Literal["joint", "released"]


@dataclass(frozen=True)
class GemConfig:
    """The constants of §2 and §6a; defaults are the authors'."""

    depth: int = 7
    iterations: int = 1
    temperature: float | None = None
    video_attention: VideoAttention = "joint"
    outside_weight: float = 3.0
    removal_layers: int = 3

    def validate(self, adapter: BackboneAdapter) -> None:
        layers = len(adapter.blocks)
        if not 1 <= self.depth <= layers:
            raise SettingsError(f"--depth must be between 1 and {layers} for {adapter.name}.")
        if self.iterations < 0:
            raise SettingsError("--iterations must be 0 or more.")
        if self.temperature is not None and self.temperature <= 0:
            raise SettingsError("--temperature must be positive (or omitted for adaptive).")
        if not 0 <= self.removal_layers <= self.depth:
            raise SettingsError("--dynamic-layers must lie between 0 and --depth.")
        if self.video_attention == "released" and adapter.token_layout().frames < 2:
            raise SettingsError(
                f"--video-attention released needs a video backbone; {adapter.name} sees one "
                "frame per clip."
            )


@dataclass
class GemPass:
    """What one visual pass leaves for every prompt.

    ``terms``: ``[K+1, B, h*w, C]``, x^{L-K} then the K self-self residuals
    Z^{L-K+1..L}, at the target frame's patch tokens only.
    ``class_embedding``: ``[B, D]`` the original path's clip embedding.
    ``removal_embeddings``: ``[R, B, D]`` the class-token embedding with each
    of the last R blocks' contribution removed from the original path
    (dynamic weighting, §3).
    """

    terms: torch.Tensor
    class_embedding: torch.Tensor
    removal_embeddings: torch.Tensor
    grid: tuple[int, int]


def adaptive_inverse_temperature(normed_tokens: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Mean token norm × head_dim^-0.5, one scalar per clip: ``[B]``."""
    return normed_tokens.norm(dim=-1).mean(dim=-1) * head_dim**-0.5


def self_self_attention(
    qkv: torch.Tensor, inverse_temperature: torch.Tensor, iterations: int
) -> torch.Tensor:
    """§2 steps 1–3 on the q, k and v streams at once, averaged.

    ``qkv``: ``[3, B, H, N, d]``; ``inverse_temperature``: ``[B]``.
    Returns ``[B, H, N, d]``.
    """
    import torch.nn.functional as F

    streams = qkv
    values = qkv[2].unsqueeze(0).expand_as(qkv)
    scale = inverse_temperature.view(1, -1, 1, 1, 1).to(qkv.dtype)
    for _ in range(iterations):
        streams = F.normalize(streams, dim=-1)
        streams = _attend(streams * scale, streams, streams)
    streams = F.normalize(streams, dim=-1)
    return _attend(streams * scale, streams, values).mean(dim=0)


def _attend(query, key, value, mask=None):
    """SDPA with the scale already folded into ``query``, on ``[..., N, d]``."""
    import torch.nn.functional as F

    leading = query.shape[:-2]
    flat = [t.reshape(-1, 1, *t.shape[-2:]) for t in (query, key, value)]
    out = F.scaled_dot_product_attention(*flat, attn_mask=mask, scale=1.0)
    return out.reshape(*leading, *out.shape[-2:])


def released_self_self_attention(
    qkv: torch.Tensor,
    inverse_temperature: torch.Tensor,
    iterations: int,
    layout: TokenLayout,
    class_output: torch.Tensor,
    outside_weight: float,
) -> torch.Tensor:
    """The variant the authors ran for ViCLIP (§6a).

    Patch tokens are cut, in the model's token order, into ``layout.frames``
    contiguous chunks of h·w tokens (for ViCLIP's patch-major order these are
    bands of patches across all frames, exactly as the released code did).
    Inside a chunk: §2's self-self attention. Across: the mean of the values
    outside the chunk. Mixed as ``(inside + w·outside) / (1 + w)``; the class
    token keeps the original attention's output ``class_output`` ``[B, H, 1, d]``.
    """
    import torch

    three, batch, heads, _, head_dim = qkv.shape
    prefix = layout.prefix_tokens
    chunks, chunk_size = layout.frames, layout.patches_per_frame
    patches = qkv[:, :, :, prefix:]
    chunked = patches.reshape(three, batch, heads * chunks, chunk_size, head_dim)
    inside = self_self_attention(chunked, inverse_temperature, iterations)
    inside = inside.reshape(batch, heads, chunks * chunk_size, head_dim)
    outside = _outside_chunk_attention(patches, inverse_temperature, iterations, chunks)
    mixed = (inside + outside_weight * outside) / (1.0 + outside_weight)
    return torch.cat([class_output, mixed], dim=2)


def _outside_chunk_attention(patches, inverse_temperature, iterations, chunks):
    """Each patch attends to the patches of the other chunks.

    After one iteration the released code's queries are zero (they only keep
    in-chunk rows, which attend only outside the chunk), so the final softmax
    is uniform: the plain mean of the other chunks' values. With no iteration
    the normalized in-chunk queries meet the raw out-of-chunk projections.
    """
    import torch
    import torch.nn.functional as F

    values = patches[2]
    batch, heads, count, head_dim = values.shape
    chunk_size = count // chunks
    if iterations >= 1:
        per_chunk = values.reshape(batch, heads, chunks, chunk_size, head_dim).sum(dim=3)
        others = (values.sum(dim=2, keepdim=True).unsqueeze(2) - per_chunk.unsqueeze(3)) / (
            count - chunk_size
        )
        return others.expand(batch, heads, chunks, chunk_size, head_dim).reshape(values.shape)
    chunk_of = torch.arange(count, device=values.device) // chunk_size
    allowed = chunk_of[:, None] != chunk_of[None, :]
    scale = inverse_temperature.view(1, -1, 1, 1, 1).to(patches.dtype)
    queries = F.normalize(patches, dim=-1) * scale
    out = _attend(queries, patches, values.unsqueeze(0).expand_as(patches), allowed)
    return out.mean(dim=0)


def _dual_block(
    block: Block, tokens: torch.Tensor, config: GemConfig, layout: TokenLayout
) -> tuple[torch.Tensor, torch.Tensor]:
    """One block on both paths: (original output x^l, self-self residual Z^l)."""
    import torch.nn.functional as F

    batch, length, width = tokens.shape
    heads = block.num_heads
    head_dim = width // heads
    normed = block.ln_1(tokens)
    qkv = F.linear(normed, block.in_proj_weight, block.in_proj_bias)
    qkv = qkv.view(batch, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    original = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
    attended = original.transpose(1, 2).reshape(batch, length, width)
    output = tokens + block.layer_scale_1(block.out_proj(attended))
    output = output + block.layer_scale_2(block.mlp(block.ln_2(output)))

    if config.temperature is None:
        inverse_temperature = adaptive_inverse_temperature(normed, head_dim)
    else:
        inverse_temperature = normed.new_full((batch,), config.temperature)
    if config.video_attention == "released":
        self_self = released_self_self_attention(
            qkv,
            inverse_temperature,
            config.iterations,
            layout,
            original[:, :, : layout.prefix_tokens],
            config.outside_weight,
        )
    else:
        self_self = self_self_attention(qkv, inverse_temperature, config.iterations)
    merged = self_self.transpose(1, 2).reshape(batch, length, width)
    return output, block.layer_scale_1(block.out_proj(merged))


def gem_forward(
    adapter: BackboneAdapter, clips: torch.Tensor, config: GemConfig, target_frame: int
) -> GemPass:
    """The one visual pass: original path through all blocks, GEM beside the last K.

    ``clips``: normalized pixels ``[B, T, 3, S, S]``; ``target_frame``: the
    clip frame whose patches the heatmaps are read from.
    """
    import torch

    layout = adapter.token_layout()
    target_tokens = torch.tensor(layout.patch_token_indices(target_frame), device=clips.device)
    blocks = adapter.blocks
    first_gem_block = len(blocks) - config.depth
    tokens = adapter.embed(clips)
    for block in blocks[:first_gem_block]:
        tokens = run_block(block, tokens)
    terms = [tokens[:, target_tokens]]
    class_increments = []
    for block in blocks[first_gem_block:]:
        output, residual = _dual_block(block, tokens, config, layout)
        terms.append(residual[:, target_tokens])
        class_increments.append(output[:, 0] - tokens[:, 0])
        tokens = output
    final_class = tokens[:, 0]
    removal_count = config.removal_layers
    if removal_count:
        removed = final_class.unsqueeze(0) - torch.stack(class_increments[-removal_count:])
        removal_embeddings = adapter.head(removed)
    else:
        removal_embeddings = final_class.new_zeros((0, *adapter.head(final_class).shape))
    return GemPass(
        terms=torch.stack(terms),
        class_embedding=adapter.head(final_class),
        removal_embeddings=removal_embeddings,
        grid=layout.grid,
    )


def patch_features(adapter: BackboneAdapter, gem_pass: GemPass, weights: torch.Tensor):
    """Normalized GEM features per prompt: ``[B, P, h*w, D]``.

    ``weights``: ``[B, P, K+1]``, one row of layer weights per clip and prompt;
    the mixing is a single contraction over the K+1 terms.
    """
    import torch
    import torch.nn.functional as F

    mixed = torch.einsum("bpk,kbnc->bpnc", weights.to(gem_pass.terms.dtype), gem_pass.terms)
    return F.normalize(adapter.head(mixed), dim=-1)


def similarity_maps(
    adapter: BackboneAdapter,
    gem_pass: GemPass,
    weights: torch.Tensor,
    text_embeddings: torch.Tensor,
) -> torch.Tensor:
    """Cosine of each target-frame patch with each prompt: ``[B, P, h, w]``.

    ``text_embeddings``: ``[B, P, D]`` or ``[P, D]``, L2-normalized.
    """
    import torch

    features = patch_features(adapter, gem_pass, weights)
    text = text_embeddings.to(features.dtype)
    if text.ndim == 2:
        text = text.unsqueeze(0).expand(features.shape[0], -1, -1)
    cosine = torch.einsum("bpnd,bpd->bpn", features, text)
    return cosine.reshape(*cosine.shape[:2], *gem_pass.grid)
