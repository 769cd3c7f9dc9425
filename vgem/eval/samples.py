"""What an evaluation runs on: samples, whole-video samples, and the selection of a run.

A :class:`Sample` is one frame to ground (the spatial task, and every line of
a manifest); a :class:`VideoSample` is one untrimmed video with its steps,
their ground-truth segments and boxes (the whole-video tasks). Both are
immutable and compare by value, so their fingerprints identify an annotation.
Dataset adapters build them from annotation releases (vgem.eval.datasets),
the manifest reads and writes samples (vgem.eval.manifest), and
:func:`vgem.eval.selection.select_samples` picks those a run evaluates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, TypeVar

Box = tuple[float, float, float, float]


@dataclass(frozen=True, kw_only=True)
class VideoAnnotation:
    """What every sample says: its id, its video, where it comes from, its frames' size.

    ``frame_size`` (``[width, height]``) is the size of the frame the boxes
    were drawn on; without it they are in pixels of the video's own frames.
    """

    id: str
    video: str
    dataset: str | None = None
    frame_size: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        require_text(self.id, "id")
        require_text(self.video, "video")
        if self.dataset is not None:
            require_text(self.dataset, "dataset")
        if self.frame_size is not None:
            object.__setattr__(self, "frame_size", parse_frame_size(self.frame_size))


@dataclass(frozen=True, kw_only=True)
class Sample(VideoAnnotation):
    """One evaluation sample: where to look, what to look for, what is right.

    Boxes may be given as any sequences of four numbers; they are stored as
    tuples of floats so that a sample is immutable and compares by value.
    Construction raises ``ValueError`` with a one-line reason when the sample
    cannot be evaluated.
    """

    query: str
    boxes: tuple[Box, ...]
    time: float | None = None
    frame: int | None = None
    class_name: str | None = None
    human_boxes: tuple[Box, ...] = ()
    object_boxes: tuple[Box, ...] = ()
    #: The number type the annotation stored the boxes in, where the scoring follows it
    #: (V-HICO: the authors scaled them as torch tensors of that type); None: the
    #: dataset's rule (vgem.eval.metrics.box_arithmetic).
    box_dtype: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require_text(self.query, "query")
        if self.box_dtype not in (None, "float32", "float64"):
            raise ValueError(f"'box_dtype' is float32 or float64, not {self.box_dtype!r}")
        if (self.time is None) == (self.frame is None):
            raise ValueError("give exactly one of 'time' and 'frame'")
        if self.time is not None:
            object.__setattr__(self, "time", _seconds(self.time))
        if self.frame is not None:
            object.__setattr__(self, "frame", _frame_index(self.frame))
        object.__setattr__(self, "boxes", _boxes(self.boxes, "boxes", allow_empty=False))
        object.__setattr__(self, "human_boxes", _boxes(self.human_boxes, "human_boxes"))
        object.__setattr__(self, "object_boxes", _boxes(self.object_boxes, "object_boxes"))
        if self.class_name is not None:
            require_text(self.class_name, "class")

    @property
    def class_key(self) -> str:
        """The class this sample counts under: its class, else its query."""
        return self.class_name if self.class_name is not None else self.query


@dataclass(frozen=True)
class ManifestProblem:
    """A sample that could not be read, and why, in words for the user.

    ``line`` is the manifest line (1-based) when the problem comes from a
    manifest; adapters name the place in their annotation file in ``reason``
    instead. ``sample`` is set when the sample itself was valid but cannot be
    run, so that a runner can count it as an error. ``kind`` is the reason in
    a few words, without the entry's particulars ("no YouCook2 sentence"): the
    data report counts skipped entries per kind (the reason when not given).
    ``kept``: a warning about data that is still evaluated (no segment file:
    segments are made from the boxes), counted among the report's remarks
    rather than as skipped.
    """

    source: str
    reason: str
    line: int | None = None
    sample: Sample | None = None
    kind: str | None = None
    kept: bool = False

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class DataNote:
    """What an adapter noticed about an entry it kept, for the data report of a run.

    Nothing here stops the sample from being evaluated; it is counted so that
    a run on a public release can be audited against the paper. ``flags``:
    annotation flags the entry carries (DALY's ``isReflection``);
    ``outside_frame``: boxes the adapter knows lie outside their frame where
    the sample cannot say so itself (no ``frame_size``); ``remarks``: other
    counted observations, in a few words ("time and frame number disagree").
    """

    source: str
    sample_id: str
    flags: tuple[str, ...] = ()
    outside_frame: int = 0
    remarks: tuple[str, ...] = ()


@dataclass(frozen=True)
class TruthSegment:
    """A step happening during ``[start, end)`` seconds (an annotated ``[first, last]``
    second range is ``[first, last + 1)``)."""

    step: str
    start: float
    end: float


@dataclass(frozen=True)
class TruthBox:
    """Where ``step`` happens at one annotated second: ``[x1, y1, x2, y2]`` in pixels
    of the video's frames (or of the sample's ``frame_size``)."""

    second: int
    step: str
    box: Box


@dataclass(frozen=True, kw_only=True)
class VideoSample(VideoAnnotation):
    """One untrimmed video: its steps (the queries), when they happen, and boxes.

    Construction raises ``ValueError`` with a one-line reason when the sample
    cannot be evaluated; sequences are stored as tuples, so a sample is
    immutable and compares (and fingerprints) by value.
    """

    steps: tuple[str, ...]
    segments: tuple[TruthSegment, ...]
    boxes: tuple[TruthBox, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        steps = tuple(self.steps)
        if not steps:
            raise ValueError("a video needs at least one step")
        for step in steps:
            require_text(step, "step")
        if len(set(steps)) != len(steps):
            raise ValueError("the steps of a video must be distinct")
        object.__setattr__(self, "steps", steps)
        # times as floats and boxes as checked tuples: equal annotations fingerprint alike
        segments = tuple(
            TruthSegment(
                s.step,
                _finite(s.start, f"segment of {s.step!r}", limit=MAX_SECONDS),
                _finite(s.end, f"segment of {s.step!r}", limit=MAX_SECONDS),
            )
            for s in self.segments
        )
        object.__setattr__(self, "segments", segments)
        for segment in segments:
            if segment.step not in steps:
                raise ValueError(f"segment of unknown step {segment.step!r}")
            if not (math.isfinite(segment.start) and math.isfinite(segment.end)):
                raise ValueError(f"segment of {segment.step!r} has a non-finite time")
            if not 0 <= segment.start < segment.end:
                raise ValueError(
                    f"segment of {segment.step!r} must have 0 ≤ start < end, "
                    f"found [{segment.start:g}, {segment.end:g})"
                )
        boxes = []
        for truth in self.boxes:
            if truth.step not in steps:
                raise ValueError(f"box of unknown step {truth.step!r}")
            if isinstance(truth.second, bool) or not isinstance(truth.second, int):
                raise ValueError(f"box second must be a whole number, found {truth.second!r}")
            if truth.second < 0:
                raise ValueError(f"box second must not be negative, found {truth.second}")
            if truth.second > MAX_SECONDS:
                raise ValueError(f"box second must be at most {MAX_SECONDS:g}")
            box = parse_box(truth.box, f"box at second {truth.second}", allow_inverted=True)
            boxes.append(TruthBox(truth.second, truth.step, box))
        object.__setattr__(self, "boxes", tuple(boxes))

    def to_record(self) -> dict[str, Any]:
        """Plain JSON: what the sample's fingerprint covers."""
        record: dict[str, Any] = {
            "id": self.id,
            "video": self.video,
            "steps": list(self.steps),
            "segments": [[s.step, s.start, s.end] for s in self.segments],
            "boxes": [[b.second, b.step, list(b.box)] for b in self.boxes],
        }
        if self.dataset is not None:
            record["dataset"] = self.dataset
        if self.frame_size is not None:
            record["frame_size"] = list(self.frame_size)
        return record


def segments_from_boxes(boxes: Iterable[TruthBox]) -> list[TruthSegment]:
    """Runs of consecutive annotated seconds of one step, as segments.

    Used when a release has per-second boxes but no segment file: second k
    stands for [k, k + 1), so seconds 4, 5, 6 and 9 of a step give [4, 7) and
    [9, 10). A second missing inside a step splits it.
    """
    seconds: dict[str, set[int]] = {}
    for truth in boxes:
        seconds.setdefault(truth.step, set()).add(truth.second)
    segments = []
    for step, step_seconds in seconds.items():
        ordered = sorted(step_seconds)
        start = previous = ordered[0]
        for second in [*ordered[1:], None]:
            if second is not None and second == previous + 1:
                previous = second
                continue
            segments.append(TruthSegment(step, float(start), float(previous + 1)))
            if second is not None:
                start = previous = second
    return sorted(segments, key=lambda segment: (segment.start, segment.step))


def group_by_video(samples: Iterable[AnySample]) -> dict[str, list[AnySample]]:
    """Samples per video, videos in order of first appearance."""
    groups: dict[str, list[AnySample]] = {}
    for sample in samples:
        groups.setdefault(sample.video, []).append(sample)
    return groups


# --------------------------------------------------------------------------- checks


def json_type_name(value: Any) -> str:
    """What a JSON value is, in words for a message ("a string", "an array")."""
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if _is_number(value):
        return "a number"
    return "an array" if isinstance(value, Iterable) else type(value).__name__


def _as_list(value: Any, what: str, expected: str) -> list[Any]:
    """The items of a JSON array (or any non-text sequence an adapter passes)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f"{what} must be {expected}, found {json_type_name(value)}")
    return list(value)


def require_text(value: Any, name: str) -> None:
    """Refuse (``ValueError``) a field that is not a non-blank string."""
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string, found {json_type_name(value)}")
    if not value.strip():
        raise ValueError(f"'{name}' is empty")


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


# Ranges every numeric field must lie in, so that no later arithmetic (scaling a
# box to the model's input, rounding it, a time to a frame) can overflow.
MAX_COORDINATE = 1e6
"""Largest magnitude of a box coordinate (in its frame's units)."""
FRAME_SIDE_RANGE = (1e-3, 1e6)
"""Smallest and largest width or height of a ``frame_size``."""
MAX_SECONDS = 1e7
"""Latest time (seconds, about 116 days) a sample or segment may name."""
MAX_FRAME_INDEX = 10**9
"""Highest frame index a sample may name."""


def _finite(value: Any, what: str, *, limit: float = math.inf) -> float:
    """A finite number of magnitude at most ``limit``; ``ValueError`` naming ``what`` otherwise."""
    if not _is_number(value):
        raise ValueError(f"{what} must be a number, found {json_type_name(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise ValueError(f"{what} must be finite, found a number too large to use") from None
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, found {number}")
    if abs(number) > limit:
        raise ValueError(f"{what} must lie within ±{limit:g}, found {number:g}")
    return number


def _seconds(value: Any) -> float:
    seconds = _finite(value, "'time'", limit=MAX_SECONDS)
    if seconds < 0:
        raise ValueError(f"'time' must not be negative, found {seconds:g}")
    return seconds


def _frame_index(value: Any) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise ValueError(f"'frame' must be a whole number, found {value!r}")
    index = int(value)
    if index < 0:
        raise ValueError(f"'frame' must not be negative, found {index}")
    if index > MAX_FRAME_INDEX:
        raise ValueError(f"'frame' must be at most {MAX_FRAME_INDEX}")
    return index


def parse_box(value: Any, what: str, *, allow_inverted: bool = False) -> Box:
    """A checked ``[x1, y1, x2, y2]`` as floats; ``ValueError`` naming ``what`` otherwise.

    ``allow_inverted``: keep a box with ``x2 < x1`` or ``y2 < y1`` as it is.
    Ground truth does (:func:`is_inverted`): a public release holds such boxes
    (GroundingYouTube has 18), the authors' evaluation keeps them and no point
    lies in them, so they count as misses; the data report counts them.
    """
    coordinates = _as_list(value, what, "[x1, y1, x2, y2]")
    if len(coordinates) != 4:
        raise ValueError(f"{what} must have 4 numbers [x1, y1, x2, y2], found {len(coordinates)}")
    x1, y1, x2, y2 = (_finite(number, what, limit=MAX_COORDINATE) for number in coordinates)
    if allow_inverted:
        return (x1, y1, x2, y2)
    if x2 < x1:
        raise ValueError(f"{what} has x2 < x1 ({x2:g} < {x1:g})")
    if y2 < y1:
        raise ValueError(f"{what} has y2 < y1 ({y2:g} < {y1:g})")
    return (x1, y1, x2, y2)


def is_inverted(box: Sequence[float]) -> bool:
    """Whether a box has ``x2 < x1`` or ``y2 < y1`` (no point lies in it)."""
    return box[2] < box[0] or box[3] < box[1]


def _boxes(value: Any, name: str, *, allow_empty: bool = True) -> tuple[Box, ...]:
    items = _as_list(value, f"'{name}'", "a list of boxes")
    boxes = tuple(
        parse_box(box, f"'{name}' box {index}", allow_inverted=True)
        for index, box in enumerate(items, start=1)
    )
    if not boxes and not allow_empty:
        raise ValueError(f"'{name}' is empty; a sample needs at least one box")
    return boxes


def parse_frame_size(value: Any) -> tuple[float, float]:
    """A checked, positive ``[width, height]``."""
    sizes = _as_list(value, "'frame_size'", "[width, height]")
    if len(sizes) != 2:
        raise ValueError(f"'frame_size' must be [width, height], found {len(sizes)} numbers")
    width, height = (_finite(size, "'frame_size'") for size in sizes)
    if width <= 0 or height <= 0:
        raise ValueError(f"'frame_size' must be positive, found [{width:g}, {height:g}]")
    smallest, largest = FRAME_SIDE_RANGE
    if not (smallest <= width <= largest and smallest <= height <= largest):
        raise ValueError(
            f"'frame_size' must lie in [{smallest:g}, {largest:g}], found [{width:g}, {height:g}]"
        )
    return (width, height)


AnySample = TypeVar("AnySample", Sample, VideoSample)
