"""What an executor runs: work units, the job they belong to, and the lines they give back.

The execution layer knows nothing about benchmarks or batches. A client (an
evaluation, a many-video batch) cuts its work into :class:`WorkUnit` objects
(one video each, with the items grounded in it) and hands an executor one
:class:`GroundingJob`: the client's own ``work`` object (a :class:`UnitWork`),
an opaque ``context`` the work needs, and how to build a grounder. Whatever
runs a unit calls ``work.ground_unit``, which hands back one :data:`Line`
(a JSON-able dict with an ``id``) per item as soon as the item is done; the
executor passes every line to the client's ``emit`` in the driver process,
which stays the only writer of the client's records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vgem.errors import os_error_text

if TYPE_CHECKING:
    from vgem.grounder import OnGrounded
    from vgem.results import GroundingResult
    from vgem.temporal import TemporalSettings
    from vgem.video import VideoInfo

Line = dict[str, Any]
Emit = Callable[[Line], None]


class SupportsGround(Protocol):
    """What a unit's work needs of a grounder: :class:`vgem.grounder.Grounder` has it.

    ``ground`` is the part of :meth:`vgem.grounder.Grounder.ground` the clients
    call: an already probed video, a list of queries and these keywords.
    """

    @property
    def input_size(self) -> int: ...

    def ground(
        self,
        video: VideoInfo,
        queries: Sequence[str],
        *,
        fps: float | None = None,
        at: Sequence[float] | None = None,
        temporal: TemporalSettings | None = None,
        on_grounded: OnGrounded | None = None,
        box_threshold: float | None = None,
        smooth: float | None = None,
    ) -> GroundingResult: ...


@dataclass(frozen=True)
class WorkUnit:
    """The items of one video, grounded together (picklable: sent to workers).

    ``known_errors``: items already known to fail, by id, with the reason
    (their lines are errors, and nothing is grounded for them).
    """

    video: str
    samples: tuple[Any, ...]
    known_errors: Mapping[str, str] = field(default_factory=dict)


class UnitWork(Protocol):
    """What a worker needs of a client's work: an evaluation task has it, and so has
    the grounding of many videos."""

    def ground_unit(
        self,
        unit: WorkUnit,
        context: Any,
        grounder: Callable[[], SupportsGround],
        emit: Emit,
    ) -> None:
        """Ground one unit, handing each of its lines (a dict with an ``id``) to ``emit``.

        ``grounder()`` builds the model on first call (and keeps it), so a unit
        whose video is missing loads nothing.
        """

    def error_record(self, sample: Any, context: Any, reason: str, seconds: float) -> Line:
        """The line of an item that could not be run (an executor gives one to each item
        of a unit that no worker could finish)."""


@dataclass(frozen=True)
class GroundingJob:
    """What every worker of a run needs: the client's work, its context, the grounder's
    recipe. Picklable when ``load_grounder`` is (a
    :class:`~vgem.execution.recipe.GrounderRecipe` is)."""

    task: UnitWork
    context: Any
    load_grounder: Callable[[], SupportsGround]


def missing_video_reason(video: str, root: Path) -> str:
    """What the line of an item whose video is missing says."""
    return f"video {video!r} not found under {root}"


def error_reason(error: BaseException) -> str:
    """A failure as the line of an item records it."""
    if isinstance(error, OSError):
        return f"{getattr(error, 'filename', None) or 'video'}: {os_error_text(error)}"
    return str(error)
