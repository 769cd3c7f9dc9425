"""Checks of the model views: block shapes, the final norm, the original path, text."""

from __future__ import annotations

from collections.abc import Sequence

from vgem.backbones.base import BackboneAdapter
from vgem.testing.common import (
    DEFAULT_PROMPTS,
    DEFAULT_TOLERANCE,
    ClipReference,
    ConformanceError,
    TextReference,
    clip_kind,
    evaluating,
    max_difference,
    original_path,
    sample_clip,
)

# How much head() may change when its input tokens are scaled: a final
# LayerNorm/RMSNorm makes it scale-invariant up to its epsilon.
_FINAL_NORM_TOLERANCE = 1e-2
_TOKEN_SCALE = 3.0


def check_shapes(adapter: BackboneAdapter) -> str:
    """Each method returns the shapes the contract promises.

    Later checks assume these, so :func:`check_adapter` stops here when it fails.
    """
    problems: list[str] = []
    layout = adapter.token_layout()
    preprocessing = adapter.preprocessing
    blocks = list(adapter.blocks)
    if not blocks:
        raise ConformanceError("blocks is empty: GEM needs the model's transformer blocks")
    if layout.frames != preprocessing.frames_per_clip:
        problems.append(
            f"token_layout() has {layout.frames} frame(s) but preprocessing.frames_per_clip is "
            f"{preprocessing.frames_per_clip}: GEM reads the target frame's tokens by its "
            "index in the clip"
        )
    if not isinstance(adapter.context_length, int) or adapter.context_length < 2:
        problems.append(
            f"context_length must be an int of at least 2, not {adapter.context_length!r}"
        )
    with evaluating(adapter):
        clip = sample_clip(adapter)
        tokens = adapter.embed(clip)
        expected = (clip.shape[0], layout.num_tokens)
        if tokens.ndim != 3 or tuple(tokens.shape[:2]) != expected:
            problems.append(
                f"embed() returned {list(tokens.shape)} but token_layout() describes "
                f"[{expected[0]}, {layout.num_tokens}, C] ({layout.prefix_tokens} prefix + "
                f"{layout.frames} frame(s) x {layout.grid[0]}x{layout.grid[1]} patches)"
            )
            raise ConformanceError(problems)
        width = tokens.shape[-1]
        for number, block in enumerate(blocks):
            problems.extend(_block_shape_problems(number, block, width))
        features = adapter.head(tokens[:, 0])
        if features.ndim != 2 or features.shape[0] != clip.shape[0]:
            problems.append(f"head() of [B, C] class tokens returned {list(features.shape)}")
        many = adapter.head(tokens[:, None, :3].expand(-1, 2, -1, -1))
        if tuple(many.shape[:3]) != (clip.shape[0], 2, 3):
            problems.append(
                "head() must act on tokens with any leading dimensions ([..., C] → [..., D]); "
                f"[B, 2, 3, C] gave {list(many.shape)}"
            )
    if problems:
        raise ConformanceError(problems)
    return f"{layout.num_tokens} tokens of width {width}, {len(blocks)} blocks"


def _block_shape_problems(number: int, block, width: int) -> list[str]:
    problems = []
    if width % block.num_heads:
        problems.append(
            f"block {number}: width {width} is not divisible by {block.num_heads} heads"
        )
    if tuple(block.in_proj_weight.shape) != (3 * width, width):
        problems.append(
            f"block {number}: in_proj_weight is {list(block.in_proj_weight.shape)}, expected "
            f"[{3 * width}, {width}] (q, k and v weights stacked in that order)"
        )
    if block.in_proj_bias is not None and tuple(block.in_proj_bias.shape) != (3 * width,):
        problems.append(
            f"block {number}: in_proj_bias is {list(block.in_proj_bias.shape)}, "
            f"expected [{3 * width}]"
        )
    return problems


def check_final_norm(adapter: BackboneAdapter) -> str:
    """``head()`` starts with the final norm (``ln_post``).

    A LayerNorm (or RMSNorm) makes ``head(a·x) == head(x)`` for any a > 0; a
    head that is only the projection scales with its input. The property is
    checked on the model's own final tokens, so it needs no reference.
    """
    with evaluating(adapter):
        tokens = original_path(adapter, sample_clip(adapter))[:, :4]
        plain = adapter.head(tokens)
        scaled = adapter.head(tokens * _TOKEN_SCALE)
    _, relative = max_difference(scaled, plain)
    if relative > _FINAL_NORM_TOLERANCE:
        raise ConformanceError(
            f"missing final norm: head() changes by {relative:.3g} (relative) when its input "
            f"tokens are scaled by {_TOKEN_SCALE:g}, so it does not start with the final norm; "
            "head() must apply ln_post (the final LayerNorm) and then the projection"
        )
    return f"head() is scale-invariant (relative change {relative:.1e})"


def check_original_path(
    adapter: BackboneAdapter,
    *,
    reference_clip: ClipReference | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """embed → ``run_block`` over ``blocks`` → ``head`` of the class token reproduces
    the model's own image/video embedding.

    The reference is ``reference_clip(clip)`` if given, else ``adapter.encode_clip``,
    which an adapter must override with its model's own encode function:
    BackboneAdapter's default *is* the block path, so comparing against it
    would prove nothing.
    """
    independent = type(adapter).encode_clip is not BackboneAdapter.encode_clip
    if reference_clip is None and not independent:
        raise ConformanceError(
            "encode_clip() is BackboneAdapter's default, which is the block path itself, so "
            "nothing independent checks embed(), blocks and head(): override encode_clip() "
            "to call your model's own image/video encoder, or pass reference_clip="
        )
    reference = reference_clip or adapter.encode_clip
    what = clip_kind(adapter)
    with evaluating(adapter):
        clip = sample_clip(adapter)
        path = adapter.head(original_path(adapter, clip)[:, 0])
        try:
            own = reference(clip)
        except Exception as error:
            raise ConformanceError(
                f"the model's own {what} embedding failed on a clip of "
                f"{list(clip.shape)} at the adapter's input size: {type(error).__name__}: "
                f"{error} (encode_clip must accept clips at preprocessing.input_size, "
                "positional embeddings resampled as embed() resamples them)"
            ) from error
    if tuple(path.shape) != tuple(own.shape):
        raise ConformanceError(
            f"the original path gives {what} features {list(path.shape)} but the model's own "
            f"{what} embedding is {list(own.shape)}: check head() (ln_post, then proj)"
        )
    absolute, relative = max_difference(path, own)
    if relative > tolerance:
        hints = _path_hints(adapter, path, own, tolerance)
        raise ConformanceError(
            f"the original path does not reproduce the model's own {what} embedding (max diff "
            f"{absolute:.3g}, relative {relative:.3g}): check embed(), the blocks' order and "
            f"views (fused q/k/v in-projection, LayerScales) or head(){hints}"
        )
    return f"max relative difference {relative:.1e} against the model's own {what} embedding"


def _path_hints(adapter: BackboneAdapter, path, own, tolerance: float) -> str:
    import torch.nn.functional as F

    try:
        check_final_norm(adapter)
    except ConformanceError:
        return "; head() seems to skip the final norm (ln_post)"
    if max_difference(F.normalize(path, dim=-1), own)[1] <= tolerance:
        return "; encode_clip() returns normalized embeddings, head() does not normalize"
    return ""


def check_text_encoder(
    adapter: BackboneAdapter,
    *,
    reference_text: TextReference | None = None,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """``encode_text`` gives projected embeddings that match the model's own.

    Always checked: one finite row per prompt, of the image features'
    dimension (a text encoder that skips the text projection usually has the
    text width instead), and that encoding prompts together gives each the
    embedding it gets alone (padding must not leak into the pooled token).
    With ``reference_text`` (the model's own text embedding, projection
    included, e.g. ``lambda texts: model.get_text_features(**tokenizer(texts, ...))``),
    the values are compared too.
    """
    import torch

    prompts = list(prompts)
    with evaluating(adapter):
        together = adapter.encode_text(prompts)
        alone = torch.cat([adapter.encode_text([prompt]) for prompt in prompts])
        image_dimension = adapter.head(adapter.embed(sample_clip(adapter, batch=1))[:, 0]).shape[-1]
        reference = reference_text(prompts) if reference_text is not None else None
    if together.ndim != 2 or together.shape[0] != len(prompts):
        raise ConformanceError(
            f"encode_text() of {len(prompts)} prompts returned {list(together.shape)}, "
            f"expected [{len(prompts)}, D]"
        )
    if not torch.isfinite(together).all():
        raise ConformanceError("encode_text() returned non-finite values")
    dimension = together.shape[-1]
    if dimension != image_dimension:
        raise ConformanceError(
            f"text encoder skips the projection: encode_text() gives {dimension}-dim "
            f"embeddings but the image features are {image_dimension}-dim; encode_text() must "
            "end with the text projection, as the model's own text embedding does"
        )
    absolute, relative = max_difference(alone, together)
    if relative > tolerance:
        raise ConformanceError(
            f"encode_text() gives a prompt a different embedding when it is encoded together "
            f"with others (max diff {absolute:.3g}): pool at the end token and keep padding out "
            "of it"
        )
    if reference is None:
        return "shapes and batching only (pass reference_text= to compare values)"
    if reference.shape[-1] != dimension:
        raise ConformanceError(
            f"text encoder skips the projection: encode_text() gives {dimension}-dim embeddings "
            f"but the reference text embedding is {reference.shape[-1]}-dim"
        )
    absolute, relative = max_difference(together, reference.to(together))
    if relative > tolerance:
        raise ConformanceError(
            f"encode_text() does not match the model's own text embedding (max diff "
            f"{absolute:.3g}, relative {relative:.3g}): check the tokenizer (ids, start and end "
            "tokens, context length), the end-token pooling, ln_final and that the text "
            "projection is applied"
        )
    return f"max relative difference {relative:.1e} against reference_text"
