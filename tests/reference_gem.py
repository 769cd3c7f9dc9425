"""A deliberately naive re-computation of docs/method.md, for tests only.

Written straight from the formulas: explicit loops over heads and chunks,
materialized attention matrices, softmax by hand, weights built from the
literal lists in docs/method.md. It shares no code with vgem.gem or
vgem.weighting, so agreement means the fast path computes the method.
"""

from __future__ import annotations

import torch


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _softmax(scores: torch.Tensor) -> torch.Tensor:
    shifted = scores - scores.max(dim=-1, keepdim=True).values
    exp = shifted.exp()
    return exp / exp.sum(dim=-1, keepdim=True)


def _split_heads(h: torch.Tensor, block) -> list[tuple[torch.Tensor, ...]]:
    """Per head (q, k, v) of one clip: h [N, C] → list of ([N, d], [N, d], [N, d])."""
    width = h.shape[-1]
    heads = block.num_heads
    head_dim = width // heads
    qkv = h @ block.in_proj_weight.T + block.in_proj_bias
    q, k, v = qkv[:, :width], qkv[:, width : 2 * width], qkv[:, 2 * width :]
    return [
        (
            q[:, i * head_dim : (i + 1) * head_dim],
            k[:, i * head_dim : (i + 1) * head_dim],
            v[:, i * head_dim : (i + 1) * head_dim],
        )
        for i in range(heads)
    ]


def naive_self_self(p: torch.Tensor, v: torch.Tensor, inv_temp: float, iterations: int):
    """§2 steps 1–3 for one stream P of one head."""
    p = _normalize(p)
    for _ in range(iterations):
        p = _softmax(p @ p.T * inv_temp) @ p
        p = _normalize(p)
    return _softmax(p @ p.T * inv_temp) @ v


def naive_original_attention(q, k, v):
    return _softmax(q @ k.T * q.shape[-1] ** -0.5) @ v


def naive_gem_residual(block, x_prev, iterations, temperature=None, released=None):
    """Z^l for one clip ``x_prev`` [N, C]. ``released`` = (prefix, chunks, chunk_size, w)."""
    h = block.ln_1(x_prev)
    head_dim = h.shape[-1] // block.num_heads
    if temperature is None:
        inv_temp = float(h.norm(dim=-1).mean()) * head_dim**-0.5
    else:
        inv_temp = temperature
    outputs = []
    for q, k, v in _split_heads(h, block):
        if released is None:
            streams = [naive_self_self(p, v, inv_temp, iterations) for p in (q, k, v)]
            outputs.append((streams[0] + streams[1] + streams[2]) / 3)
            continue
        prefix, chunks, chunk_size, outside_weight = released
        head_out = torch.zeros_like(v)
        head_out[:prefix] = naive_original_attention(q, k, v)[:prefix]
        for c in range(chunks):
            rows = slice(prefix + c * chunk_size, prefix + (c + 1) * chunk_size)
            inside = sum(naive_self_self(p[rows], v[rows], inv_temp, iterations) for p in (q, k, v))
            inside = inside / 3
            others = [i for i in range(prefix, v.shape[0]) if not rows.start <= i < rows.stop]
            if iterations >= 1:  # queries vanish after an iteration: a uniform mean
                outside = v[others].mean(dim=0, keepdim=True).expand_as(inside)
            else:  # normalized in-chunk queries against the raw other-chunk projections
                outside = sum(
                    _softmax(_normalize(p[rows]) @ p[others].T * inv_temp) @ v[others]
                    for p in (q, k, v)
                )
                outside = outside / 3
            head_out[rows] = (inside + outside_weight * outside) / (1 + outside_weight)
        outputs.append(head_out)
    merged = torch.cat(outputs, dim=-1)
    return block.layer_scale_1(block.out_proj(merged))


def naive_block(block, x):
    h = block.ln_1(x)
    outputs = [naive_original_attention(q, k, v) for q, k, v in _split_heads(h, block)]
    x = x + block.layer_scale_1(block.out_proj(torch.cat(outputs, dim=-1)))
    return x + block.layer_scale_2(block.mlp(block.ln_2(x)))


def naive_terms(adapter, clip, depth, iterations=1, temperature=None, released_weight=None):
    """x^{L-K}, the K residuals Z, and every x^l, for one clip [T, 3, S, S]."""
    layout = adapter.token_layout()
    released = None
    if released_weight is not None:
        released = (layout.prefix_tokens, layout.frames, layout.patches_per_frame, released_weight)
    x = adapter.embed(clip.unsqueeze(0))[0]
    blocks = list(adapter.blocks)
    states = [x]
    terms = []
    for index, block in enumerate(blocks):
        if index == len(blocks) - depth:
            terms.append(x)
        if index >= len(blocks) - depth:
            terms.append(naive_gem_residual(block, x, iterations, temperature, released))
        x = naive_block(block, x)
        states.append(x)
    return terms, states


STATIC = [0.3, 0.4, 0.5, 0.6, 0.7, 0.9, 0.9, 0.9]


def naive_weights(mode, adapter, states, text, depth=7, layers=3, tau=20.0):
    """§3's weights for one prompt ``text`` [D] (normalized), K = ``depth``."""
    if mode == "none":
        return [1.0] * (depth + 1)
    if mode == "static":
        return STATIC[-(depth + 1) :]
    final = states[-1]
    similarities = []
    for layer in range(len(states) - layers, len(states)):
        removed = final - (states[layer] - states[layer - 1])
        embedding = adapter.head(removed[0])
        similarities.append(float(_normalize(embedding) @ text))
    exps = [torch.exp(torch.tensor(-tau * s)) for s in similarities]
    dynamic = [float(e / sum(exps)) for e in exps]
    if mode == "dynamic":
        return [1.0] * (depth + 1 - layers) + [2 / 3 + w for w in dynamic]
    base = STATIC[-(depth + 1) :]
    return base[: depth + 1 - layers] + [2 / 3 - 0.1 + w for w in dynamic]


def naive_similarity(adapter, terms, weights, text, target_frame=0):
    """Cosine map [h, w] of the target frame's patches with ``text``."""
    layout = adapter.token_layout()
    mixed = sum(w * t for w, t in zip(weights, terms, strict=True))
    features = _normalize(adapter.head(mixed))
    rows = layout.patch_token_indices(target_frame)
    return (features[rows] @ text).reshape(layout.grid)
