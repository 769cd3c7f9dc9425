"""A worker: grounds units of one job with a grounder it builds once and keeps; and
the meter that says how its share of a sitting went."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vgem.execution.units import Emit, GroundingJob, Line, SupportsGround, WorkUnit


class Worker:
    """Grounds work units of one job, building the grounder on first need and keeping it.

    ``ran`` says what the grounder it built really is (see :func:`what_ran`), so
    that a record states what ran rather than what was asked for (``auto``).
    """

    def __init__(self, job: GroundingJob) -> None:
        self.job = job
        self._grounder: SupportsGround | None = None
        self.load_seconds = 0.0  # building the grounder
        self.ran: dict[str, Any] = {}

    def grounder(self) -> SupportsGround:
        if self._grounder is None:
            started = time.perf_counter()
            self._grounder = self.job.load_grounder()
            self.load_seconds = time.perf_counter() - started
            self.ran = what_ran(self._grounder)
        return self._grounder

    def run(self, unit: WorkUnit, emit: Emit) -> None:
        self.job.task.ground_unit(unit, self.job.context, self.grounder, emit)


#: The settings whose ``auto`` a grounder resolves where it runs.
RESOLVED_SETTINGS = ("device", "precision", "video_attention")


def what_ran(grounder: Any) -> dict[str, Any]:
    """The resolved device, precision and video attention of a built grounder, and its
    weights as the backbone describes them (``random (seed 0)``, a hub file, a path)."""
    settings = getattr(grounder, "effective_settings", None)
    ran = {}
    if isinstance(settings, dict):
        ran = {name: settings[name] for name in RESOLVED_SETTINGS if name in settings}
    weights = getattr(getattr(grounder, "adapter", None), "weights_source", None)
    if weights:
        ran["weights"] = str(weights)
    return ran


def where_this_runs() -> dict[str, Any]:
    """The node and process a worker runs in (a Ray worker adds Ray's node id)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


@dataclass
class WorkerMeter:
    """One worker's share of a sitting: units and lines done, seconds busy (loading
    included), where it ran (``where``: host, pid, and on Ray the node) and what
    (``ran``: see :func:`what_ran`)."""

    worker: str
    units: int = 0
    samples: int = 0
    busy_seconds: float = 0.0
    load_seconds: float = 0.0
    where: dict[str, Any] = field(default_factory=dict)
    ran: dict[str, Any] = field(default_factory=dict)

    def counting(self, emit: Emit) -> Emit:
        def counted(line: Line) -> None:
            self.samples += 1
            emit(line)

        return counted

    @contextmanager
    def timing(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.busy_seconds += time.perf_counter() - started

    def to_dict(self) -> dict[str, Any]:
        """The counts, where it ran, and ``samples_per_second`` once the model was loaded."""
        grounding = self.busy_seconds - self.load_seconds
        rate = self.samples / grounding if self.samples and grounding > 0 else None
        return {
            "worker": self.worker,
            "units": self.units,
            "samples": self.samples,
            "busy_seconds": round(self.busy_seconds, 3),
            "load_seconds": round(self.load_seconds, 3),
            "samples_per_second": None if rate is None else round(rate, 4),
            **self.where,
            **({"ran": dict(self.ran)} if self.ran else {}),
        }
