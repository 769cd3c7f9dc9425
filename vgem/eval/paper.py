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


# --------------------------------------------------------------------------- a valid comparison


def weights_checksum(weights: str | None) -> str | None:
    """The sha256 of a local weights file (None: the hub default, or not a file)."""
    import hashlib
    from pathlib import Path

    if weights is None:
        return None
    path = Path(weights).expanduser()
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def published_checksums(backbone: str) -> set[str]:
    """The sha256 of the backbone's published weights files found in the hub cache
    (never the network); empty when none is cached or the backbone names none."""
    from pathlib import Path

    from vgem.backbones import backbone_spec
    from vgem.checkpoints import cached_path

    try:
        spec, variant = backbone_spec(backbone)
        files = spec.hub_files(variant)
    except Exception:  # an unknown or broken backbone: nothing to compare with
        return set()
    found = set()
    for hub_file in files:
        for name in hub_file.candidates:
            path = cached_path(hub_file.repo_id, name)
            if path is None:
                continue
            blob = Path(path).resolve()
            # the hub cache stores a large (LFS) file under its sha256
            if len(blob.name) == 64 and all(c in "0123456789abcdef" for c in blob.name):
                found.add(blob.name)
            else:
                checksum = weights_checksum(str(blob))
                if checksum is not None:
                    found.add(checksum)
    return found


def paper_comparison(document: Mapping[str, Any]) -> PaperMatch:
    """Whether a results document may be shown beside the paper: its Table 1 row, or the
    one reason it may not.

    Besides the configuration (:func:`match_paper_row`, recorded under ``paper``), the
    run must have used the published weights (the hub default, or a local file whose
    sha256, recorded as ``weights_sha256``, is that of the published file in the hub
    cache) on a complete benchmark release: read from the dataset (not a manifest),
    every sample selected (no ``limit``), grounded (none pending) and none failed.
    """
    paper = document.get("paper") or {}
    row = paper.get("row")
    if row is None:
        return PaperMatch(None, str(paper.get("reason") or "the task has no published figure"))
    reason = _weights_reason(document) or _completeness_reason(document)
    return PaperMatch(None, reason) if reason else PaperMatch(str(row))


def _weights_reason(document: Mapping[str, Any]) -> str | None:
    weights = document.get("weights")
    if weights is None:
        return None  # the hub default: the published weights
    checksum = document.get("weights_sha256")
    if not checksum:
        return f"the weights file {weights} has no recorded checksum to compare with the published"
    published = published_checksums(str(document.get("backbone", "")))
    if not published:
        return (
            f"the weights file {weights} cannot be checked: the published weights are not "
            "in the Hugging Face cache to compare checksums with"
        )
    if checksum not in published:
        return f"the weights file {weights} is not the published one (sha256 {checksum[:12]}…)"
    return None


def _completeness_reason(document: Mapping[str, Any]) -> str | None:
    counts = (document.get("overall") or {}).get("counts") or {}
    selected = int(counts.get("selected", 0))
    if document.get("manifest") is not None or document.get("dataset") is None:
        return "the samples come from a manifest, not a complete benchmark release"
    limit = (document.get("selection") or {}).get("limit")
    if limit is not None:
        return f"only {selected} sample(s) were selected (a limit), not the whole benchmark"
    if counts.get("pending"):
        return f"the run is incomplete ({counts['pending']} of {selected} pending)"
    if counts.get("errors"):
        return (
            f"{counts['errors']} of {selected} sample(s) could not be run, "
            "so the benchmark is not complete"
        )
    return None
