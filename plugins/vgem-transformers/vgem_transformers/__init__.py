"""vgem backbones for Hugging Face ``transformers`` CLIP checkpoints.

``hf-clip:REPO`` (e.g. ``hf-clip:openai/clip-vit-base-patch16``) reads a
``CLIPModel`` from the Hugging Face cache; ``hf-clip:FOLDER`` reads a folder
written by ``save_pretrained``. Importing this package is cheap: ``vgem
plugins`` imports it to list the backbone, and transformers is imported only
when a model is loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgem.backbones.base import BackboneSpec, HubFile

if TYPE_CHECKING:
    from vgem_transformers.adapter import HfClipAdapter

__all__ = ["HF_CLIP", "__version__"]
__version__ = "0.1.0"


def _load(variant: str | None, weights: str | None) -> HfClipAdapter:
    from vgem_transformers.loader import load_hf_clip

    return load_hf_clip(variant, weights)


def _hub_files(variant: str | None) -> list[HubFile]:
    from vgem_transformers.loader import hub_files

    return hub_files(variant)


HF_CLIP = BackboneSpec(
    summary="Hugging Face transformers CLIPModel: hf-clip:REPO or hf-clip:FOLDER (448 px)",
    load=_load,
    takes_variant=True,
    hub_files=_hub_files,
)
