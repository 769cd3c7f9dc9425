"""Tiny random-weight backbones for tests, registered the way real ones are.

``TINY_OPENCLIP`` is an open_clip model config small enough to run in
milliseconds; tests add it to open_clip's registry, exactly as a user adds a
custom architecture, and save its weights as an ordinary checkpoint.
"""

from __future__ import annotations

TINY_ARCH = "vgem-tiny-vit"
TINY_OPENCLIP = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 4, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def register_tiny_openclip() -> str:
    """Make ``TINY_ARCH`` known to open_clip (idempotent)."""
    from open_clip import factory

    factory._MODEL_CONFIGS.setdefault(TINY_ARCH, TINY_OPENCLIP)
    return TINY_ARCH


def tiny_openclip_model(seed: int = 0):
    import logging

    import open_clip
    import torch

    register_tiny_openclip()
    torch.manual_seed(seed)
    logging.getLogger().setLevel(logging.ERROR)
    return open_clip.create_model(TINY_ARCH, pretrained=None).eval()


def tiny_openclip_adapter(input_size: int = 64, seed: int = 0):
    import open_clip

    from vgem.backbones.openclip import OpenClipAdapter

    model = tiny_openclip_model(seed)
    return OpenClipAdapter(
        model,
        open_clip.get_tokenizer(TINY_ARCH),
        name="tiny-openclip",
        weights_source="random",
        input_size=input_size,
    )
