"""Where ``RayExecutor`` used to live; it is the execution layer's now
(:mod:`vgem.execution.ray_executor`), shared by evaluations and batches.
Kept so that ``from vgem.eval.ray_executor import RayExecutor`` goes on working."""

from vgem.execution.executor import WorkerError, WorkersUnavailable
from vgem.execution.ray_executor import RayExecutor, import_ray

__all__ = ["RayExecutor", "WorkerError", "WorkersUnavailable", "import_ray"]
