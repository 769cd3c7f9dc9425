"""Tiny random open_clip models and their transformers twins, shared by the tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from openclip_to_hf import randomize
from torch import nn

TINY_ARCH = "vgem-hf-tiny-vit"
# CLIP's real vocabulary (49408) so HF's and open_clip's tokenizers both apply.
TINY_CONFIG = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
PREPROCESSOR = {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3]}


def open_clip_model(arch: str, config: dict | None, seed: int) -> nn.Module:
    import logging

    import open_clip
    from open_clip import factory

    if config is not None:
        factory._MODEL_CONFIGS.setdefault(arch, config)
    torch.manual_seed(seed)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights": on purpose
    try:
        model = open_clip.create_model(arch, pretrained=None)
    finally:
        logging.getLogger().setLevel(level)
    return randomize(model, seed)


@dataclass
class Twins:
    """One set of random weights as an open_clip model and as a transformers CLIPModel."""

    arch: str
    open_clip: nn.Module
    hf: nn.Module
    tokenizer: object

    def open_clip_tokens(self, texts):
        import open_clip

        return open_clip.get_tokenizer(self.arch)(list(texts))

    def open_clip_text(self, texts) -> torch.Tensor:
        """open_clip's own text embedding: an implementation independent of HF's."""
        return self.open_clip.encode_text(self.open_clip_tokens(texts))
