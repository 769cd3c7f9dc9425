"""The data report: what was read from an annotation release, so a run can be audited.

A benchmark's figures mean little without knowing what they were computed on,
and public releases have quirks (boxes outside their frame, inverted boxes,
flagged keyframes, entries that cannot be used). The report counts them for
everything a source read, before any limit: ``results.json`` holds it under
``data`` and ``vgem eval`` prints it in words.

- ``read``: the samples (or whole videos) read;
- ``skipped``: entries that could not be used, per kind of reason;
- ``boxes``: the ground-truth boxes, how many lie (partly) outside the frame
  they were drawn on, and how many are inverted (``x2 < x1`` or ``y2 < y1``:
  kept, and a miss for any point, as in the authors' evaluations);
- ``flagged``: entries carrying annotation flags, per flag (DALY's
  ``isReflection``, ``isAmbiguous``); they are evaluated like the others;
- ``remarks``: other observations of the adapter, counted.

A box lies outside its frame when a coordinate is below 0 or beyond the
sample's ``frame_size``; without a ``frame_size`` only the adapter can tell
(:class:`~vgem.eval.samples.DataNote`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from vgem.eval.samples import DataNote, ManifestProblem, Sample, VideoSample, is_inverted


@dataclass(frozen=True)
class BoxCounts:
    total: int = 0
    outside_frame: int = 0
    samples_with_outside_frame: int = 0
    inverted: int = 0
    samples_with_inverted: int = 0


@dataclass(frozen=True)
class DataReport:
    """Counts of what a source read (see the module doc); ``to_dict`` gives JSON."""

    read: int
    unit: str = "samples"
    skipped: dict[str, int] = field(default_factory=dict)
    boxes: BoxCounts = field(default_factory=BoxCounts)
    flagged: dict[str, int] = field(default_factory=dict)
    flagged_samples: int = 0
    remarks: dict[str, int] = field(default_factory=dict)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "unit": self.unit,
            "skipped": self.skipped_total,
            "skipped_by_reason": dict(self.skipped),
            "boxes": {
                "total": self.boxes.total,
                "outside_frame": self.boxes.outside_frame,
                "samples_with_outside_frame": self.boxes.samples_with_outside_frame,
                "inverted": self.boxes.inverted,
                "samples_with_inverted": self.boxes.samples_with_inverted,
            },
            "flagged": self.flagged_samples,
            "flagged_by_flag": dict(self.flagged),
            "remarks": dict(self.remarks),
        }

    def lines(self) -> list[str]:
        """The report in words, one fact a line (what ``vgem eval`` prints)."""
        lines = [f"read {self.read} {self.unit}, skipped {self.skipped_total}"]
        lines += [f"  skipped {count}: {reason}" for reason, count in self.skipped.items()]
        boxes = self.boxes
        lines.append(
            f"boxes: {boxes.total}; outside their frame: {boxes.outside_frame} "
            f"(in {boxes.samples_with_outside_frame} {self.unit}); "
            f"inverted: {boxes.inverted} (in {boxes.samples_with_inverted} {self.unit}, "
            "kept and scored as misses)"
        )
        if self.flagged_samples or self.flagged:
            flags = ", ".join(f"{name} {count}" for name, count in self.flagged.items())
            lines.append(f"flagged: {self.flagged_samples} {self.unit} ({flags}), all evaluated")
        lines += [f"{remark}: {count}" for remark, count in self.remarks.items()]
        return lines


def data_report_of(document: dict[str, Any]) -> DataReport | None:
    """The data report a results.json document holds (None for older documents)."""
    data = document.get("data")
    if not isinstance(data, dict):
        return None
    boxes = data.get("boxes") or {}
    return DataReport(
        read=int(data.get("read", 0)),
        unit=str(data.get("unit", "samples")),
        skipped=dict(data.get("skipped_by_reason") or {}),
        boxes=BoxCounts(**{key: int(value) for key, value in boxes.items()}),
        flagged=dict(data.get("flagged_by_flag") or {}),
        flagged_samples=int(data.get("flagged", 0)),
        remarks=dict(data.get("remarks") or {}),
    )


def build_data_report(
    samples: Sequence[Sample | VideoSample],
    problems: Iterable[ManifestProblem],
    notes: Iterable[DataNote] = (),
) -> DataReport:
    """The report of what a reader gave: its samples, its problems, its adapter's notes."""
    skipped: Counter[str] = Counter()
    remarks: Counter[str] = Counter()
    for problem in problems:
        if problem.kept:
            remarks[problem.kind or problem.reason] += 1
        elif problem.sample is None:
            skipped[problem.kind or problem.reason] += 1
    total = outside = outside_samples = inverted = inverted_samples = 0
    for sample in samples:
        boxes = _truth_boxes(sample)
        total += len(boxes)
        outside_here = sum(_outside(box, sample.frame_size) for box in boxes)
        inverted_here = sum(is_inverted(box) for box in boxes)
        outside += outside_here
        outside_samples += outside_here > 0
        inverted += inverted_here
        inverted_samples += inverted_here > 0
    flags: Counter[str] = Counter()
    flagged_samples = 0
    noted_outside: dict[str, int] = {}
    for note in notes:
        flags.update(note.flags)
        flagged_samples += bool(note.flags)
        remarks.update(note.remarks)
        if note.outside_frame:
            noted_outside[note.sample_id] = (
                noted_outside.get(note.sample_id, 0) + note.outside_frame
            )
    unit = "videos" if any(isinstance(sample, VideoSample) for sample in samples) else "samples"
    return DataReport(
        read=len(samples),
        unit=unit,
        skipped=dict(sorted(skipped.items(), key=lambda item: (-item[1], item[0]))),
        boxes=BoxCounts(
            total=total,
            outside_frame=outside + sum(noted_outside.values()),
            samples_with_outside_frame=outside_samples + len(noted_outside),
            inverted=inverted,
            samples_with_inverted=inverted_samples,
        ),
        flagged=dict(sorted(flags.items())),
        flagged_samples=flagged_samples,
        remarks=dict(sorted(remarks.items())),
    )


def _truth_boxes(sample: Sample | VideoSample) -> list[Sequence[float]]:
    if isinstance(sample, VideoSample):
        return [truth.box for truth in sample.boxes]
    return list(sample.boxes)


def _outside(box: Sequence[float], frame_size: tuple[float, float] | None) -> bool:
    if frame_size is None:
        return False
    width, height = frame_size
    return min(box) < 0 or max(box[0], box[2]) > width or max(box[1], box[3]) > height
