"""Tiny random ViCLIP models and checkpoints in the released layouts, for fast offline tests."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vgem.backbones.viclip.model import ViCLIP, ViCLIPConfig

# The text tower keeps CLIP's real vocabulary so the real tokenizer can drive it.
TINY = ViCLIPConfig(
    name="viclip-tiny",
    title="ViCLIP-tiny",
    vision_width=32,
    vision_layers=2,
    vision_heads=2,
    patch_size=8,
    embed_dim=16,
    text_width=32,
    text_layers=2,
    text_heads=2,
    input_size=32,
    frames=8,
)


def random_model(config: ViCLIPConfig = TINY, seed: int = 0) -> ViCLIP:
    """A model whose every parameter is non-trivial, so no wiring mistake hides behind a 0 or 1.

    PyTorch initialises LayerNorms to (1, 0), attention biases and the
    temporal embedding to zeros; those are randomised here.
    """
    torch.manual_seed(seed)
    model = ViCLIP(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.LayerNorm):
                module.weight.copy_(1 + 0.2 * torch.randn_like(module.weight))
                module.bias.copy_(0.1 * torch.randn_like(module.bias))
            if isinstance(module, nn.MultiheadAttention):
                module.in_proj_bias.copy_(0.1 * torch.randn_like(module.in_proj_bias))
                module.out_proj.bias.copy_(0.1 * torch.randn_like(module.out_proj.bias))
        temporal = model.vision_encoder.temporal_positional_embedding
        temporal.copy_(0.3 * torch.randn_like(temporal))
        model.temp.fill_(0.05)
    return model.eval()


def official_state(model: ViCLIP) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def save_pth(state: dict[str, torch.Tensor], path: Path, wrap: bool = True) -> Path:
    """The official release layout: ``{"model": state_dict}`` (or a bare state dict)."""
    torch.save({"model": state} if wrap else state, path)
    return path


def save_safetensors(state: dict[str, torch.Tensor], path: Path, prefix: str = "") -> Path:
    """The hub release layout: one flat safetensors file, keys optionally prefixed."""
    from safetensors.torch import save_file

    save_file({prefix + key: value.contiguous() for key, value in state.items()}, str(path))
    return path


def random_clip(config: ViCLIPConfig = TINY, batch: int = 2, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    size = config.input_size
    return torch.randn(batch, config.frames, 3, size, size, generator=generator)
