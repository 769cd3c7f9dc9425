"""The local executor: every unit in this process, one after another, with one grounder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vgem.execution.worker import Worker, WorkerMeter, where_this_runs

if TYPE_CHECKING:
    from vgem.execution.units import Emit, GroundingJob, WorkUnit


class LocalExecutor:
    """Grounds the units one after another in this process, with one grounder.

    The grounder is built when the first probed video needs it, so a run with
    nothing left to do, or with only missing videos, loads no model.
    """

    def __init__(self) -> None:
        self._meter: WorkerMeter | None = None

    def start(self) -> None:
        """Nothing to connect to: this process is the worker."""

    def execute(self, job: GroundingJob, units: Sequence[WorkUnit], emit: Emit) -> None:
        worker = Worker(job)
        self._meter = meter = WorkerMeter("local", where=where_this_runs())
        counted = meter.counting(emit)
        for unit in units:
            with meter.timing():
                worker.run(unit, counted)
            meter.units += 1
            meter.load_seconds = worker.load_seconds
            meter.ran = worker.ran

    def execution(self) -> dict[str, Any]:
        """How the last ``execute`` went: one worker, this process (none when nothing ran)."""
        ran = [] if self._meter is None else [self._meter.to_dict()]
        return {"executor": "local", "workers": len(ran), "per_worker": ran}
