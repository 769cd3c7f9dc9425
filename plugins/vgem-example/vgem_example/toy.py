"""The ``toy-vit`` model and its adapter: the contract on PyTorch's own layers.

``ToyClip`` is a tiny CLIP-shaped model with random weights (its heatmaps
mean nothing): a patch convolution, a class token, positional embeddings,
``ln_pre``, pre-norm ``nn.TransformerEncoderLayer`` blocks, ``ln_post`` and a
projection; its text side is a bag of hashed words. ``ToyAdapter`` shows
what a backbone plugin writes: views on the model's own modules, never a
copy, so GEM adds no weights and ``adapter.to()`` moves everything.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from vgem.backbones.base import BackboneAdapter, Block, Preprocessing, TokenLayout
from vgem.backbones.openclip import resample_position_embedding

WIDTH, LAYERS, HEADS, PATCH, TRAINED_SIZE, EMBED_DIM, VOCABULARY = 32, 2, 2, 8, 32, 16, 4096
INPUT_SIZE = 64


class ToyClip(nn.Module):
    """A CLIP-shaped toy. ``encode_image`` is its own forward, used as the reference."""

    def __init__(self) -> None:
        super().__init__()
        grid = TRAINED_SIZE // PATCH
        self.conv = nn.Conv2d(3, WIDTH, PATCH, stride=PATCH, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(WIDTH) * 0.5)
        self.position_embedding = nn.Parameter(torch.randn(1 + grid * grid, WIDTH) * 0.5)
        self.ln_pre = nn.LayerNorm(WIDTH)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                WIDTH,
                HEADS,
                4 * WIDTH,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(LAYERS)
        )
        self.ln_post = nn.LayerNorm(WIDTH)
        self.proj = nn.Linear(WIDTH, EMBED_DIM, bias=False)
        self.word_embedding = nn.EmbeddingBag(VOCABULARY, WIDTH, mode="mean")
        self.text_proj = nn.Linear(WIDTH, EMBED_DIM, bias=False)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, S, S]`` to tokens after ``ln_pre``, class token first."""
        patches = self.conv(images)
        grid = tuple(patches.shape[-2:])
        patches = patches.flatten(2).transpose(1, 2)
        class_token = self.class_embedding.expand(patches.shape[0], 1, -1)
        tokens = torch.cat([class_token, patches], dim=1)
        return self.ln_pre(tokens + resample_position_embedding(self.position_embedding, grid))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens(images)
        for layer in self.layers:
            tokens = layer(tokens)
        return self.proj(self.ln_post(tokens[:, 0]))

    def encode_text(self, word_ids: list[list[int]]) -> torch.Tensor:
        flat = torch.tensor([i for ids in word_ids for i in ids], device=self.proj.weight.device)
        offsets = torch.tensor([0, *map(len, word_ids[:-1])], device=flat.device).cumsum(0)
        return self.text_proj(self.word_embedding(flat, offsets))


def word_ids(text: str) -> list[int]:
    """Start and end markers around hashed lower-case words: a stable toy tokenizer."""
    words = text.lower().split()
    return [
        0,
        *(1 + zlib.crc32(word.encode()) % (VOCABULARY - 2) for word in words),
        VOCABULARY - 1,
    ]


class ToyAdapter(BackboneAdapter):
    """``ToyClip`` seen the way GEM needs it."""

    def __init__(self, model: ToyClip, *, weights_source: str, input_size: int = INPUT_SIZE):
        self.model = model.eval()
        self.module = model  # owns every parameter: adapter.to() moves them all
        self.name = "toy-vit"
        self.weights_source = weights_source
        self.context_length = 32
        self.preprocessing = Preprocessing(
            input_size=input_size, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
        )

    def embed(self, clip: torch.Tensor) -> torch.Tensor:
        return self.model.tokens(clip[:, 0])  # an image model: one frame per clip

    @property
    def blocks(self) -> list[Block]:
        """Built on each read from the layers' own modules (views, never copies)."""
        return [
            Block(
                ln_1=layer.norm1,
                in_proj_weight=layer.self_attn.in_proj_weight,
                in_proj_bias=layer.self_attn.in_proj_bias,
                num_heads=layer.self_attn.num_heads,
                out_proj=layer.self_attn.out_proj,
                ln_2=layer.norm2,
                mlp=nn.Sequential(layer.linear1, nn.GELU(), layer.linear2),
            )
            for layer in self.model.layers
        ]

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.proj(self.model.ln_post(tokens))

    def token_layout(self) -> TokenLayout:
        side = self.preprocessing.input_size // PATCH
        return TokenLayout(frames=1, grid=(side, side), prefix_tokens=1, order="frame-major")

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode_text([word_ids(text)[: self.context_length] for text in texts])

    def count_tokens(self, text: str) -> int:
        return len(word_ids(text))

    def encode_clip(self, clip: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(clip[:, 0])  # the model's own forward


def load_toy(weights: str | None = None, seed: int = 0, input_size: int = INPUT_SIZE) -> ToyAdapter:
    """Seeded random weights, or a checkpoint read safely (safetensors or weights-only)."""
    from vgem.checkpoints import check_state_dict, read_checkpoint, unwrap_state_dict

    torch.manual_seed(seed)
    model = ToyClip()
    if weights is None:
        return ToyAdapter(model, weights_source=f"random (seed {seed})", input_size=input_size)
    state = unwrap_state_dict(read_checkpoint(weights), weights)
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    check_state_dict(expected, state, weights, "toy-vit")
    model.load_state_dict(state)
    return ToyAdapter(model, weights_source=str(Path(weights)), input_size=input_size)
