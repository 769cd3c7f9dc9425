"""The sample manifest: one JSON object per line, one evaluation sample each.

Every benchmark adapter produces these samples and ``vgem.eval.open_manifest``
(``vgem eval`` with a manifest) evaluates any file of them, so the manifest is the one way into
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
  to the dataset root (an absolute path is used as it is).
- ``time`` (number, seconds) or ``frame`` (integer, 0-based; in a frame
  folder, the position in natural name order): the target frame to ground.
  Exactly one of the two.
- ``query`` (string, required, not blank): the action to find.
- ``boxes`` (required, at least one): ground-truth boxes ``[x1, y1, x2, y2]``
  in pixels of the frame (see ``frame_size``), origin top-left. A box with
  ``x2 < x1`` or ``y2 < y1`` is kept as published (releases hold such boxes):
  no point lies in it, and the data report counts it. A prediction is correct
  when it falls in any of them, borders included; like the authors, vgem scores it after
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
field, a box without four numbers, a duplicate id) is reported with its line
number and reading goes on with the next line. Every number must be finite
and within range: a box coordinate within ±10^6, a ``frame_size`` side in
[0.001, 10^6], a ``time`` of at most 10^7 seconds, a ``frame`` of at most
10^9 (so nothing computed from them can overflow later in the run).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from vgem.errors import DatasetError, first_line, os_error_text
from vgem.eval.samples import Box, ManifestProblem, Sample, json_type_name

# The sample types live in vgem.eval.samples; they are named here too, where they always were.
__all__ = [
    "Box",
    "ManifestProblem",
    "Sample",
    "load_manifest",
    "read_manifest",
    "sample_from_record",
    "sample_to_json",
    "sample_to_record",
    "write_manifest",
]

REQUIRED_FIELDS = ("id", "video", "query", "boxes")
OPTIONAL_FIELDS = (
    "time",
    "frame",
    "class",
    "human_boxes",
    "object_boxes",
    "dataset",
    "frame_size",
    "box_dtype",
)
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS + OPTIONAL_FIELDS)


def sample_from_record(record: Any) -> Sample:
    """A sample from one decoded manifest object; ``ValueError`` if unusable."""
    if not isinstance(record, Mapping):
        raise ValueError(f"expected a JSON object, found {json_type_name(record)}")
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
        box_dtype=record.get("box_dtype"),
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
    if sample.box_dtype is not None:
        record["box_dtype"] = sample.box_dtype
    return record


def sample_to_json(sample: Sample) -> str:
    """One manifest line (without the newline)."""
    return json.dumps(sample_to_record(sample), ensure_ascii=False, allow_nan=False)


def read_manifest(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Iterator[Sample | ManifestProblem]:
    """The samples of a manifest in file order, with a problem for each bad line.

    A file that cannot be opened at all raises ``DatasetError`` at once; a bad
    line never stops the reading. ``root`` (the folder videos are relative to) is
    accepted for compatibility and not used: whether a video exists is decided
    by the run, for manifests and datasets alike (a missing video is an error
    line, counted, and grounded again with ``retry_errors``).
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
        if isinstance(item, ManifestProblem):
            problems.append(item)
        else:
            samples.append(item)
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
        raise DatasetError(
            f"Cannot write the manifest {target}: {os_error_text(error)}."
        ) from error
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
        raise DatasetError(f"Cannot read the manifest {path}: {os_error_text(error)}.") from error
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
            yield sample


def _decode_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON: {error.msg} at column {error.colno}") from error
    except RecursionError:  # [[[[…]]]] nested past Python's recursion limit
        raise ValueError("invalid JSON: nested too deeply") from None
    except ValueError as error:  # an integer of more digits than Python converts
        raise ValueError(f"invalid JSON: {first_line(error)}") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON: {name} is not a number a manifest may hold")


def _field_order() -> tuple[str, ...]:
    return ("id", "video", "time", "frame", "query", "boxes", *OPTIONAL_FIELDS[2:])


def _plain_number(value: float) -> int | float:
    """Integral values are written without '.0' so hand-made manifests round-trip as typed."""
    return int(value) if float(value).is_integer() else float(value)


def _plain_boxes(boxes: tuple[Box, ...]) -> list[list[int | float]]:
    return [[_plain_number(value) for value in box] for box in boxes]
