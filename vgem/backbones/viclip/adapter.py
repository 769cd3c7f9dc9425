"""ViCLIP seen through vgem's backbone contract.

Every piece handed to the GEM pathway is a view on the model's own modules,
so GEM adds no weights and moving the model moves everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from vgem.backbones.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneAdapter,
    Block,
    Preprocessing,
    TokenLayout,
)

if TYPE_CHECKING:
    import torch

    from vgem.backbones.viclip.model import ResidualAttentionBlock, ViCLIP, ViCLIPConfig


class ViCLIPAdapter(BackboneAdapter):
    """A loaded ViCLIP: T frames around the target, patch-major tokens, one class token."""

    def __init__(self, model: ViCLIP, weights_source: str) -> None:
        config = model.config
        self.model = model
        self.module = model
        self.name = config.name
        self.weights_source = weights_source
        self.context_length = config.context_length
        # The target frame sits in the middle: 4 before, 3 after for 8 frames.
        self.preprocessing = Preprocessing(
            input_size=config.input_size,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            frames_per_clip=config.frames,
            target_index=config.frames // 2,
        )

    @property
    def config(self) -> ViCLIPConfig:
        return self.model.config

    def embed(self, clip: torch.Tensor) -> torch.Tensor:
        return self.model.vision_encoder.embed(clip)

    @property
    def blocks(self) -> list[Block]:
        """Fresh views each time, so they always point at the module's current tensors."""
        # nn.ModuleList is typed as holding plain Modules; these are the model's blocks.
        resblocks = cast(
            "Sequence[ResidualAttentionBlock]", self.model.vision_encoder.transformer.resblocks
        )
        return [
            Block(
                ln_1=block.ln_1,
                in_proj_weight=block.attn.in_proj_weight,
                in_proj_bias=block.attn.in_proj_bias,
                num_heads=block.attn.num_heads,
                out_proj=block.attn.out_proj,
                ln_2=block.ln_2,
                mlp=block.mlp,
            )
            for block in resblocks
        ]

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        vision = self.model.vision_encoder
        return vision.ln_post(tokens) @ vision.proj

    def token_layout(self) -> TokenLayout:
        grid = self.preprocessing.input_size // self.config.patch_size
        return TokenLayout(
            frames=self.preprocessing.frames_per_clip,
            grid=(grid, grid),
            prefix_tokens=1,
            order="patch-major",
        )

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        from vgem.backbones.viclip.tokenizer import tokenize

        token_ids = tokenize(texts, self.context_length).to(self.device)
        return self.model.text_encoder(token_ids)

    def count_tokens(self, text: str) -> int:
        from vgem.backbones.viclip.tokenizer import count_tokens

        return count_tokens(text)

    def encode_clip(self, clip: torch.Tensor) -> torch.Tensor:
        """The model's own video forward (``nn.MultiheadAttention``), not ``run_block``."""
        return self.model.encode_video(clip)


def load_viclip(config: ViCLIPConfig | str, weights: str | None = None) -> ViCLIPAdapter:
    """A ViCLIP adapter for a named or explicit config, weights from ``weights`` or the hub."""
    from vgem.backbones.viclip.loader import load_model
    from vgem.backbones.viclip.model import VICLIP_CONFIGS

    if isinstance(config, str):
        config = VICLIP_CONFIGS[config]
    model, source = load_model(config, weights)
    return ViCLIPAdapter(model, source)
