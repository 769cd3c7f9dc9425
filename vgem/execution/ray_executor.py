"""Executing on Ray: the work units of a run spread over worker processes, on one
machine or a cluster (``pip install "vgem[ray]"``).

    from vgem.execution import RayExecutor
    vgem.eval.run(source, executor=RayExecutor("auto", workers=8, gpus_per_worker=0.5))

Each worker is a **Ray Core actor** that builds the run's grounder once (the
job's ``load_grounder``, on the first video that needs it) and keeps it for
every video it is given. The unit of work is a video (a
:class:`~vgem.execution.units.WorkUnit`); an actor grounds it and streams each
line back as soon as it is done (a Ray streaming generator), and the driver
hands every line to the client, which stays the only writer of its records.
The driver hands the next unit to whichever started worker is free, so slow
videos do not hold up the others.

Why actors and not Ray Data with an actor pool: Ray Data is built for
stateless batch transforms of a dataset; its failure handling retries or
drops whole blocks, with no hook to record "this video failed after N
tries" as the error lines that keep a run resumable, its output is a
dataset to iterate rather than per-item lines as they are grounded, and it
needs pyarrow and pandas (``ray[data]``), which vgem has no other use for.

**Faults.** A worker that dies (killed, out of memory, its node lost) is
taken out of the books, and the items of its unit that have no line yet go
back to the front of the queue, for whichever live worker is free next, up
to ``max_retries`` times; after that each of them gets an error line that
says why. A replacement worker is started only where the cluster has room
for one (a lost node's resources are gone, and a replacement that can never
be placed must not hold work), and a worker is given work only once it has
started. **No run waits forever:** when units wait and no started worker is
alive to take them for ``schedule_timeout`` seconds (default 600: a cluster
without room, every node lost), each of their items gets an error line and
the executor raises :class:`WorkersUnavailable`, one line, after the client
has kept what finished. Lines already handed back are never grounded or
handed back again.

**Signals.** ``ray.init`` installs a SIGTERM handler of its own that exits at
once (status 15, nothing written); the executor puts vgem's back right
after connecting (:mod:`vgem.execution.signals`), so SIGTERM and Ctrl-C stop
the workers and let the client write what finished, as the local executor
does. **Ray's own log lines** (its workers' and raylets' output) stay in
Ray's log files (``log_to_driver=False``), off vgem's stdout.

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

from vgem.errors import SettingsError, os_error_text
from vgem.execution.executor import (
    DEFAULT_SCHEDULE_TIMEOUT,
    ExecutorSettings,
    WorkerError,
    WorkersUnavailable,
)
from vgem.execution.signals import current_terminate_handler, keep_terminate_handler
from vgem.execution.worker import Worker, WorkerMeter, where_this_runs

if TYPE_CHECKING:
    from vgem.execution.units import Emit, GroundingJob, Line, WorkUnit

INSTALL_HINT = 'pip install "vgem[ray]"'
#: The object store of a Ray instance the executor starts: lines are small.
LOCAL_OBJECT_STORE_BYTES = 128 * 1024**2
WAIT_SECONDS = 0.5  # how often the driver wakes while it waits (so Ctrl-C is prompt)


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
    """One worker process: a :class:`~vgem.execution.worker.Worker` that keeps its grounder."""

    def __init__(self, job: GroundingJob) -> None:
        self.worker = Worker(job)

    def describe(self) -> dict[str, Any]:
        """Where the worker runs (host, pid, Ray node), and how long its grounder took."""
        where: dict[str, Any] = where_this_runs()
        with contextlib.suppress(Exception):
            import ray

            where["node_id"] = ray.get_runtime_context().get_node_id()
            where["node_ip"] = ray.util.get_node_ip_address()
        return {**where, "load_seconds": self.worker.load_seconds, "ran": self.worker.ran}

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
    """A worker in the driver's books: its actor, its meter, what it is grounding now.

    ``started`` turns true when the actor answers its first ``describe`` (it has
    been placed and built); only then is it given work."""

    actor: Any
    meter: WorkerMeter
    description: Any  # the reference to ``describe()``, asked when the actor starts
    started: bool = False
    attempt: _Attempt | None = None
    stream: Any = None
    since: float = 0.0
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
    ``max_retries``: how many times a unit is handed to another worker after
    its worker died on it. ``schedule_timeout``: how long units may wait with
    no started worker alive to take them. ``runtime_env``: Ray's runtime
    environment for the actors (e.g. ``{"pip": [...]}`` or ``{"env_vars":
    {...}}`` on a cluster). The numbers are checked by
    :class:`~vgem.execution.executor.ExecutorSettings`.
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
        schedule_timeout: float = DEFAULT_SCHEDULE_TIMEOUT,
    ) -> None:
        sizes = ExecutorSettings(
            workers=workers,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            max_retries=max_retries,
            schedule_timeout=schedule_timeout,
        )
        self.ray = import_ray()
        self.address = address
        self.workers = sizes.workers
        self.cpus_per_worker = sizes.cpus_per_worker
        self.gpus_per_worker = sizes.gpus_per_worker
        self.max_retries = sizes.max_retries
        self.schedule_timeout = sizes.schedule_timeout
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self._slots: list[_Slot] = []
        self._retired: list[_Slot] = []
        self._retried = 0
        self._unscheduled = 0
        self._seconds = 0.0
        self._samples = 0
        self._connected = False
        self._started_instance = False
        #: Where the last run's workers were: the address joined, "local" (an instance
        #: started for it) or "connected" (this process's existing connection).
        self._where = address or "local"

    # ----------------------------------------------------------------- accounting

    def execution(self) -> dict[str, Any]:
        """What the clients record of the last ``execute``: the workers that ran (a worker
        that was never placed is not counted), where each ran, and the throughput."""
        per_worker = []
        for slot in self._retired + self._slots:
            if not slot.started:
                continue
            entry = slot.meter.to_dict()
            if slot.died is not None:
                entry["died"] = slot.died
            per_worker.append(entry)
        rate = self._samples / self._seconds if self._samples and self._seconds > 0 else None
        execution: dict[str, Any] = {
            "executor": "ray",
            "address": self._where,
            "workers": len(per_worker),
            "workers_requested": self.workers,
            "cpus_per_worker": self.cpus_per_worker,
            "gpus_per_worker": self.gpus_per_worker,
            "seconds": round(self._seconds, 3),
            "samples_per_second": None if rate is None else round(rate, 4),
            "retried_units": self._retried,
            "per_worker": per_worker,
        }
        if self._unscheduled:
            execution["unscheduled_units"] = self._unscheduled
        return execution

    def _describe(self, slot: _Slot, *, again: bool) -> None:
        """Where a worker ran and how long its model took to load (``again``: ask an idle,
        live worker now, when its model is loaded; else what it said when it started)."""
        try:
            if again:
                slot.description = slot.actor.describe.remote()
            where = dict(self.ray.get(slot.description, timeout=5))
        except Exception:  # a dead or unreachable worker: where it ran stays as known
            return
        slot.meter.load_seconds = float(where.pop("load_seconds", 0.0))
        ran = where.pop("ran", None)
        if ran:
            slot.meter.ran = dict(ran)
        slot.meter.where = where
        slot.started = True

    # ----------------------------------------------------------------- connecting

    def start(self) -> None:
        """Connect to Ray (start a local instance, or join the cluster at ``address``).

        Called by the clients before they create anything, so that a refused
        address leaves nothing behind; ``execute`` calls it when it was not.
        """
        if self._connected:
            return
        ray = self.ray
        self._started_instance = False
        named = None if self.address in (None, "auto") else self.address  # not found by Ray
        if named is not None:
            _check_reachable(named)  # Ray itself would retry a dead address for minutes
        if ray.is_initialized():
            self._connected = True
            self._where = "connected"
            return
        options: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "log_to_driver": False,  # Ray's own lines stay in its logs, off vgem's stdout
            "runtime_env": self.runtime_env,
        }
        if self.address is None:
            options.update(
                num_cpus=max(1, math.ceil(self.workers * self.cpus_per_worker)),
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
            )
        handler = current_terminate_handler()
        try:
            with _native_stderr_muted(), _connect_wait(named):
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
        finally:
            keep_terminate_handler(handler)  # ray.init's own would exit 15, writing nothing
        self._connected = True
        self._started_instance = self.address is None
        self._where = self.address or "local"
        if self._started_instance and self.gpus_per_worker:
            available = ray.cluster_resources().get("GPU", 0)
            if available < self.workers * self.gpus_per_worker:
                self.stop()
                raise SettingsError(
                    f"{self.workers} `workers` with {self.gpus_per_worker:g} "
                    f"`gpus_per_worker` need {self.workers * self.gpus_per_worker:g} GPU(s); "
                    f"this machine has {available:g}.",
                    settings=("workers", "gpus_per_worker"),
                )

    def stop(self) -> None:
        """Stop what :meth:`start` started (a local Ray instance); leave a cluster joined
        by address, or a connection this process had before, as it was."""
        if self._connected and self._started_instance:
            with contextlib.suppress(Exception):
                self.ray.shutdown()
        self._connected = self._started_instance = False

    # ----------------------------------------------------------------- executing

    def execute(self, job: GroundingJob, units: Sequence[WorkUnit], emit: Emit) -> None:
        self._slots, self._retired, self._retried, self._samples = [], [], 0, 0
        self._unscheduled = 0
        if not units:
            return
        started = time.perf_counter()
        self.start()
        finished = False
        try:
            self._ground_all(job, units, emit)
            finished = True
        finally:
            self._seconds = time.perf_counter() - started
            for slot in self._retired + self._slots:
                self._describe(slot, again=finished and slot.died is None and slot.started)
            for slot in self._slots:
                with contextlib.suppress(Exception):
                    self.ray.kill(slot.actor)
            self.stop()

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

    def _room_for_a_worker(self) -> bool:
        """Whether the cluster has the resources of one more worker free now."""
        try:
            free = self.ray.available_resources()
        except Exception:
            return False
        cpus_free = free.get("CPU", 0.0) >= self.cpus_per_worker - 1e-9
        gpus_free = free.get("GPU", 0.0) >= self.gpus_per_worker - 1e-9
        return cpus_free and gpus_free

    def _fits_a_node(self) -> bool:
        """Whether any live node of the cluster has, in all, the resources of one worker
        (when none has, no worker can ever be placed: waiting would be forever)."""
        try:
            nodes = self.ray.nodes()
        except Exception:
            return True  # cannot tell: wait, within the schedule timeout
        for node in nodes:
            if not node.get("Alive"):
                continue
            total = node.get("Resources") or {}
            cpus = total.get("CPU", 0.0) >= self.cpus_per_worker - 1e-9
            gpus = total.get("GPU", 0.0) >= self.gpus_per_worker - 1e-9
            if cpus and gpus:
                return True
        return False

    def _ground_all(self, job: GroundingJob, units: Sequence[WorkUnit], emit: Emit) -> None:
        ray = self.ray
        dead_errors = _worker_death_errors(ray)
        job_ref = ray.put(job)
        todo = deque(_Attempt(unit) for unit in units)
        emitted: set[str] = set()
        self._slots = [
            self._start_worker(job_ref, number) for number in range(min(self.workers, len(units)))
        ]
        deaths_in_a_row = 0
        waiting_since: float | None = None
        last_death = ""

        def died(slot: _Slot, error: BaseException) -> None:
            """A worker is gone: its unit's items without a line go back to the queue."""
            nonlocal deaths_in_a_row, last_death
            if getattr(error, "actor_init_failed", False):
                raise WorkerError(f"A Ray worker could not start: {_last_line(error)}") from None
            deaths_in_a_row += 1
            last_death = _death_reason(error)
            attempt = slot.attempt
            self._bury(slot, error)
            remaining = None if attempt is None else _remaining(attempt, emitted)
            if remaining is not None:
                remaining.deaths += 1
                remaining.reasons.append(last_death)
                if remaining.deaths > self.max_retries:
                    self._give_up(job, remaining, emit, emitted, "died")
                else:
                    self._retried += 1
                    todo.appendleft(remaining)
            if deaths_in_a_row > max(3, 2 * self.workers) + self.max_retries:
                raise WorkerError(
                    f"Ray workers died {deaths_in_a_row} times in a row without "
                    f"grounding anything; the last: {last_death}"
                ) from None

        next_look = 0.0
        while True:
            for slot in self._slots:
                if slot.started and slot.attempt is None and todo:
                    slot.attempt = todo.popleft()
                    slot.stream = slot.actor.ground.options(num_returns="streaming").remote(
                        slot.attempt.unit
                    )
                    slot.since = time.perf_counter()
            busy = [slot for slot in self._slots if slot.attempt is not None]
            if not busy and not todo:
                return
            short = min(self.workers, len(todo) + len(busy)) - len(self._slots)
            if todo and short > 0 and self._retired and time.monotonic() >= next_look:
                # Workers were lost: replace one, but only where the cluster has room for
                # it (a lost node's resources are gone), so no unit waits on a worker
                # that can never be placed; the live workers take the work meanwhile.
                next_look = time.monotonic() + 1.0
                if self._room_for_a_worker():
                    number = len(self._slots) + len(self._retired)
                    self._slots.append(self._start_worker(job_ref, number))
            if todo and not any(slot.started for slot in self._slots):
                waiting_since = waiting_since or time.monotonic()
                waited = time.monotonic() - waiting_since
                if waited > self.schedule_timeout or (waited > 0.5 and not self._fits_a_node()):
                    self._abandon(job, todo, emit, emitted, last_death, waited)
                    return
            else:
                waiting_since = None
            waiting = {slot.description: slot for slot in self._slots if not slot.started}
            streams = {slot.stream: slot for slot in busy}
            ready, _ = ray.wait([*waiting, *streams], num_returns=1, timeout=WAIT_SECONDS)
            for reference in ready:
                if reference in waiting:
                    slot = waiting[reference]
                    try:
                        ray.get(reference)
                    except dead_errors as error:
                        died(slot, error)
                        continue
                    self._describe(slot, again=False)
                    slot.started = True
                    continue
                slot = streams[reference]
                try:
                    line = ray.get(next(reference))
                except StopIteration:
                    self._finish(slot)
                    continue
                except dead_errors as error:
                    died(slot, error)
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
        slot.meter.busy_seconds += time.perf_counter() - slot.since
        slot.meter.units += 1
        slot.attempt = slot.stream = None

    def _bury(self, slot: _Slot, error: BaseException) -> None:
        """A worker died: take it out of the books (its share so far is kept)."""
        if slot.attempt is not None:
            slot.meter.busy_seconds += time.perf_counter() - slot.since
        slot.died = _death_reason(error)
        slot.attempt = slot.stream = None
        with contextlib.suppress(Exception):
            self.ray.kill(slot.actor)
        self._slots.remove(slot)
        self._retired.append(slot)

    def _give_up(
        self, job: GroundingJob, attempt: _Attempt, emit: Emit, emitted: set[str], why: str
    ) -> None:
        """Every item of the unit without a line gets an error line saying why."""
        if why == "died":
            reason = (
                f"the worker grounding this video died {attempt.deaths} time(s): "
                f"{attempt.reasons[-1]}"
            )
        else:
            reason = why
        for sample in attempt.unit.samples:
            if sample.id in emitted:
                continue
            emitted.add(sample.id)
            emit(job.task.error_record(sample, job.context, reason, 0.0))

    def _abandon(
        self,
        job: GroundingJob,
        todo: deque[_Attempt],
        emit: Emit,
        emitted: set[str],
        last: str,
        waited: float,
    ) -> None:
        """No started worker is alive to take the waiting units: record them and say so."""
        if waited > self.schedule_timeout:
            why = f"no Ray worker could take it within {self.schedule_timeout:g} s"
        else:
            why = (
                f"no live node of the Ray cluster has {self.cpus_per_worker:g} CPU(s)"
                + (f" and {self.gpus_per_worker:g} GPU(s)" if self.gpus_per_worker else "")
                + " for a worker"
            )
        cause = f" (the last worker lost: {last})" if last else ""
        count = len(todo)
        self._unscheduled = count
        while todo:
            self._give_up(job, todo.popleft(), emit, emitted, f"{why}{cause}")
        raise WorkersUnavailable(
            f"{count} video(s) were not grounded: {why}{cause}. They are recorded as errors "
            "and what finished is kept: run again (with `retry_errors` for an evaluation) "
            "when the cluster has room.",
            settings=("retry_errors",),
        )


#: How many one-second tries a driver gives a named cluster, already found to answer,
#: to hand over its id (Ray's own default is 20; ``RAY_NUM_REDIS_GET_RETRIES`` or
#: ``RAY_gcs_server_port_wait_time_s`` set by the user is kept). A cluster that answers
#: but refuses the driver (its token missing or wrong) is said so in seconds.
NAMED_CONNECT_TRIES = 5


@contextlib.contextmanager
def _connect_wait(named: str | None) -> Iterator[None]:
    """Fewer connection tries for a named address (Ray's constant, for the while; the
    environment is left alone). Without that constant (another Ray), Ray's own wait."""
    user_set = {"RAY_NUM_REDIS_GET_RETRIES", "RAY_gcs_server_port_wait_time_s"} & set(os.environ)
    constants: Any = None
    with contextlib.suppress(ImportError):
        from ray._private import ray_constants as constants
    name = "NUM_REDIS_GET_RETRIES"
    if named is None or user_set or constants is None or not hasattr(constants, name):
        yield
        return
    previous = getattr(constants, name)
    setattr(constants, name, min(int(previous), NAMED_CONNECT_TRIES))
    try:
        yield
    finally:
        setattr(constants, name, previous)


@contextlib.contextmanager
def _native_stderr_muted() -> Iterator[None]:
    """While Ray connects, its C++ client writes its retries straight to the process's
    stderr (a line a second while a cluster refuses it): keep those off the terminal.
    vgem says in one line what went wrong; Ray's own account is in its log files."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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
    names = (
        "RayActorError",
        "ActorUnavailableError",
        "WorkerCrashedError",
        "NodeDiedError",
        "OutOfMemoryError",
    )
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
