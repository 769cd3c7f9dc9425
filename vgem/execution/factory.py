"""Choosing an executor by name, from plain settings (what the command line gives)."""

from __future__ import annotations

from vgem.errors import SettingsError
from vgem.execution.executor import Executor, ExecutorSettings
from vgem.execution.local import LocalExecutor

EXECUTORS = ("local", "ray")


def make_executor(
    name: str = "local",
    *,
    ray_address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float | None = None,
    gpus_per_worker: float | None = None,
) -> Executor:
    """The executor called ``name``: ``local`` (this process) or ``ray`` (Ray actors,
    :class:`vgem.execution.ray_executor.RayExecutor`; needs the ``ray`` extra).

    The local executor takes none of the other settings. Nothing is started
    here: a Ray executor connects in its ``start()``.
    """
    chosen = str(name).strip().lower()
    ray_settings = {
        "ray_address": ray_address,
        "workers": workers,
        "cpus_per_worker": cpus_per_worker,
        "gpus_per_worker": gpus_per_worker,
    }
    if chosen == "local":
        given = [setting for setting, value in ray_settings.items() if value is not None]
        if given:
            verb = "applies" if len(given) == 1 else "apply"
            raise SettingsError(
                f"{', '.join(f'`{setting}`' for setting in given)} {verb} to `executor` ray; "
                "the local executor is this process alone.",
                settings=("executor", *given),
            )
        return LocalExecutor()
    if chosen == "ray":
        sizes = ExecutorSettings(
            workers=1 if workers is None else workers,
            cpus_per_worker=1.0 if cpus_per_worker is None else cpus_per_worker,
            gpus_per_worker=0.0 if gpus_per_worker is None else gpus_per_worker,
        )
        from vgem.execution.ray_executor import RayExecutor

        return RayExecutor(
            ray_address,
            workers=sizes.workers,
            cpus_per_worker=sizes.cpus_per_worker,
            gpus_per_worker=sizes.gpus_per_worker,
        )
    raise SettingsError(
        f"`executor` takes {' or '.join(EXECUTORS)}, not {name!r}.", settings=("executor",)
    )
