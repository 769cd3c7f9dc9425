"""A fake backbone whose heatmap is planted by the video's pixels.

Each patch token is ``[brightness, 0.05, 0, 0]`` and every text embeds to
``[1, 0, 0, 0]``; the blocks are all-zero, so the GEM features are the tokens
themselves and the brightest patch of the target frame is where every prompt
points. Tests draw a bright square at a known place and check where vgem says
it is, in original-video pixels, for any video size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vgem.backbones.base import BackboneAdapter, BackboneSpec, Block, Preprocessing, TokenLayout

INPUT_SIZE = 64
PATCH = 8
GRID = INPUT_SIZE // PATCH
WIDTH = 4


def _zero_linear(inputs: int, outputs: int) -> nn.Linear:
    layer = nn.Linear(inputs, outputs)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class PlantedAdapter(BackboneAdapter):
    def __init__(self, frames: int = 1, layers: int = 4, name: str = "planted") -> None:
        self.name = name
        self.weights_source = "planted"
        self.context_length = 77
        self.preprocessing = Preprocessing(
            input_size=INPUT_SIZE,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            frames_per_clip=frames,
            target_index=frames // 2,
        )
        self.module = nn.ModuleList()
        self._blocks = []
        for _ in range(layers):
            attention_in = _zero_linear(WIDTH, 3 * WIDTH)
            parts = nn.ModuleDict(
                {
                    "attention_in": attention_in,
                    "out_proj": _zero_linear(WIDTH, WIDTH),
                    "mlp": _zero_linear(WIDTH, WIDTH),
                }
            )
            self.module.append(parts)
            self._blocks.append(
                Block(
                    ln_1=nn.Identity(),
                    in_proj_weight=attention_in.weight,
                    in_proj_bias=attention_in.bias,
                    num_heads=1,
                    out_proj=parts["out_proj"],
                    ln_2=nn.Identity(),
                    mlp=parts["mlp"],
                )
            )

    @property
    def blocks(self) -> Sequence[Block]:
        return self._blocks

    def token_layout(self) -> TokenLayout:
        frames = self.preprocessing.frames_per_clip
        return TokenLayout(frames=frames, grid=(GRID, GRID), prefix_tokens=1)

    def embed(self, clip: torch.Tensor) -> torch.Tensor:
        batch, frames = clip.shape[:2]
        brightness = clip.mean(dim=2)  # [B, T, S, S]
        patches = brightness.reshape(batch, frames, GRID, PATCH, GRID, PATCH).mean(dim=(3, 5))
        patches = patches.reshape(batch, frames * GRID * GRID, 1)
        tokens = torch.cat(
            [patches, torch.full_like(patches, 0.05), torch.zeros_like(patches).expand(-1, -1, 2)],
            dim=-1,
        )
        class_token = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]]).expand(batch, 1, WIDTH)
        return torch.cat([class_token, tokens], dim=1)

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([[1.0, 0.0, 0.0, 0.0]]).expand(len(texts), WIDTH).clone()

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2


PLANTED = BackboneSpec(
    summary="planted heatmaps (tests)", load=lambda variant, weights: PlantedAdapter()
)


def planted_frame(width: int, height: int, patch_row: int, patch_column: int):
    """A dark frame, bright exactly where patch (row, column) of the model input falls."""
    import numpy as np

    frame = np.full((height, width, 3), 20, dtype=np.uint8)
    x0 = round(patch_column * PATCH * width / INPUT_SIZE)
    x1 = round((patch_column + 1) * PATCH * width / INPUT_SIZE)
    y0 = round(patch_row * PATCH * height / INPUT_SIZE)
    y1 = round((patch_row + 1) * PATCH * height / INPUT_SIZE)
    frame[y0:y1, x0:x1] = 235
    return frame


def patch_centre_pixels(patch_row: int, patch_column: int) -> tuple[set[int], set[int]]:
    """Model-input pixels (x, y) where the bilinear peak of a patch can land.

    A patch's value is reached between its two middle pixels; which of the two
    wins depends on rounding in the neighbours, so both are accepted.
    """
    middle_x = patch_column * PATCH + PATCH // 2
    middle_y = patch_row * PATCH + PATCH // 2
    return {middle_x - 1, middle_x}, {middle_y - 1, middle_y}
