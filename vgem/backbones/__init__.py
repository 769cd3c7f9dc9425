"""Backbones: the ``vgem.backbones`` plugins and one factory for all of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vgem.errors import PluginError

if TYPE_CHECKING:
    from vgem.backbones.base import BackboneAdapter, BackboneSpec

GROUP = "vgem.backbones"
DEFAULT_BACKBONE = "viclip-b16"


def parse_backbone_name(name: str) -> tuple[str, str | None]:
    """``family:variant`` → (family, variant); a plain name has no variant."""
    family, separator, variant = name.strip().partition(":")
    if not family:
        raise PluginError(f"'{name}' is not a backbone name (e.g. clip-b16, openclip:ARCH@TAG).")
    return family, (variant if separator else None)


def backbone_spec(name: str) -> tuple[BackboneSpec, str | None]:
    """The plugin's spec for ``name`` and the variant to pass it."""
    from vgem import plugins
    from vgem.backbones.base import BackboneSpec

    family, variant = parse_backbone_name(name)
    spec = plugins.create(GROUP, family)
    if not isinstance(spec, BackboneSpec):
        raise PluginError(
            f"The backbone plugin '{family}' is not a vgem.backbones.base.BackboneSpec; "
            f"it is {type(spec).__name__}."
        )
    if variant is not None and not spec.takes_variant:
        raise PluginError(f"The backbone '{family}' takes no variant; use it as plain '{family}'.")
    if variant is None and spec.takes_variant:
        raise PluginError(f"The backbone '{family}' needs a variant: {family}:VARIANT.")
    return spec, variant


def load_backbone(name: str = DEFAULT_BACKBONE, weights: str | None = None) -> BackboneAdapter:
    """Build a backbone adapter by plugin name, from ``weights`` or the hub cache."""
    spec, variant = backbone_spec(name)
    return spec.load(variant, weights)
