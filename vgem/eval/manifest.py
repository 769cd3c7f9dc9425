"""The sample manifest: one JSON object per line, one evaluation sample each.

Every benchmark adapter produces these samples and ``vgem eval --manifest FILE
--root DIR`` evaluates any file of them, so the manifest is the one way into
evaluation: a dataset without an adapter, or one whose release differs from
what an adapter expects, can always be written as a manifest by hand.

Format (JSON Lines, UTF-8, blank lines ignored)::

    {"id": "-1okAudsnAc/81", "video": "mining_resized_video/-1okAudsnAc.mp4",
     "time": 81, "query": "crack eggs", "boxes": [[218, 110, 421, 335]],
     "class": "crack eggs", "dataset": "gyt"}

(shown wrapped; in the file each object is on one line)

Fields:

- ``id`` (string, required): unique within the file. Runs record results by
  id, so a resumed run skips exactly the samples already done.
- ``video`` (string, required): a video file or a folder of frames, relative
  to the root given with ``--root`` (an absolute path is used as it is).
- ``time`` (number, seconds) or ``frame`` (integer, 0-based; in a frame
  folder, the position in natural name order): the target frame to ground.
  Exactly one of the two.
- ``query`` (string, required, not blank): the action to find.
- ``boxes`` (required, at least one): ground-truth boxes ``[x1, y1, x2, y2]``
  in pixels of the frame (see ``frame_size``), origin top-left, with
  ``x2 >= x1`` and ``y2 >= y1``. A prediction is correct when it falls in
  any of them, borders included; like the authors, vgem scores it after
  scaling the boxes to the model's S x S input and rounding them.
- ``class`` (string, optional): the class the sample is averaged under in the
  per-class figures; without it the query is the class, as in the authors'
  evaluation, which grouped by the text label.
- ``human_boxes``, ``object_boxes`` (lists of boxes, optional): the parts
  that ``boxes`` was built from where a benchmark has them (V-HICO, DALY).
- ``dataset`` (string, optional): the benchmark the sample comes from.
- ``frame_size`` (``[width, height]``, optional): the size of the frame the
  boxes were drawn on, in the boxes' own units. Without it the boxes are in
  pixels of the video's own frames. A benchmark whose boxes were drawn on a
  rescaled copy (YouCook-Interactions: 640 x 360) or given as fractions of
  the frame (DALY: ``[1, 1]``) says so here, and the boxes stay exactly as
  published.

Any other field is an error, so a misspelt optional field is reported rather
than silently ignored. A line that cannot be used (invalid JSON, a missing
field, a box with ``x2 < x1``, a duplicate id) is reported with its line
number and reading goes on with the next line.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from vgem.errors import DatasetError

Box = tuple[float, float, float, float]

REQUIRED_FIELDS = ("id", "video", "query", "boxes")
OPTIONAL_FIELDS = (
    "time",
    "frame",
    "class",
    "human_boxes",
    "object_boxes",
    "dataset",
    "frame_size",
)
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS + OPTIONAL_FIELDS)


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One evaluation sample: where to look, what to look for, what is right.

    Boxes may be given as any sequences of four numbers; they are stored as
    tuples of floats so that a sample is immutable and compares by value.
    Construction raises ``ValueError`` with a one-line reason when the sample
    cannot be evaluated.
    """

    id: str
    video: str
    query: str
    boxes: tuple[Box, ...]
    time: float | None = None
    frame: int | None = None
    class_name: str | None = None
    human_boxes: tuple[Box, ...] = ()
    object_boxes: tuple[Box, ...] = ()
    dataset: str | None = None
    frame_size: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _require_text(self.id, "id")
        _require_text(self.video, "video")
        _require_text(self.query, "query")
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
            _require_text(self.class_name, "class")
        if self.dataset is not None:
            _require_text(self.dataset, "dataset")
        if self.frame_size is not None:
            object.__setattr__(self, "frame_size", _frame_size(self.frame_size))

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
    run (its video is missing), so that a runner can count it as an error.
    """

    source: str
    reason: str
    line: int | None = None
    sample: Sample | None = None

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.reason}"


def sample_from_record(record: Any) -> Sample:
    """A sample from one decoded manifest object; ``ValueError`` if unusable."""
    if not isinstance(record, Mapping):
        raise ValueError(f"expected a JSON object, found {_json_type(record)}")
    unknown = sorted(str(key) for key in record if key not in KNOWN_FIELDS)
    if unknown:
        listing = ", ".join(repr(key) for key in unknown)
        raise ValueError(f"unknown field {listing}; known fields: {', '.join(_field_order())}")
    for required in REQUIRED_FIELDS:
        if required not in record:
            raise ValueError(f"missing field '{required}'")
    return Sample(
        id=record["id"],
        video=record["video"],
        query=record["query"],
        boxes=record["boxes"],
        time=record.get("time"),
        frame=record.get("frame"),
        class_name=record.get("class"),
        human_boxes=record.get("human_boxes", ()),
        object_boxes=record.get("object_boxes", ()),
        dataset=record.get("dataset"),
        frame_size=record.get("frame_size"),
    )


def sample_to_record(sample: Sample) -> dict[str, Any]:
    """The manifest object of a sample; optional fields only when set."""
    record: dict[str, Any] = {"id": sample.id, "video": sample.video}
    if sample.time is not None:
        record["time"] = _plain_number(sample.time)
    else:
        record["frame"] = sample.frame
    record["query"] = sample.query
    record["boxes"] = _plain_boxes(sample.boxes)
    if sample.class_name is not None:
        record["class"] = sample.class_name
    if sample.human_boxes:
        record["human_boxes"] = _plain_boxes(sample.human_boxes)
    if sample.object_boxes:
        record["object_boxes"] = _plain_boxes(sample.object_boxes)
    if sample.dataset is not None:
        record["dataset"] = sample.dataset
    if sample.frame_size is not None:
        record["frame_size"] = [_plain_number(value) for value in sample.frame_size]
    return record


def sample_to_json(sample: Sample) -> str:
    """One manifest line (without the newline)."""
    return json.dumps(sample_to_record(sample), ensure_ascii=False, allow_nan=False)


def read_manifest(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Iterator[Sample | ManifestProblem]:
    """The samples of a manifest in file order, with a problem for each bad line.

    A file that cannot be opened at all raises ``DatasetError`` at once; a bad
    line never stops the reading. With ``root``, a sample whose video does not
    exist under it becomes a problem that carries the sample.
    """
    manifest_path = Path(path)
    if not manifest_path.is_file():
        raise DatasetError(f"The manifest {manifest_path} does not exist or is not a file.")
    return _iter_manifest(manifest_path, None if root is None else Path(root))


def load_manifest(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> tuple[list[Sample], list[ManifestProblem]]:
    """All samples and all problems of a manifest, read in one go."""
    samples: list[Sample] = []
    problems: list[ManifestProblem] = []
    for item in read_manifest(path, root):
        (problems if isinstance(item, ManifestProblem) else samples).append(item)
    return samples, problems


def write_manifest(samples: Iterable[Sample], path: str | os.PathLike[str]) -> int:
    """Write samples as a manifest; returns how many were written.

    The file is written under a temporary name in the same folder and renamed
    when complete, so a reader never sees half a manifest and an interrupted
    export leaves any previous file intact.
    """
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    written = 0
    try:
        with temporary.open("x", encoding="utf-8") as handle:
            for sample in samples:
                handle.write(sample_to_json(sample) + "\n")
                written += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        reason = error.strerror or str(error)
        raise DatasetError(f"Cannot write the manifest {target}: {reason}.") from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return written


def _iter_manifest(path: Path, root: Path | None) -> Iterator[Sample | ManifestProblem]:
    source = path.name
    first_line_of_id: dict[str, int] = {}
    try:
        handle = path.open("rb")
    except OSError as error:
        reason = error.strerror or str(error)
        raise DatasetError(f"Cannot read the manifest {path}: {reason}.") from error
    with handle:
        for line_number, raw_line in enumerate(handle, start=1):
            try:
                text = raw_line.decode("utf-8")
            except UnicodeDecodeError:
                yield ManifestProblem(source, "the line is not UTF-8 text", line_number)
                continue
            if line_number == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            try:
                sample = sample_from_record(_decode_json(text))
            except ValueError as error:
                yield ManifestProblem(source, str(error), line_number)
                continue
            first_line = first_line_of_id.setdefault(sample.id, line_number)
            if first_line != line_number:
                reason = f"duplicate id {sample.id!r} (first used on line {first_line})"
                yield ManifestProblem(source, reason, line_number)
                continue
            if root is not None and not (root / sample.video).exists():
                reason = f"video {sample.video!r} not found under {root}"
                yield ManifestProblem(source, reason, line_number, sample)
                continue
            yield sample


def _decode_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON: {error.msg} at column {error.colno}") from error


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON: {name} is not a number a manifest may hold")


def _field_order() -> tuple[str, ...]:
    return ("id", "video", "time", "frame", "query", "boxes", *OPTIONAL_FIELDS[2:])


def _json_type(value: Any) -> str:
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
        raise ValueError(f"{what} must be {expected}, found {_json_type(value)}")
    return list(value)


def _require_text(value: Any, name: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"'{name}' must be a string, found {_json_type(value)}")
    if not value.strip():
        raise ValueError(f"'{name}' is empty")


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _finite(value: Any, what: str) -> float:
    if not _is_number(value):
        raise ValueError(f"{what} must be a number, found {_json_type(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, found {number}")
    return number


def _seconds(value: Any) -> float:
    seconds = _finite(value, "'time'")
    if seconds < 0:
        raise ValueError(f"'time' must not be negative, found {seconds:g}")
    return seconds


def _frame_index(value: Any) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool):
        raise ValueError(f"'frame' must be a whole number, found {value!r}")
    if value < 0:
        raise ValueError(f"'frame' must not be negative, found {value}")
    return int(value)


def _box(value: Any, what: str) -> Box:
    coordinates = _as_list(value, what, "[x1, y1, x2, y2]")
    if len(coordinates) != 4:
        raise ValueError(f"{what} must have 4 numbers [x1, y1, x2, y2], found {len(coordinates)}")
    x1, y1, x2, y2 = (_finite(number, what) for number in coordinates)
    if x2 < x1:
        raise ValueError(f"{what} has x2 < x1 ({x2:g} < {x1:g})")
    if y2 < y1:
        raise ValueError(f"{what} has y2 < y1 ({y2:g} < {y1:g})")
    return (x1, y1, x2, y2)


def _boxes(value: Any, name: str, *, allow_empty: bool = True) -> tuple[Box, ...]:
    items = _as_list(value, f"'{name}'", "a list of boxes")
    boxes = tuple(_box(box, f"'{name}' box {index}") for index, box in enumerate(items, start=1))
    if not boxes and not allow_empty:
        raise ValueError(f"'{name}' is empty; a sample needs at least one box")
    return boxes


def _frame_size(value: Any) -> tuple[float, float]:
    sizes = _as_list(value, "'frame_size'", "[width, height]")
    if len(sizes) != 2:
        raise ValueError(f"'frame_size' must be [width, height], found {len(sizes)} numbers")
    width, height = (_finite(size, "'frame_size'") for size in sizes)
    if width <= 0 or height <= 0:
        raise ValueError(f"'frame_size' must be positive, found [{width:g}, {height:g}]")
    return (width, height)


def _plain_number(value: float) -> int | float:
    """Integral values are written without '.0' so hand-made manifests round-trip as typed."""
    return int(value) if float(value).is_integer() else float(value)


def _plain_boxes(boxes: tuple[Box, ...]) -> list[list[int | float]]:
    return [[_plain_number(value) for value in box] for box in boxes]
