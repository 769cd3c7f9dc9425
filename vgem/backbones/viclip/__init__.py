"""ViCLIP (InternVid) backbones: ``viclip-b16`` and ``viclip-l14``.

Importing this package is cheap: the specs only name what to load, and the
model, tokenizer and loader (torch, open_clip, safetensors) are imported when a
spec's ``load`` is called.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from vgem.backbones.base import BackboneSpec, HubFile
from vgem.errors import SettingsError

if TYPE_CHECKING:
    from vgem.backbones.viclip.adapter import ViCLIPAdapter

__all__ = ["VICLIP_B16", "VICLIP_L14"]


def _load(name: str, variant: str | None, weights: str | None) -> ViCLIPAdapter:
    if variant is not None:
        raise SettingsError(f"The backbone {name} takes no variant (got '{variant}').")
    from vgem.backbones.viclip.adapter import load_viclip

    return load_viclip(name, weights)


def _hub_files(name: str, variant: str | None) -> list[HubFile]:
    from vgem.backbones.viclip.loader import hub_files

    return hub_files(name)


VICLIP_B16 = BackboneSpec(
    summary="ViCLIP-B/16 video CLIP (InternVid-10M-FLT), 8 frames at 224 px",
    load=partial(_load, "viclip-b16"),
    hub_files=partial(_hub_files, "viclip-b16"),
)

VICLIP_L14 = BackboneSpec(
    summary="ViCLIP-L/14 video CLIP (InternVid-10M-FLT), 8 frames at 224 px",
    load=partial(_load, "viclip-l14"),
    hub_files=partial(_hub_files, "viclip-l14"),
)
