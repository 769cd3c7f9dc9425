"""Benchmark adapters: public annotation releases in, manifest samples out.

Each adapter is registered in the ``vgem.datasets`` entry-point group exactly
as a third-party one would be, and names an instance with ``name``,
``description`` and ``read(root)`` (see :class:`DatasetAdapter`). Adapters read
annotations only; whether the videos they point at exist is the runner's
concern, so a manifest can be exported before any video is downloaded.
"""

from vgem.eval.datasets.base import DatasetAdapter

__all__ = ["DatasetAdapter"]
