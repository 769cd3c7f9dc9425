"""What an executor is, the numbers that size one (validated in one place), and the
errors of executors that give up.

An executor runs the work units of a job and hands every line back to the
driver (:class:`Executor`). Two ship with vgem:
:class:`~vgem.execution.local.LocalExecutor` (this process) and
:class:`~vgem.execution.ray_executor.RayExecutor` (Ray actors on one machine
or a cluster); :func:`vgem.execution.factory.make_executor` builds one from
plain settings. :class:`ExecutorSettings` checks every number an executor
takes (finite, whole where it must be, within bounds), with errors that name
the setting.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from vgem.errors import SettingsError, VgemError

if TYPE_CHECKING:
    from vgem.execution.units import Emit, GroundingJob, WorkUnit

#: Bounds of the executor's numbers (far above any real cluster; they keep a typo from
#: asking Ray for 10^20 CPUs).
MAX_WORKERS = 10_000
MAX_CPUS_PER_WORKER = 1024.0
MAX_GPUS_PER_WORKER = 64.0
MAX_RETRIES = 100
#: How long a unit may wait for a worker that can take it before it is recorded as an
#: error (a lost node whose work no live worker can take, a cluster without room).
DEFAULT_SCHEDULE_TIMEOUT = 600.0


class WorkerError(VgemError):
    """Workers keep dying before they ground anything (a node that cannot load the model)."""


class WorkersUnavailable(WorkerError):
    """Units waited ``schedule_timeout`` seconds with no started worker alive to take them.

    Raised after each of their items got an error line, so a client that catches
    it keeps and writes what finished before it says so."""


class Executor(Protocol):
    """Runs the work units of a job, handing every line to ``emit`` in the driver.

    An executor may also have ``start()``: connect to what it runs on (a Ray
    cluster) before the client creates anything, so that a refused start leaves
    nothing behind; and ``execution() -> dict``: how its last ``execute`` went
    (the executor, the workers that ran, where, and each one's throughput),
    which the clients record.
    """

    def execute(self, job: GroundingJob, units: Sequence[WorkUnit], emit: Emit) -> None: ...


def start_executor(executor: Any) -> None:
    """Call the executor's ``start()`` if it has one."""
    start = getattr(executor, "start", None)
    if callable(start):
        start()


def stop_executor(executor: Any) -> None:
    """Call the executor's ``stop()`` if it has one (what ``start()`` started ends)."""
    stop = getattr(executor, "stop", None)
    if callable(stop):
        stop()


def execution_of(executor: Any) -> dict[str, Any]:
    """What the executor says of its last ``execute`` (its type's name if it says nothing)."""
    execution = getattr(executor, "execution", None)
    return dict(execution()) if callable(execution) else {"executor": type(executor).__name__}


@dataclass(frozen=True)
class ExecutorSettings:
    """The numbers of a Ray executor, each checked: ``workers`` (a whole number from 1 to
    ``MAX_WORKERS``), ``cpus_per_worker`` (finite, 0 to ``MAX_CPUS_PER_WORKER``),
    ``gpus_per_worker`` (a fraction of one GPU or a whole number, up to
    ``MAX_GPUS_PER_WORKER``), ``max_retries`` (0 to ``MAX_RETRIES``) and
    ``schedule_timeout`` (seconds, positive and finite)."""

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_retries: int = 2
    schedule_timeout: float = DEFAULT_SCHEDULE_TIMEOUT

    def __post_init__(self) -> None:
        workers = _whole("workers", self.workers, 1, MAX_WORKERS)
        cpus = _number("cpus_per_worker", self.cpus_per_worker, 0.0, MAX_CPUS_PER_WORKER)
        gpus = _number("gpus_per_worker", self.gpus_per_worker, 0.0, MAX_GPUS_PER_WORKER)
        if gpus > 1 and not gpus.is_integer():
            raise SettingsError(
                "`gpus_per_worker` takes a fraction of one GPU (0.5) or a whole number of "
                f"GPUs, not {gpus:g}.",
                settings=("gpus_per_worker",),
            )
        retries = _whole("max_retries", self.max_retries, 0, MAX_RETRIES)
        timeout = _number("schedule_timeout", self.schedule_timeout, 0.0, math.inf)
        if timeout <= 0:
            raise SettingsError(
                "`schedule_timeout` must be a positive number of seconds.",
                settings=("schedule_timeout",),
            )
        for name, value in (
            ("workers", workers),
            ("cpus_per_worker", cpus),
            ("gpus_per_worker", gpus),
            ("max_retries", retries),
            ("schedule_timeout", timeout),
        ):
            object.__setattr__(self, name, value)


def _whole(name: str, value: Any, low: int, high: int) -> int:
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    whole_float = isinstance(value, float) and value.is_integer()
    if not (integral or whole_float):
        raise SettingsError(f"`{name}` must be a whole number, not {value!r}.", settings=(name,))
    number = int(value)
    if not low <= number <= high:
        raise SettingsError(
            f"`{name}` must be from {low} to {high}, not {_short(value)}.", settings=(name,)
        )
    return number


def _number(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingsError(f"`{name}` must be a number, not {value!r}.", settings=(name,))
    number = float(value)
    if not math.isfinite(number):
        raise SettingsError(f"`{name}` must be a finite number, not {value}.", settings=(name,))
    if not low <= number <= high:
        upper = "" if high == math.inf else f" and at most {high:g}"
        raise SettingsError(
            f"`{name}` must be at least {low:g}{upper}, not {_short(value)}.", settings=(name,)
        )
    return number


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}…{text[-6:]} ({len(text)} digits)"
