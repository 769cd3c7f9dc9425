"""How to build a run's grounder, and what of it decides the predictions.

A :class:`GrounderRecipe` is the picklable description a worker process
builds its own grounder from (the model is loaded where it runs, never
shipped). :func:`run_identity` is what of the recipe decides a prediction:
the fingerprint every client keys its resumable records by, so that a record
made with other settings is never taken for this run's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.plain import plain_json

if TYPE_CHECKING:
    from vgem.execution.units import SupportsGround
    from vgem.settings import Settings

# Options that change speed, never the numbers, so a run may be resumed with others.
THROUGHPUT_SETTINGS = frozenset({"batch_size", "device"})


@dataclass(frozen=True)
class GrounderRecipe:
    """How to build a run's grounder; picklable, so that a worker process builds its own."""

    backbone: str
    weights: str | None
    settings: Settings
    nlp_dir: str | None = None

    def __call__(self) -> SupportsGround:
        from vgem.grounder import Grounder

        return Grounder(self.backbone, self.weights, settings=self.settings, nlp_dir=self.nlp_dir)


def run_identity(
    backbone: str, weights: str | None, settings: Settings, source_fps: float
) -> dict[str, Any]:
    """Everything that decides a prediction, as JSON: what a run's settings hash covers.

    Batch size and device are left out, so a run started on one machine can be
    finished on another; precision stays in, as bf16 moves points.
    """
    method = {
        name: value for name, value in settings.to_dict().items() if name not in THROUGHPUT_SETTINGS
    }
    return {
        "backbone": backbone.strip(),
        "weights": weights_identity(weights),
        "source_fps": float(source_fps),
        # As JSON reads it back (tuples as lists), so that the hash is that of the file.
        "settings": plain_json(method),
    }


def weights_identity(weights: str | None) -> str | None:
    """A local checkpoint by absolute path, so a run resumes from another folder."""
    if weights is None:
        return None
    path = Path(weights).expanduser()
    return str(path.resolve()) if path.exists() else weights
