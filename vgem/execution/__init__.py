"""Executing grounding work: units, workers, the local and Ray executors, signals.

This layer runs work; it never knows what the work is. An evaluation
(:mod:`vgem.eval`) and a many-video batch (:mod:`vgem.batch`) are its two
clients: each cuts its work into :class:`WorkUnit` objects, wraps them in a
:class:`GroundingJob` and hands them to an executor, which gives back one line
per item. Neither client imports the other. Importing this package needs
neither torch nor Ray; the names below load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vgem.execution.executor import (
        Executor,
        ExecutorSettings,
        WorkerError,
        WorkersUnavailable,
        execution_of,
        start_executor,
        stop_executor,
    )
    from vgem.execution.factory import make_executor
    from vgem.execution.local import LocalExecutor
    from vgem.execution.ray_executor import RayExecutor
    from vgem.execution.recipe import GrounderRecipe, run_identity
    from vgem.execution.signals import Terminated, termination_as_interrupt
    from vgem.execution.sittings import combine_sittings
    from vgem.execution.units import GroundingJob, SupportsGround, UnitWork, WorkUnit
    from vgem.execution.worker import Worker, WorkerMeter

_EXPORTS = {
    "Executor": "vgem.execution.executor",
    "ExecutorSettings": "vgem.execution.executor",
    "execution_of": "vgem.execution.executor",
    "make_executor": "vgem.execution.factory",
    "start_executor": "vgem.execution.executor",
    "stop_executor": "vgem.execution.executor",
    "LocalExecutor": "vgem.execution.local",
    "RayExecutor": "vgem.execution.ray_executor",
    "WorkerError": "vgem.execution.executor",
    "WorkersUnavailable": "vgem.execution.executor",
    "GrounderRecipe": "vgem.execution.recipe",
    "run_identity": "vgem.execution.recipe",
    "Terminated": "vgem.execution.signals",
    "termination_as_interrupt": "vgem.execution.signals",
    "combine_sittings": "vgem.execution.sittings",
    "GroundingJob": "vgem.execution.units",
    "SupportsGround": "vgem.execution.units",
    "UnitWork": "vgem.execution.units",
    "WorkUnit": "vgem.execution.units",
    "Worker": "vgem.execution.worker",
    "WorkerMeter": "vgem.execution.worker",
}

__all__ = [
    "Executor",
    "ExecutorSettings",
    "GrounderRecipe",
    "GroundingJob",
    "LocalExecutor",
    "RayExecutor",
    "SupportsGround",
    "Terminated",
    "UnitWork",
    "WorkUnit",
    "Worker",
    "WorkerError",
    "WorkerMeter",
    "WorkersUnavailable",
    "combine_sittings",
    "execution_of",
    "make_executor",
    "run_identity",
    "start_executor",
    "stop_executor",
    "termination_as_interrupt",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vgem.execution' has no attribute {name!r}")
    return getattr(import_module(module), name)
