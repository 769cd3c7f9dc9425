"""The GEM pathway: self-self attention run beside a backbone (docs/method.md §2, §6a).

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
from vgem.precision import full_precision

if TYPE_CHECKING:
    import torch

    from vgem.settings import Settings

VideoAttention = Literal["joint", "released"]


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
    qkv: torch.Tensor,
    inverse_temperature: torch.Tensor,
    iterations: int,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """§2 steps 1–3 on the q, k and v streams at once, averaged.

    ``qkv``: ``[3, B, H, N, d]``; ``inverse_temperature``: ``[B]``. The
    iterations refine every token (they are the keys of the last step); the
    final assignment to the values is computed only for ``rows`` (token
    positions; all when None). Returns ``[B, H, len(rows) or N, d]``.
    """
    import torch.nn.functional as F

    streams = qkv
    values = qkv[2].unsqueeze(0).expand_as(qkv)
    scale = inverse_temperature.view(1, -1, *[1] * (qkv.ndim - 2)).to(qkv.dtype)
    for _ in range(iterations):
        streams = F.normalize(streams, dim=-1)
        streams = _attend(streams * scale, streams, streams)
    streams = F.normalize(streams, dim=-1)
    queries = streams if rows is None else streams[..., rows, :]
    return _attend(queries * scale, streams, values).mean(dim=0)


def _attend(query, key, value, mask=None):
    """SDPA with the scale already folded into ``query``, on ``[..., N, d]``."""
    import torch.nn.functional as F

    leading = query.shape[:-2]
    # keep the last leading axis as SDPA's heads: the kernel splits work over
    # batch × heads, and a [batch, heads] view usually needs no copy
    flat = [t.reshape(-1, leading[-1], *t.shape[-2:]) for t in (query, key, value)]
    out = F.scaled_dot_product_attention(*flat, attn_mask=mask, scale=1.0)
    return out.reshape(*leading, *out.shape[-2:])


def released_self_self_attention(
    qkv: torch.Tensor,
    inverse_temperature: torch.Tensor,
    iterations: int,
    layout: TokenLayout,
    rows: torch.Tensor,
    outside_weight: float,
) -> torch.Tensor:
    """The variant the authors ran for ViCLIP (§6a), for the patch tokens ``rows``.

    Patch tokens are cut, in the model's token order, into ``layout.frames``
    contiguous chunks of h·w tokens (for ViCLIP's patch-major order these are
    bands of patches across all frames, exactly as the released code did).
    Inside a chunk: §2's self-self attention. Across: the mean of the values
    outside the chunk. Mixed as ``(inside + w·outside) / (1 + w)``. (The
    released code gives the class token the original attention's output; no
    class-token output is ever read, so none is computed.)
    Returns ``[B, H, len(rows), d]``.
    """
    import torch

    three, batch, heads, _, head_dim = qkv.shape
    chunks, chunk_size = layout.frames, layout.patches_per_frame
    patches = qkv[:, :, :, layout.prefix_tokens :]
    patch_rows = rows - layout.prefix_tokens
    chunk_of_row = patch_rows // chunk_size
    chunked = patches.reshape(three, batch, heads, chunks, chunk_size, head_dim)
    # each chunk's wanted rows, padded to a common count so one call serves all
    wanted = [patch_rows[chunk_of_row == c] % chunk_size for c in range(chunks)]
    width = max(1, max(len(w) for w in wanted))
    padded = torch.stack(
        [torch.cat([w, w.new_zeros(width - len(w))]) if len(w) < width else w for w in wanted]
    )
    inside = _chunk_self_self(chunked, inverse_temperature, iterations, padded)
    slot = torch.cat([torch.arange(len(w), device=rows.device) for w in wanted])
    order = torch.cat([torch.nonzero(chunk_of_row == c).flatten() for c in range(chunks)])
    picked = inside[:, :, chunk_of_row[order], slot]  # [B, H, rows (chunk order), d]
    inside = torch.empty_like(picked)
    inside[:, :, order] = picked
    outside = _outside_chunk_attention(patches, inverse_temperature, iterations, chunks, patch_rows)
    return (inside + outside_weight * outside) / (1.0 + outside_weight)


def _chunk_self_self(chunked, inverse_temperature, iterations, padded_rows):
    """Self-self attention within each chunk, assigned for ``padded_rows`` [C, m]
    of every chunk: ``[B, H, C, m, d]``."""
    import torch
    import torch.nn.functional as F

    streams = chunked
    values = chunked[2].unsqueeze(0).expand_as(chunked)
    scale = inverse_temperature.view(1, -1, 1, 1, 1, 1).to(chunked.dtype)
    for _ in range(iterations):
        streams = F.normalize(streams, dim=-1)
        streams = _attend(streams * scale, streams, streams)
    streams = F.normalize(streams, dim=-1)
    chunk_index = torch.arange(chunked.shape[3], device=chunked.device)[:, None]
    queries = streams[:, :, :, chunk_index, padded_rows]  # [3, B, H, C, m, d]
    return _attend(queries * scale, streams, values).mean(dim=0)


def _outside_chunk_attention(patches, inverse_temperature, iterations, chunks, patch_rows):
    """Each wanted patch attends to the patches of the other chunks: ``[B, H, rows, d]``.

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
    chunk_of_row = patch_rows // chunk_size
    if iterations >= 1:
        per_chunk = values.reshape(batch, heads, chunks, chunk_size, head_dim).sum(dim=3)
        others = (values.sum(dim=2, keepdim=True) - per_chunk) / (count - chunk_size)
        return others[:, :, chunk_of_row]
    chunk_of_key = torch.arange(count, device=values.device) // chunk_size
    allowed = chunk_of_row[:, None] != chunk_of_key[None, :]
    scale = inverse_temperature.view(1, -1, 1, 1, 1).to(patches.dtype)
    queries = F.normalize(patches[:, :, :, patch_rows], dim=-1) * scale
    out = _attend(queries, patches, values.unsqueeze(0).expand_as(patches), allowed)
    return out.mean(dim=0)


def _dual_block(
    block: Block,
    tokens: torch.Tensor,
    settings: Settings,
    layout: TokenLayout,
    rows: torch.Tensor,
    prefix_only: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One block on both paths: (original output x^l, self-self residual Z^l at ``rows``).

    The GEM path never feeds forward (each of its layers reads the original
    path), and only the target frame's patches are read from it, so its
    outputs are computed for those ``rows`` alone.

    ``prefix_only``: compute the original path for the prefix (class) tokens
    alone. The last block's patch outputs are never used — the GEM terms stop
    at its input, and only the class token is read from its output — so this
    saves the last block's attention queries, out-projection and MLP for all
    patches.
    """
    import torch.nn.functional as F

    batch, length, width = tokens.shape
    heads = block.num_heads
    head_dim = width // heads
    normed = block.ln_1(tokens)
    qkv = F.linear(normed, block.in_proj_weight, block.in_proj_bias)
    qkv = qkv.view(batch, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    kept = layout.prefix_tokens if prefix_only else length
    original = F.scaled_dot_product_attention(qkv[0][:, :, :kept], qkv[1], qkv[2])
    attended = original.transpose(1, 2).reshape(batch, kept, width)
    output = tokens[:, :kept] + block.layer_scale_1(block.out_proj(attended))
    output = output + block.layer_scale_2(block.mlp(block.ln_2(output)))

    if settings.temperature is None:
        inverse_temperature = adaptive_inverse_temperature(normed, head_dim)
    else:
        inverse_temperature = normed.new_full((batch,), settings.temperature)
    if settings.video_attention == "released":
        self_self = released_self_self_attention(
            qkv, inverse_temperature, settings.iterations, layout, rows, settings.outside_weight
        )
    else:
        self_self = self_self_attention(qkv, inverse_temperature, settings.iterations, rows)
    merged = self_self.transpose(1, 2).reshape(batch, len(rows), width)
    return output, block.layer_scale_1(block.out_proj(merged))


def gem_forward(
    adapter: BackboneAdapter, clips: torch.Tensor, settings: Settings, target_frame: int
) -> GemPass:
    """The one visual pass: original path through all blocks, GEM beside the last K.

    ``clips``: normalized pixels ``[B, T, 3, S, S]``; ``target_frame``: the
    clip frame whose patches the heatmaps are read from. ``settings`` are
    checked against the adapter (and their "auto" choices made) unless they
    already were (:meth:`vgem.settings.Settings.for_adapter`).
    """
    import torch

    if settings.depth is None or settings.video_attention == "auto":
        settings = settings.for_adapter(adapter)
    depth = int(settings.depth or 0)

    layout = adapter.token_layout()
    target_tokens = torch.tensor(layout.patch_token_indices(target_frame), device=clips.device)
    blocks = adapter.blocks
    first_gem_block = len(blocks) - depth
    with full_precision(clips.device):  # see there: most of bf16's error, little time
        tokens = adapter.embed(clips)
    for block in blocks[:first_gem_block]:
        tokens = run_block(block, tokens)
    terms = [tokens[:, target_tokens]]
    class_increments = []
    last = len(blocks) - 1
    for index, block in enumerate(blocks[first_gem_block:], start=first_gem_block):
        output, residual = _dual_block(
            block, tokens, settings, layout, target_tokens, prefix_only=index == last
        )
        terms.append(residual)
        class_increments.append(output[:, 0] - tokens[:, 0])
        tokens = output
    final_class = tokens[:, 0]
    removal_count = settings.removal_layers
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
