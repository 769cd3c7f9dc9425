"""Evaluating on Ray: the work units of a run spread over worker processes, on one
machine or a cluster (``pip install "vgem[ray]"``).

    from vgem.eval.ray_executor import RayExecutor
    vgem.eval.run(source, executor=RayExecutor("auto", workers=8, gpus_per_worker=0.5))

Each worker is a **Ray Core actor** that builds the run's grounder once (the
job's ``load_grounder``, on the first video that needs it) and keeps it for
every video it is given. The unit of work is a video (a
:class:`~vgem.eval.tasks.WorkUnit`, all its samples); an actor grounds it and
streams each line back as soon as the sample is grounded (a Ray streaming
generator), and the driver, the only writer of the predictions log, writes
it. The driver hands the next video to whichever actor is free, so slow
videos do not hold up the others.

Why actors and not Ray Data with an actor pool: Ray Data is built for
stateless batch transforms of a dataset; its failure handling retries or
drops whole blocks, with no hook to record "this video failed after N
tries" as the error lines that keep a run resumable, its output is a
dataset to iterate rather than per-sample lines as they are grounded, and it
needs pyarrow and pandas (``ray[data]``), which vgem has no other use for.
Everything vgem needs (a model loaded once per worker, work pulled per video,
lines streamed back, a bounded retry of exactly the samples without a line)
takes one small loop over actors here.

Faults: a worker that dies (killed, out of memory, its node lost) is
replaced by a new actor, and the samples of its video that have no line yet
go back to the front of the queue, for whichever worker is free next, up to
``max_retries`` times; after that each of them gets an error line that says
why. Lines already written are never grounded or written again, so nothing
is lost and nothing is duplicated. A Ctrl-C in the driver kills the actors
and leaves the log as the local executor does: the run resumes.

Ray is imported only when a :class:`RayExecutor` is made, never by the local
path.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from vgem.errors import SettingsError, VgemError, os_error_text
from vgem.eval.engine import GroundingJob, Worker, WorkerMeter

if TYPE_CHECKING:
    from vgem.eval.tasks import Emit, Line, WorkUnit

INSTALL_HINT = 'pip install "vgem[ray]"'
#: The object store of a Ray instance the executor starts: lines are small.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2
WAIT_SECONDS = 0.5  # how often the driver wakes while it waits (so Ctrl-C is prompt)


class WorkerError(VgemError):
    """Ray workers keep dying before they ground anything (a node that cannot load the model)."""


def import_ray() -> Any:
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise SettingsError(
            f"`executor` ray needs Ray, which is not installed: {INSTALL_HINT}",
            settings=("executor",),
        ) from None
    return ray


# --------------------------------------------------------------------------- the worker side


class GroundingActor:
    """One worker process: a :class:`~vgem.eval.engine.Worker` that keeps its grounder."""

    def __init__(self, job: GroundingJob) -> None:
        self.worker = Worker(job)

    def describe(self) -> dict[str, Any]:
        """Where the worker runs, and how long building its grounder took."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "load_seconds": self.worker.load_seconds,
        }

    def ground(self, unit: WorkUnit) -> Iterator[Line]:
        """The unit's lines, each as soon as it is grounded (called as a streaming method).

        ``ground_unit`` hands lines to a callback; it runs in a thread that
        feeds this generator, and an exception there is raised here.
        """
        lines: queue.Queue[Line | None] = queue.Queue()
        failures: list[BaseException] = []

        def work() -> None:
            try:
                self.worker.run(unit, lines.put)
            except BaseException as error:
                failures.append(error)
            finally:
                lines.put(None)

        thread = threading.Thread(target=work, name=f"ground {unit.video}", daemon=True)
        thread.start()
        while (line := lines.get()) is not None:
            yield line
        thread.join()
        if failures:
            raise failures[0]


# --------------------------------------------------------------------------- the driver side


@dataclass
class _Attempt:
    """A unit to ground, and how many workers died on it so far."""

    unit: WorkUnit
    deaths: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass
class _Slot:
    """A worker in the driver's books: its actor, its meter, what it is grounding now."""

    actor: Any
    meter: WorkerMeter
    description: Any  # the reference to ``describe()``, asked when the actor starts
    where: dict[str, Any] = field(default_factory=dict)  # host, pid
    attempt: _Attempt | None = None
    stream: Any = None
    started: float = 0.0
    died: str | None = None


#: Ray's own default ports: a cluster's GCS, and the Ray Client server (``ray://``).
DEFAULT_GCS_PORT = 6379
DEFAULT_CLIENT_PORT = 10001


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse at once an address where nothing answers (a typo, a stopped cluster)."""
    client = address.startswith("ray://")
    where = address.removeprefix("ray://").split("/", 1)[0]
    host, separator, port_text = where.rpartition(":")
    if not separator:
        host, port_text = where, ""
    try:
        port = (
            int(port_text) if port_text else (DEFAULT_CLIENT_PORT if client else DEFAULT_GCS_PORT)
        )
    except ValueError:
        raise SettingsError(
            f"`ray_address` {address} is not an address: give auto, host:port or ray://host:port.",
            settings=("ray_address",),
        ) from None
    try:
        with socket.create_connection((host.strip("[]"), port), timeout=timeout):
            pass
    except OSError as error:
        raise SettingsError(
            f"Cannot join the Ray cluster at `ray_address` {address}: nothing answers at "
            f"{host}:{port} ({os_error_text(error)}).",
            settings=("ray_address",),
        ) from None


class RayExecutor:
    """Ground the work units on ``workers`` Ray actors (see the module's docstring).

    ``address``: None starts a local Ray instance sized for the workers
    (unless this process is already connected to one, which is used as is);
    ``"auto"`` joins the running cluster this machine belongs to; a
    ``ray://host:10001`` or ``host:6379`` address joins that one.
    ``cpus_per_worker`` and ``gpus_per_worker`` are the Ray resources each
    actor reserves (a fraction of a GPU lets several workers share one).
    ``max_retries``: how many times a video is handed to another worker after
    its worker died on it. ``runtime_env``: Ray's runtime environment for the
    actors (e.g. ``{"pip": [...]}`` or ``{"env_vars": {...}}`` on a cluster).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int = 1,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        max_retries: int = 2,
        runtime_env: Mapping[str, Any] | None = None,
    ) -> None:
        if workers < 1:
            raise SettingsError("`workers` must be at least 1.", settings=("workers",))
        if cpus_per_worker < 0:
            raise SettingsError(
                "`cpus_per_worker` cannot be negative.", settings=("cpus_per_worker",)
            )
        if gpus_per_worker < 0 or (gpus_per_worker > 1 and not float(gpus_per_worker).is_integer()):
            raise SettingsError(
                "`gpus_per_worker` takes a fraction of one GPU (0.5) or a whole number of GPUs.",
                settings=("gpus_per_worker",),
            )
        if max_retries < 0:
            raise SettingsError("`max_retries` cannot be negative.", settings=("max_retries",))
        self.ray = import_ray()
        self.address = address
        self.workers = workers
        self.cpus_per_worker = float(cpus_per_worker)
        self.gpus_per_worker = float(gpus_per_worker)
        self.max_retries = max_retries
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self._slots: list[_Slot] = []
        self._retired: list[_Slot] = []
        self._retried = 0
        self._seconds = 0.0
        self._samples = 0
        self._started_instance = False

    # ----------------------------------------------------------------- accounting

    def execution(self) -> dict[str, Any]:
        """What results.json records of the last ``execute``: workers and their throughput."""
        per_worker = []
        for slot in self._retired + self._slots:
            entry = slot.meter.to_dict()
            entry.update(slot.where)
            if slot.died is not None:
                entry["died"] = slot.died
            per_worker.append(entry)
        rate = self._samples / self._seconds if self._samples and self._seconds > 0 else None
        return {
            "executor": "ray",
            "address": self.address or ("local" if self._started_instance else "connected"),
            "workers": self.workers,
            "cpus_per_worker": self.cpus_per_worker,
            "gpus_per_worker": self.gpus_per_worker,
            "seconds": round(self._seconds, 3),
            "samples_per_second": None if rate is None else round(rate, 4),
            "retried_units": self._retried,
            "per_worker": per_worker,
        }

    def _describe(self, slot: _Slot, *, again: bool) -> None:
        """Where a worker ran and how long its model took to load (``again``: ask an idle,
        live worker now, when its model is loaded; else what it said when it started)."""
        try:
            if again:
                slot.description = slot.actor.describe.remote()
            where = dict(self.ray.get(slot.description, timeout=5))
        except Exception:  # a dead or unreachable worker: where it ran is unknown
            return
        slot.meter.load_seconds = float(where.pop("load_seconds", 0.0))
        slot.where = where

    # ----------------------------------------------------------------- executing

    def execute(self, job: GroundingJob, units: Sequence[WorkUnit], emit: Emit) -> None:
        self._slots, self._retired, self._retried, self._samples = [], [], 0, 0
        if not units:
            return
        started = time.perf_counter()
        self._connect()
        finished = False
        try:
            self._ground_all(job, units, emit)
            finished = True
        finally:
            self._seconds = time.perf_counter() - started
            for slot in self._retired + self._slots:
                self._describe(slot, again=finished and slot.died is None)
            for slot in self._slots:
                with contextlib.suppress(Exception):
                    self.ray.kill(slot.actor)
            if self._started_instance:
                self.ray.shutdown()

    def _connect(self) -> None:
        ray = self.ray
        self._started_instance = False
        if ray.is_initialized():
            return
        options: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "runtime_env": self.runtime_env,
        }
        if self.address is None:
            self._started_instance = True
            options.update(
                num_cpus=max(1, math.ceil(self.workers * self.cpus_per_worker)),
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            )
        named = None if self.address in (None, "auto") else self.address  # not found by Ray
        if named is not None:
            _check_reachable(named)  # Ray itself would retry a dead address for minutes
        try:
            ray.init(address=self.address, **options)
        except ConnectionError as error:
            hint = ""
            if named is not None and "RAY_AUTH_MODE" not in os.environ:
                hint = (
                    " If the cluster uses token authentication, set RAY_AUTH_MODE=token and "
                    "give its token in RAY_AUTH_TOKEN or ~/.ray/auth_token (Ray sends it to "
                    "an explicit address only when asked)."
                )
            raise SettingsError(
                f"Cannot join the Ray cluster at `ray_address` {self.address}: {error}.{hint}",
                settings=("ray_address",),
            ) from None
        if self._started_instance and self.gpus_per_worker:
            available = ray.cluster_resources().get("GPU", 0)
            if available < self.workers * self.gpus_per_worker:
                ray.shutdown()
                raise SettingsError(
                    f"{self.workers} `workers` with {self.gpus_per_worker:g} "
                    f"`gpus_per_worker` need {self.workers * self.gpus_per_worker:g} GPU(s); "
                    f"this machine has {available:g}.",
                    settings=("workers", "gpus_per_worker"),
                )

    def _start_worker(self, job_ref: Any, number: int) -> _Slot:
        actor_class = self.ray.remote(GroundingActor)
        options: dict[str, Any] = {
            "num_cpus": self.cpus_per_worker,
            "num_gpus": self.gpus_per_worker,
            "max_restarts": 0,
            "max_task_retries": 0,
        }
        runtime_env = dict(self.runtime_env or {})
        if not self.gpus_per_worker:
            # Ray leaves every GPU visible to a worker that reserved none: hide them, so
            # that `device` auto means the CPUs this worker reserved.
            env_vars = dict(runtime_env.get("env_vars") or {})
            env_vars.setdefault("CUDA_VISIBLE_DEVICES", "")
            runtime_env["env_vars"] = env_vars
        if runtime_env:
            options["runtime_env"] = runtime_env
        actor = actor_class.options(**options).remote(job_ref)
        return _Slot(actor, WorkerMeter(f"worker-{number}"), actor.describe.remote())

    def _ground_all(self, job: GroundingJob, units: Sequence[WorkUnit], emit: Emit) -> None:
        ray = self.ray
        dead_errors = _worker_death_errors(ray)
        job_ref = ray.put(job)
        todo = deque(_Attempt(unit) for unit in units)
        emitted: set[str] = set()
        started_workers = min(self.workers, len(units))
        self._slots = [self._start_worker(job_ref, number) for number in range(started_workers)]
        deaths_in_a_row = 0
        while True:
            for slot in self._slots:
                if slot.attempt is None and todo:
                    slot.attempt = todo.popleft()
                    slot.stream = slot.actor.ground.options(num_returns="streaming").remote(
                        slot.attempt.unit
                    )
                    slot.started = time.perf_counter()
            busy = [slot for slot in self._slots if slot.attempt is not None]
            if not busy:
                return
            ready, _ = ray.wait([slot.stream for slot in busy], num_returns=1, timeout=WAIT_SECONDS)
            for stream in ready:
                slot = next(slot for slot in busy if slot.stream is stream)
                attempt = slot.attempt
                assert attempt is not None
                try:
                    line = ray.get(next(stream))
                except StopIteration:
                    self._finish(slot)
                    continue
                except dead_errors as error:
                    if getattr(error, "actor_init_failed", False):
                        raise WorkerError(
                            f"A Ray worker could not start: {_last_line(error)}"
                        ) from None
                    deaths_in_a_row += 1
                    self._bury(slot, error)
                    remaining = _remaining(attempt, emitted)
                    if remaining is not None:
                        remaining.deaths += 1
                        remaining.reasons.append(_death_reason(error))
                        if remaining.deaths > self.max_retries:
                            self._give_up(job, remaining, emit, emitted)
                        else:
                            self._retried += 1
                            todo.appendleft(remaining)
                    if deaths_in_a_row > max(3, 2 * self.workers) + self.max_retries:
                        raise WorkerError(
                            f"Ray workers died {deaths_in_a_row} times in a row without "
                            f"grounding anything; the last: {_death_reason(error)}"
                        ) from None
                    if todo:  # a replacement, while there is work to hand out
                        number = len(self._slots) + len(self._retired)
                        self._slots.append(self._start_worker(job_ref, number))
                    continue
                except ray.exceptions.RayTaskError as error:
                    raise _cause(error) from None
                deaths_in_a_row = 0
                if line["id"] in emitted:  # never twice, whatever happens
                    continue
                emitted.add(line["id"])
                slot.meter.samples += 1
                self._samples += 1
                emit(line)

    def _finish(self, slot: _Slot) -> None:
        slot.meter.busy_seconds += time.perf_counter() - slot.started
        slot.meter.units += 1
        slot.attempt = slot.stream = None

    def _bury(self, slot: _Slot, error: BaseException) -> None:
        """A worker died: take it out of the books (its share so far is kept)."""
        slot.meter.busy_seconds += time.perf_counter() - slot.started
        slot.died = _death_reason(error)
        slot.attempt = slot.stream = None
        with contextlib.suppress(Exception):
            self.ray.kill(slot.actor)
        self._slots.remove(slot)
        self._retired.append(slot)

    def _give_up(self, job: GroundingJob, attempt: _Attempt, emit: Emit, emitted: set[str]) -> None:
        """Every sample of the unit without a line gets an error line saying why."""
        reason = (
            f"the worker grounding this video died {attempt.deaths} time(s): {attempt.reasons[-1]}"
        )
        for sample in attempt.unit.samples:
            emitted.add(sample.id)
            emit(job.task.error_record(sample, job.context, reason, 0.0))


def _remaining(attempt: _Attempt, emitted: set[str]) -> _Attempt | None:
    """The attempt narrowed to the samples that have no line yet (None: all have one)."""
    unit = attempt.unit
    samples = tuple(sample for sample in unit.samples if sample.id not in emitted)
    if not samples:
        return None
    known = {key: value for key, value in unit.known_errors.items() if key not in emitted}
    return replace(attempt, unit=replace(unit, samples=samples, known_errors=known))


def _worker_death_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's exceptions for a worker process or node that is gone (not an error in vgem)."""
    names = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "OutOfMemoryError")
    found = (getattr(ray.exceptions, name, None) for name in names)
    return tuple(error for error in found if isinstance(error, type))


def _death_reason(error: BaseException) -> str:
    """Ray's account of a death in one line: its first line, and its last (the cause)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    told = lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1][:300]}"
    return f"{type(error).__name__}: {told}"


def _last_line(error: BaseException) -> str:
    """The last line of an error's text: what a traceback ends with."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _cause(error: Any) -> BaseException:
    """What a worker raised (a WeightsError stays a WeightsError in the driver)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error
