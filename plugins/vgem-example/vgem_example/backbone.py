"""The ``toy-vit`` backbone's entry point: a spec, and nothing heavy.

``vgem plugins`` imports this module to list the backbone, so it names what
to load and leaves torch and the model (``vgem_example.toy``) to ``load``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgem.backbones.base import BackboneSpec

if TYPE_CHECKING:
    from vgem_example.toy import ToyAdapter


def _load(variant: str | None, weights: str | None) -> ToyAdapter:
    from vgem_example.toy import load_toy

    return load_toy(weights)


# The toy has 2 blocks, fewer than the paper's depth of 7: it declares the
# GEM depth and dynamic layers that fit it, so it grounds with no method options.
TOY_VIT = BackboneSpec(
    summary="toy random ViT from vgem-example (shows the contract)",
    load=_load,
    defaults={"depth": 2, "dynamic_layers": 2},
)
