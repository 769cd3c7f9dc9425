"""The published accuracies (VideoGEM paper, Table 1) and which one a run reproduces.

A published figure is only worth printing beside ours when the run used the
configuration the paper reports, so matching is strict: the backbone must be
one the paper ran, weighting and prompts pick the row (VideoGEM: combined
weighting with decomposed prompts; the GEM baseline: no weighting, action
prompt only), and every other method setting must be at its default, the
authors' value. Anything else is an ablation with no published counterpart,
and the reason is said in words rather than a misleading figure shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vgem.plain import plain_json

# Dataset keys are the names of the built-in dataset adapters.
DATASET_TITLES: dict[str, str] = {
    "vhico": "V-HICO",
    "daly": "DALY",
    "yc": "YC-Inter",
    "gyt": "GYT",
}

# Pointing-game accuracy in percent, paper Table 1 (docs/method.md §7).
PUBLISHED_ACCURACY: dict[str, dict[str, float]] = {
    "GEM, CLIP": {"vhico": 67.79, "daly": 78.52, "yc": 50.08, "gyt": 36.92},
    "GEM, ViCLIP": {"vhico": 65.08, "daly": 73.75, "yc": 53.62, "gyt": 51.28},
    "VideoGEM, CLIP": {"vhico": 76.90, "daly": 84.53, "yc": 52.57, "gyt": 47.46},
    "VideoGEM, OpenCLIP": {"vhico": 76.42, "daly": 80.32, "yc": 60.05, "gyt": 45.33},
    "VideoGEM, ViCLIP": {"vhico": 75.75, "daly": 78.25, "yc": 55.10, "gyt": 57.21},
}

# The table's own "avg" column, kept as printed rather than recomputed.
PUBLISHED_AVERAGE: dict[str, float] = {
    "GEM, CLIP": 58.33,
    "GEM, ViCLIP": 60.93,
    "VideoGEM, CLIP": 65.37,
    "VideoGEM, OpenCLIP": 65.53,
    "VideoGEM, ViCLIP": 66.58,
}

# The backbones the paper ran, under every name vgem accepts for them.
PAPER_BACKBONES: dict[str, str] = {
    "clip-b16": "CLIP",
    "openclip:ViT-B-16-quickgelu@openai": "CLIP",
    "openclip-b16": "OpenCLIP",
    "openclip:ViT-B-16@laion2b_s34b_b88k": "OpenCLIP",
    "viclip-b16": "ViCLIP",
}

# (weighting, prompts) → the method column of the table.
PAPER_METHODS: dict[tuple[str, str], str] = {
    ("combined", "decomposed"): "VideoGEM",
    ("none", "action"): "GEM",
}

# Settings that change speed or memory but not what the paper's method computes.
RUNTIME_SETTINGS = frozenset({"batch_size", "device", "precision"})


@dataclass(frozen=True)
class PaperMatch:
    """The paper's row for a run, or why there is none (exactly one is set)."""

    row: str | None
    reason: str | None = None

    def accuracy(self, dataset: str) -> float | None:
        """The published accuracy (%) of this row on a dataset, if the paper has one."""
        if self.row is None:
            return None
        return PUBLISHED_ACCURACY[self.row].get(dataset)


def match_paper_row(backbone: str, settings: Mapping[str, Any]) -> PaperMatch:
    """The Table 1 row a run with this backbone and these settings reproduces.

    ``settings`` is a full :class:`vgem.settings.Settings` dictionary.
    """
    from vgem.settings import Settings

    backbone_title = PAPER_BACKBONES.get(backbone.strip())
    if backbone_title is None:
        known = ", ".join(sorted({name for name in PAPER_BACKBONES if ":" not in name}))
        return PaperMatch(None, f"the paper ran no backbone '{backbone}' (it ran {known})")
    weighting, prompts = settings.get("weighting"), settings.get("prompts")
    method = None
    if weighting is not None and prompts is not None:
        method = PAPER_METHODS.get((weighting, prompts))
    if method is None:
        return PaperMatch(
            None,
            f"the paper reports no run with weighting {weighting} and "
            f"prompts {prompts} (VideoGEM: combined + decomposed; "
            "GEM: none + action)",
        )
    defaults = Settings().with_defaults().to_dict()  # the method's constants: the paper's
    changed = [
        name
        for name, default in defaults.items()
        if name not in RUNTIME_SETTINGS
        and name not in ("weighting", "prompts")
        and plain_json(_given(settings, name, default)) != plain_json(default)
    ]
    if changed:
        options = ", ".join(changed)
        verb = "differs" if len(changed) == 1 else "differ"
        return PaperMatch(None, f"{options} {verb} from the settings the paper used")
    row = f"{method}, {backbone_title}"
    if row not in PUBLISHED_ACCURACY:
        return PaperMatch(None, f"the paper has no row '{row}'")
    return PaperMatch(row)


def _given(settings: Mapping[str, Any], name: str, default: Any) -> Any:
    """A setting's value; an absent or None one (the backbone's default) is the default."""
    value = settings.get(name)
    return default if value is None else value
