"""Evaluation as a library: samples in, the results document out.

    import vgem.eval
    source = vgem.eval.open_dataset("gyt", "~/data/gyt")
    result = vgem.eval.run(source, backbone="viclip-b16")
    result.document["overall"]["pointing"]["accuracy"]

Data flows one way here as elsewhere: an adapter reads a benchmark's public
annotation release into samples (vgem.eval.datasets, vgem.eval.samples); a
task (vgem.eval.tasks) says how they are grounded, recorded and scored; one
run loop (vgem.eval.engine) grounds what is not done yet through an executor
of the execution layer (vgem.execution) and writes every prediction to the
run directory; the report
(vgem.eval.report) turns the predictions into results.json and tables.
``vgem eval`` is a thin shell over :func:`run`. Importing this package needs
neither torch nor the CLI; the names below load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vgem.eval.engine import EvalResult, RunListener, export_manifest, run, select
    from vgem.eval.report import load_results, render_tables
    from vgem.eval.samples import ManifestProblem, Sample, VideoSample
    from vgem.eval.selection import Selection
    from vgem.eval.sources import SampleSource, open_dataset, open_manifest
    from vgem.eval.tasks import SpatialTask, Task, WholeVideoTask, make_task
    from vgem.execution.executor import Executor
    from vgem.execution.factory import make_executor
    from vgem.execution.local import LocalExecutor
    from vgem.execution.ray_executor import RayExecutor
    from vgem.execution.recipe import GrounderRecipe
    from vgem.execution.units import GroundingJob

_EXPORTS = {
    "EvalResult": "vgem.eval.engine",
    "Executor": "vgem.execution.executor",
    "GrounderRecipe": "vgem.execution.recipe",
    "GroundingJob": "vgem.execution.units",
    "LocalExecutor": "vgem.execution.local",
    "RunListener": "vgem.eval.engine",
    "export_manifest": "vgem.eval.engine",
    "make_executor": "vgem.execution.factory",
    "RayExecutor": "vgem.execution.ray_executor",
    "run": "vgem.eval.engine",
    "select": "vgem.eval.engine",
    "load_results": "vgem.eval.report",
    "render_tables": "vgem.eval.report",
    "ManifestProblem": "vgem.eval.samples",
    "Sample": "vgem.eval.samples",
    "Selection": "vgem.eval.selection",
    "VideoSample": "vgem.eval.samples",
    "SampleSource": "vgem.eval.sources",
    "open_dataset": "vgem.eval.sources",
    "open_manifest": "vgem.eval.sources",
    "SpatialTask": "vgem.eval.tasks",
    "Task": "vgem.eval.tasks",
    "WholeVideoTask": "vgem.eval.tasks",
    "make_task": "vgem.eval.tasks",
}

__all__ = [
    "EvalResult",
    "Executor",
    "GrounderRecipe",
    "GroundingJob",
    "LocalExecutor",
    "ManifestProblem",
    "RayExecutor",
    "RunListener",
    "Sample",
    "SampleSource",
    "Selection",
    "SpatialTask",
    "Task",
    "VideoSample",
    "WholeVideoTask",
    "export_manifest",
    "load_results",
    "make_executor",
    "make_task",
    "open_dataset",
    "open_manifest",
    "render_tables",
    "run",
    "select",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vgem.eval' has no attribute {name!r}")
    return getattr(import_module(module), name)
