"""A transformers ``CLIPModel`` seen through vgem's backbone contract.

HF's CLIP vision tower is the same pre-norm ViT as OpenAI's, named
differently: ``embeddings`` (patch conv, class and position embeddings),
``pre_layrnorm``, ``encoder.layers`` (``layer_norm1``, ``self_attn`` with
separate q/k/v projections, ``layer_norm2``, ``mlp``), ``post_layernorm`` and
``visual_projection``. Every view handed to GEM is one of those modules,
except the fused in-projection, which the contract wants as one tensor: it is
concatenated from q, k and v each time ``blocks`` is read, so it always
follows the module's device, dtype and values.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from vgem.backbones.base import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    BackboneAdapter,
    Block,
    Preprocessing,
    TokenLayout,
)
from vgem.backbones.openclip import GEM_INPUT_SIZE, resample_position_embedding
from vgem.errors import SettingsError

if TYPE_CHECKING:
    import torch
    from torch import nn


class HfClipAdapter(BackboneAdapter):
    """A loaded ``CLIPModel`` and its tokenizer, run at ``input_size`` (448 for GEM)."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        name: str,
        weights_source: str,
        input_size: int = GEM_INPUT_SIZE,
        mean: tuple[float, float, float] = OPENAI_CLIP_MEAN,
        std: tuple[float, float, float] = OPENAI_CLIP_STD,
    ) -> None:
        check_supported(model, name)
        self.model = model.eval()
        self.module = model
        self.vision = model.vision_model
        self.tokenizer = tokenizer
        self.name = name
        self.weights_source = weights_source
        self.context_length = int(model.config.text_config.max_position_embeddings)
        self.patch_size = int(self.vision.config.patch_size)
        if input_size % self.patch_size:
            raise SettingsError(
                f"Input size {input_size} is not a multiple of {name}'s patch {self.patch_size}."
            )
        self.preprocessing = Preprocessing(input_size=input_size, mean=mean, std=std)

    def embed(self, clip: torch.Tensor) -> torch.Tensor:
        import torch

        if clip.ndim != 5 or clip.shape[1] != 1:
            raise ValueError(f"image backbones take clips [B, 1, 3, S, S], not {tuple(clip.shape)}")
        embeddings = self.vision.embeddings
        patches = embeddings.patch_embedding(clip[:, 0].to(embeddings.patch_embedding.weight.dtype))
        grid = tuple(patches.shape[-2:])
        patches = patches.flatten(2).transpose(1, 2)  # row-major patches: frame-major tokens
        class_token = embeddings.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        tokens = torch.cat([class_token, patches], dim=1)
        positions = resample_position_embedding(embeddings.position_embedding.weight, grid)
        return self.vision.pre_layrnorm(tokens + positions.to(tokens.dtype))

    @property
    def blocks(self) -> list[Block]:
        return [_block_view(layer) for layer in self.vision.encoder.layers]

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.visual_projection(self.vision.post_layernorm(tokens))

    def token_layout(self) -> TokenLayout:
        side = self.preprocessing.input_size // self.patch_size
        return TokenLayout(frames=1, grid=(side, side), prefix_tokens=1, order="frame-major")

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        output = self.model.get_text_features(
            input_ids=batch["input_ids"].to(self.device),
            attention_mask=batch["attention_mask"].to(self.device),
        )
        return pooled(output)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])

    def encode_clip(self, clip: torch.Tensor) -> torch.Tensor:
        """``CLIPModel.get_image_features``: the model's own forward.

        At a size other than the trained one HF interpolates positions with
        plain bicubic; GEM resamples them with antialiased bicubic, as
        :meth:`embed` does. For that call only, HF's interpolation is swapped
        for GEM's, so the reference differs from the block path in nothing but
        the code that runs the blocks.
        """
        pixels = clip[:, 0]
        trained = int(self.vision.config.image_size)
        if tuple(pixels.shape[-2:]) == (trained, trained):
            return pooled(self.model.get_image_features(pixel_values=pixels))
        with _gem_position_resampling(self.vision.embeddings, self.patch_size):
            output = self.model.get_image_features(
                pixel_values=pixels, interpolate_pos_encoding=True
            )
        return pooled(output)


def pooled(output: Any) -> torch.Tensor:
    """The projected embedding: transformers 4 returns it, 5 wraps it as ``pooler_output``."""
    import torch

    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _block_view(layer: nn.Module) -> Block:
    """One ``CLIPEncoderLayer`` as a contract block, q/k/v fused in that order."""
    import torch

    attention = layer.self_attn
    projections = (attention.q_proj, attention.k_proj, attention.v_proj)
    biases = [projection.bias for projection in projections]
    return Block(
        ln_1=layer.layer_norm1,
        in_proj_weight=torch.cat([projection.weight for projection in projections]),
        in_proj_bias=None if any(bias is None for bias in biases) else torch.cat(biases),
        num_heads=int(attention.num_heads),
        out_proj=attention.out_proj,
        ln_2=layer.layer_norm2,
        mlp=layer.mlp,
    )


@contextmanager
def _gem_position_resampling(embeddings: nn.Module, patch_size: int) -> Iterator[None]:
    """Make ``embeddings.interpolate_pos_encoding`` GEM's resampling, for one call."""

    def resampled(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        grid = (height // patch_size, width // patch_size)
        positions = resample_position_embedding(embeddings.position_embedding.weight, grid)
        return positions.unsqueeze(0).to(tokens.dtype)

    embeddings.interpolate_pos_encoding = resampled
    try:
        yield
    finally:
        del embeddings.interpolate_pos_encoding


def check_supported(model: nn.Module, name: str) -> None:
    """GEM needs HF's plain CLIP ViT: class token, separate q/k/v, 1/sqrt(d) scale.

    vgem's ``run_block`` uses scaled-dot-product attention with its default
    scale 1/sqrt(head_dim); ``CLIPAttention`` applies its own ``scale``, which
    is the same number for every CLIP checkpoint, and is checked here.
    """
    reasons = []
    vision = getattr(model, "vision_model", None)
    if vision is None or getattr(model, "visual_projection", None) is None:
        reasons.append("it is not a CLIPModel (no vision_model and visual_projection)")
    else:
        embeddings = vision.embeddings
        if not all(
            hasattr(embeddings, part)
            for part in ("class_embedding", "patch_embedding", "position_embedding")
        ):
            reasons.append("its vision embeddings are not CLIP's (class, patch, position)")
        for number, layer in enumerate(vision.encoder.layers):
            attention = getattr(layer, "self_attn", None)
            if attention is None or not all(
                hasattr(attention, part) for part in ("q_proj", "k_proj", "v_proj", "out_proj")
            ):
                reasons.append(f"layer {number} has no separate q/k/v projections")
                break
            head_dim = attention.embed_dim // attention.num_heads
            if abs(float(attention.scale) - head_dim**-0.5) > 1e-9:
                reasons.append(
                    f"layer {number} scales attention by {attention.scale}, not 1/sqrt({head_dim})"
                )
                break
    if reasons:
        raise SettingsError(f"Backbone {name} cannot run GEM: {'; '.join(reasons)}.")
