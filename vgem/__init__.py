"""vgem: find where (and when) an action described in words happens in a video.

The public API is imported lazily so that the command's help never pays for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vgem.version import __version__

__all__ = ["Grounder", "GroundingResult", "VgemError", "__version__", "load_backbone"]

_LAZY = {
    "Grounder": "vgem.grounder",
    "GroundingResult": "vgem.results",
    "load_backbone": "vgem.backbones",
    "VgemError": "vgem.errors",
}

if TYPE_CHECKING:
    from vgem.backbones import load_backbone
    from vgem.errors import VgemError
    from vgem.grounder import Grounder
    from vgem.results import GroundingResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vgem' has no attribute {name!r}")
