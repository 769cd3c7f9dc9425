"""ViCLIP (InternVid's video CLIP) as plain PyTorch modules, written for vgem.

Parameter names follow the official release (``vision_encoder.*``,
``text_encoder.*``, ``temp``) so that released checkpoints load with strict key
matching and no renaming table to maintain.
The vision tower is a CLIP ViT whose patch embedding is a Conv3d with a
temporal kernel of 1, one class token per clip and a temporal positional
embedding added to patch tokens laid out patch-major: ``(patch, frame)``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ViCLIPConfig:
    """The shape of one ViCLIP model; tiny ones are valid too (tests use them)."""

    name: str
    title: str
    vision_width: int
    vision_layers: int
    vision_heads: int
    patch_size: int
    embed_dim: int
    text_width: int
    text_layers: int
    text_heads: int
    vocab_size: int = 49408
    context_length: int = 32
    input_size: int = 224
    frames: int = 8

    def __post_init__(self) -> None:
        sizes = {
            "vision_width": self.vision_width,
            "vision_layers": self.vision_layers,
            "vision_heads": self.vision_heads,
            "patch_size": self.patch_size,
            "embed_dim": self.embed_dim,
            "text_width": self.text_width,
            "text_layers": self.text_layers,
            "text_heads": self.text_heads,
            "vocab_size": self.vocab_size,
            "input_size": self.input_size,
            "frames": self.frames,
        }
        for field_name, value in sizes.items():
            if value < 1:
                raise ValueError(f"ViCLIP config {self.name}: {field_name} must be positive")
        if self.vision_width % self.vision_heads:
            raise ValueError(f"ViCLIP config {self.name}: vision_width must divide into heads")
        if self.text_width % self.text_heads:
            raise ValueError(f"ViCLIP config {self.name}: text_width must divide into heads")
        if self.input_size % self.patch_size:
            raise ValueError(f"ViCLIP config {self.name}: input_size must be a multiple of patch")
        if self.context_length < 2:
            raise ValueError(f"ViCLIP config {self.name}: context_length must hold start and end")

    @property
    def grid_size(self) -> int:
        """Patches per side at ``input_size`` (the trained positional grid)."""
        return self.input_size // self.patch_size


VICLIP_CONFIGS: dict[str, ViCLIPConfig] = {
    "viclip-b16": ViCLIPConfig(
        name="viclip-b16",
        title="ViCLIP-B/16",
        vision_width=768,
        vision_layers=12,
        vision_heads=12,
        patch_size=16,
        embed_dim=512,
        text_width=512,
        text_layers=12,
        text_heads=8,
    ),
    "viclip-l14": ViCLIPConfig(
        name="viclip-l14",
        title="ViCLIP-L/14",
        vision_width=1024,
        vision_layers=24,
        vision_heads=16,
        patch_size=14,
        embed_dim=768,
        text_width=768,
        text_layers=12,
        text_heads=12,
    ),
}


class QuickGELU(nn.Module):
    """CLIP's sigmoid approximation of GELU; the weights were trained with it."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # in place on the one temporary: this is the MLP's widest activation
        gate = hidden * 1.702
        return gate.sigmoid_().mul_(hidden)


class LayerNormFp32(nn.LayerNorm):
    """LayerNorm computed in float32, as CLIP's text tower does under half precision."""

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        normed = F.layer_norm(hidden.float(), self.normalized_shape, weight, bias, self.eps)
        return normed.to(hidden.dtype)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm block; attribute names match the checkpoint and vgem's ``Block`` view.

    ``nn.MultiheadAttention`` owns ``in_proj_weight``, ``in_proj_bias`` and
    ``out_proj``; its own kernel is a computation independent of
    ``vgem.backbones.base.run_block``, which the conformance tests rely on.
    """

    def __init__(self, width: int, heads: int, norm_layer: type[nn.LayerNorm]) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = norm_layer(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, width * 4)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(width * 4, width)),
                ]
            )
        )
        self.ln_2 = norm_layer(width)

    def forward(self, tokens: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        normed = self.ln_1(tokens)
        attended = self.attn(normed, normed, normed, need_weights=False, attn_mask=attn_mask)[0]
        tokens = tokens + attended
        return tokens + self.mlp(self.ln_2(tokens))


class Transformer(nn.Module):
    def __init__(
        self, width: int, layers: int, heads: int, norm_layer: type[nn.LayerNorm] = nn.LayerNorm
    ) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            ResidualAttentionBlock(width, heads, norm_layer) for _ in range(layers)
        )

    def forward(self, tokens: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            tokens = block(tokens, attn_mask)
        return tokens


def resample_positional_embedding(
    embedding: torch.Tensor, new_grid: tuple[int, int], prefix_tokens: int = 1
) -> torch.Tensor:
    """A ``[prefix + s*s, C]`` table resampled to ``new_grid`` (prefix rows kept).

    Bicubic with antialiasing, computed in float32, the rule timm's
    ``resample_abs_pos_embed`` applies, so other resolutions see the same
    positional field the image backbones do.
    """
    prefix_rows, grid_rows = embedding[:prefix_tokens], embedding[prefix_tokens:]
    side = math.isqrt(grid_rows.shape[0])
    if side * side != grid_rows.shape[0]:
        raise ValueError(f"positional embedding of {grid_rows.shape[0]} rows is not a square grid")
    if (side, side) == tuple(new_grid):
        return embedding
    width = embedding.shape[-1]
    image = grid_rows.reshape(1, side, side, width).permute(0, 3, 1, 2).float()
    image = F.interpolate(
        image, size=tuple(new_grid), mode="bicubic", antialias=True, align_corners=False
    )
    resampled = image.permute(0, 2, 3, 1).reshape(-1, width).to(embedding.dtype)
    return torch.cat([prefix_rows, resampled], dim=0)


def resize_temporal_embedding(embedding: torch.Tensor, frames: int) -> torch.Tensor:
    """A ``[1, T_old, C]`` temporal embedding fitted to ``frames`` frames.

    InternVid's loader rule (``load_temp_embed_with_mismatch`` with
    ``add_zero=False``): more frames are linearly interpolated over the frame
    axis (``align_corners=False``); fewer frames keep the first ones.
    """
    if frames < 1:
        raise ValueError("a clip needs at least one frame")
    old_frames = embedding.shape[1]
    if frames == old_frames:
        return embedding
    if frames < old_frames:
        return embedding[:, :frames]
    by_channel = embedding.permute(0, 2, 1).float()
    stretched = F.interpolate(by_channel, size=frames, mode="linear", align_corners=False)
    return stretched.permute(0, 2, 1).to(embedding.dtype)


class VisionTransformer(nn.Module):
    """The video tower: all frames' patch tokens attend jointly behind one class token."""

    def __init__(self, config: ViCLIPConfig) -> None:
        super().__init__()
        width, patch = config.vision_width, config.patch_size
        self.conv1 = nn.Conv3d(
            3, width, kernel_size=(1, patch, patch), stride=(1, patch, patch), bias=False
        )
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.positional_embedding = nn.Parameter(torch.empty(config.grid_size**2 + 1, width))
        self.temporal_positional_embedding = nn.Parameter(torch.zeros(1, config.frames, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, config.vision_layers, config.vision_heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.empty(width, config.embed_dim))

    def initialize(self) -> None:
        """CLIP's random initialisation of the tables (for tests and fresh training)."""
        scale = self.proj.shape[0] ** -0.5
        for table in (self.class_embedding, self.positional_embedding, self.proj):
            nn.init.normal_(table, std=scale)

    @property
    def patch_size(self) -> int:
        return self.conv1.kernel_size[-1]

    @property
    def trained_frames(self) -> int:
        return self.temporal_positional_embedding.shape[1]

    def temporal_embedding(self, frames: int) -> torch.Tensor:
        """``[frames, C]`` rows added to each frame's patch tokens.

        A single frame gets the mean row, as the official forward does for
        image input; other counts need a model built for them (the loader
        resizes the checkpoint), never a silent stretch at run time.
        """
        table = self.temporal_positional_embedding[0]
        if frames == self.trained_frames:
            return table
        if frames == 1:
            return table.mean(dim=0, keepdim=True)
        raise ValueError(
            f"this ViCLIP model was built for {self.trained_frames} frames, got {frames}: "
            f"build it with frames={frames} so the loader resizes its temporal embedding"
        )

    def embed(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels ``[B, T, 3, H, W]`` to tokens ``[B, 1 + h*w*T, C]``, through ``ln_pre``.

        Patch tokens sit patch-major: token ``1 + p*T + t`` is patch ``p``
        (row-major) of frame ``t``.
        """
        if video.ndim != 5 or video.shape[2] != 3:
            raise ValueError(f"expected a clip [B, T, 3, H, W], got {list(video.shape)}")
        height, width_px = video.shape[-2:]
        if height % self.patch_size or width_px % self.patch_size:
            raise ValueError(
                f"clip size {height}x{width_px} is not a multiple of the patch {self.patch_size}"
            )
        batch, frames = video.shape[:2]
        weight = self.conv1.weight
        patch_grid = self.conv1(video.transpose(1, 2).to(weight.dtype))  # [B, C, T, h, w]
        _, channels, _, grid_h, grid_w = patch_grid.shape
        by_patch = patch_grid.permute(0, 3, 4, 2, 1).reshape(
            batch, grid_h * grid_w, frames, channels
        )
        positions = resample_positional_embedding(self.positional_embedding, (grid_h, grid_w))
        positions = positions.to(by_patch.dtype)
        by_patch = by_patch + positions[1:, None, :]
        by_patch = by_patch + self.temporal_embedding(frames).to(by_patch.dtype)
        class_token = (self.class_embedding.to(by_patch.dtype) + positions[0]).expand(batch, 1, -1)
        tokens = torch.cat([class_token, by_patch.reshape(batch, -1, channels)], dim=1)
        return self.ln_pre(tokens)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """The video embedding ``[B, D]``: class token after ``ln_post``, ``@ proj``."""
        tokens = self.transformer(self.embed(video))
        return self.ln_post(tokens[:, 0]) @ self.proj


def causal_mask(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Additive mask that hides later tokens; built per call so it never sits in a state dict."""
    return torch.full((length, length), float("-inf"), dtype=dtype, device=device).triu(1)


class TokenEmbedding(nn.Embedding):
    """``nn.Embedding`` that skips its random fill on the meta device (see ``ViCLIP``)."""

    def reset_parameters(self) -> None:
        if not self.weight.is_meta:
            super().reset_parameters()


class TextTransformer(nn.Module):
    """CLIP's text tower: causal blocks, pooled at the end-of-text token."""

    def __init__(self, config: ViCLIPConfig) -> None:
        super().__init__()
        width = config.text_width
        self.token_embedding = TokenEmbedding(config.vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, width))
        self.transformer = Transformer(width, config.text_layers, config.text_heads, LayerNormFp32)
        self.ln_final = LayerNormFp32(width)
        self.text_projection = nn.Parameter(torch.empty(width, config.embed_dim))

    def initialize(self) -> None:
        """CLIP's random initialisation of the tables (for tests and fresh training)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=self.text_projection.shape[0] ** -0.5)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``[P, L]`` (L at most the context length) to embeddings ``[P, D]``.

        The end-of-text token has the largest id in CLIP's vocabulary, so its
        position is the argmax, as in CLIP.
        """
        length = token_ids.shape[1]
        if length > self.positional_embedding.shape[0]:
            raise ValueError(
                f"{length} tokens exceed the context length {self.positional_embedding.shape[0]}"
            )
        hidden = self.token_embedding(token_ids) + self.positional_embedding[:length]
        hidden = self.transformer(hidden, causal_mask(length, hidden.dtype, hidden.device))
        hidden = self.ln_final(hidden)
        end_positions = token_ids.argmax(dim=-1)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), end_positions]
        return pooled @ self.text_projection


class ViCLIP(nn.Module):
    """Both towers and the contrastive temperature, under the checkpoint's names."""

    def __init__(self, config: ViCLIPConfig) -> None:
        super().__init__()
        self.config = config
        self.vision_encoder = VisionTransformer(config)
        self.text_encoder = TextTransformer(config)
        # Unused for embeddings; kept because the released checkpoints carry it.
        self.temp = nn.Parameter(torch.full((), 1 / 100))
        # On the meta device (the loader's way) there is nothing to fill, and
        # random fills there cost seconds of one-off kernel imports.
        if not self.temp.is_meta:
            self.vision_encoder.initialize()
            self.text_encoder.initialize()

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        return self.vision_encoder(video)

    def encode_text(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(token_ids)
