"""GroundingYouTube (Chen et al., CVPR 2024, "What, when, and where?").

Release: ``box_anno.json`` from github.com/brian7685/STG, an object keyed by
YouTube id; each video holds a list of ``{"second": int, "box": [x1, y1, x2,
y2], "step_name": str}`` entries, one per annotated second (the annotation is
at 1 fps). Looked for at ``<root>/box_anno.json`` or
``<root>/annotations/box_anno.json``.

One sample per entry:

- ``video``: ``mining_resized_video/<id>.mp4``, the resized videos the
  VideoGEM authors read (their ``data.py``); the boxes are in pixels of those
  frames, so no ``frame_size`` is given.
- ``time``: ``second`` seconds. The release README reads "81 represents the
  81 sec of the video", the GroundingYouTube evaluation pairs second k with
  the k-th frame of a 1 fps decode, and the VideoGEM authors centre their
  0.25 s clip on ``second``. (Their single-frame loader opens a file named
  ``second - 1`` from their own frame extraction, whose numbering is not
  published; this adapter follows the three consistent sources.)
- ``query`` and ``class``: ``step_name`` ("crack eggs"), the authors' label.
- ``id``: ``<id>/<second>``; a second annotated twice gets ``#2``.

The boxes are ``[x1, y1, x2, y2]``, the order both the GroundingYouTube
and the VideoGEM evaluation code read: the release's raw annotator points
(``id2xy_box*.json`` in github.com/brian7685/GroundingYouTube) fall inside
their box 96 % of the time read that way and 56 % read as ``[y1, x1, y2,
x2]``. The release's x never exceeds 480 and y reaches 629 because its
annotation tool clamped x at 480, the frame *height* (the two limits were
swapped), and never clamped y:

- 18 boxes are inverted (x1 > x2 = 480). The authors' hit test keeps them
  and they are misses (no point lies in them), so their denominator is the
  release's 17,316 boxes; so is vgem's: the samples are kept as published
  and the data report counts them.
- 2,111 boxes reach below the 480-pixel frame; the data report counts them
  as outside their frame. Like every box they are scored as published.

A run's data report therefore reads: 17,316 samples in 250 videos, 18
inverted boxes, 2,111 boxes outside their frame.

Whole videos (``read_videos``, for the ``spatiotemporal`` and ``temporal``
tasks): one :class:`~vgem.eval.samples.VideoSample` per
video of ``box_anno.json``, whose queries are the video's distinct step names.
Its ground-truth segments come from ``ground_seg.json`` when present (looked
for at ``<root>/ground_seg.json``, ``<root>/annotations/ground_seg.json`` and
``<root>/grounding_anno/ground_seg.json``; released in
github.com/brian7685/GroundingYouTube under
``data/GroundingYouTube/grounding_anno/``): per video id a list of
``{"segment": [first, last], "sentence": step}``, both seconds included (a box
of ``box_anno.json`` sits on the last second of its segment, and one-second
steps are written ``[306, 306]``), so the segment is ``[first, last + 1)``.
Not every second of a segment has a box (annotators' points were kept only
where they agreed); such seconds are left out of IoU+Pointing and of the
spatial part of tube IoU. Without ``ground_seg.json`` (or for a video it does
not list) the segments are the runs of consecutive boxed seconds of each
step, which splits a step at every second without a box; a warning says so.
Entries that cannot be used are reported and dropped; the rest of their video
is still evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from vgem.errors import DatasetError
from vgem.eval.datasets.base import (
    DatasetFile,
    DatasetGuide,
    UniqueIds,
    dataset_root,
    find_file,
    load_json,
    make_sample,
)
from vgem.eval.samples import (
    DataNote,
    ManifestProblem,
    Sample,
    TruthBox,
    TruthSegment,
    VideoSample,
    parse_box,
    segments_from_boxes,
)

ANNOTATION_CANDIDATES = ("box_anno.json", "annotations/box_anno.json")
SEGMENT_CANDIDATES = (
    "ground_seg.json",
    "annotations/ground_seg.json",
    "grounding_anno/ground_seg.json",
)
SEGMENTS_MISSING = (
    "no ground_seg.json: ground-truth segments are the runs of boxed seconds of each step"
)
VIDEO_FOLDER = "mining_resized_video"
ENTRY_FIELDS = ("second", "box", "step_name")


BOX_FILE = DatasetFile(
    ANNOTATION_CANDIDATES[0],
    "one box per annotated second: {video id: [{second, box, step_name}, ...]}",
    "the STG code release of 'What, when, and where?' (github.com/brian7685/STG, "
    "file docs/annotations/box_anno.json)",
    also_looked=ANNOTATION_CANDIDATES[1:],
)
SEGMENT_FILE = DatasetFile(
    SEGMENT_CANDIDATES[0],
    "the steps' ground-truth segments (read by the spatiotemporal and temporal tasks only)",
    "the GroundingYouTube code release (github.com/brian7685/GroundingYouTube, file "
    "data/GroundingYouTube/grounding_anno/ground_seg.json)",
    also_looked=SEGMENT_CANDIDATES[1:],
    optional=True,
)
FRAME_HEIGHT = 480  # the resized videos' frames, which the release's y runs past


class GroundingYouTube:
    name = "gyt"
    description = "GroundingYouTube: box_anno.json, one box per annotated second (1 fps)"
    guide = DatasetGuide(
        title="GroundingYouTube (steps of untrimmed cooking videos, one box a second)",
        reference="Chen et al., What, when, and where? Self-Supervised Spatio-Temporal "
        "Grounding in Untrimmed Multi-Action Videos from Narrated Instructions, CVPR 2024",
        files=(BOX_FILE, SEGMENT_FILE),
        videos=f"the resized videos as {VIDEO_FOLDER}/<id>.mp4 (the GroundingYouTube video "
        "archive, ~7.1 GB, linked from the STG README: unpack it so that the .mp4 files "
        f"sit in <root>/{VIDEO_FOLDER}/)",
        counts="17,316 samples in 250 videos (the release's boxes, the authors' "
        "denominator); 18 inverted boxes (kept, misses), 2,111 boxes below the "
        "480-pixel frame",
    )

    def read(self, root: Path) -> Iterator[Sample | ManifestProblem | DataNote]:
        annotations, source = _box_annotations(dataset_root(root))
        return self._samples(annotations, source)

    def _samples(
        self, annotations: dict, source: str
    ) -> Iterator[Sample | ManifestProblem | DataNote]:
        ids = UniqueIds()
        for video_id, entries in annotations.items():
            if not isinstance(entries, list):
                reason = f"video {video_id!r}: expected a list of entries"
                yield ManifestProblem(source, reason, kind="unreadable video entry")
                continue
            for position, entry in enumerate(entries):
                where = f"video {video_id!r} entry {position}"
                if not isinstance(entry, dict):
                    yield ManifestProblem(source, f"{where}: expected an object")
                    continue
                missing = [key for key in ENTRY_FIELDS if key not in entry]
                if missing:
                    reason = f"{where}: missing {', '.join(missing)}"
                    yield ManifestProblem(source, reason, kind="missing fields")
                    continue
                sample = make_sample(
                    source,
                    where,
                    id=ids.make(f"{video_id}/{entry['second']}"),
                    video=f"{VIDEO_FOLDER}/{video_id}.mp4",
                    time=entry["second"],
                    query=entry["step_name"],
                    class_name=entry["step_name"],
                    boxes=[entry["box"]],
                    dataset=self.name,
                )
                yield sample
                if isinstance(sample, Sample) and _below_frame(sample.boxes[0]):
                    yield DataNote(source, sample.id, outside_frame=1)

    def read_videos(self, root: Path) -> Iterator[VideoSample | ManifestProblem | DataNote]:
        """One whole-video sample per video of box_anno.json (see the module doc)."""
        folder = dataset_root(root)
        annotations, source = _box_annotations(folder)
        segments_path = next(
            (folder / name for name in SEGMENT_CANDIDATES if (folder / name).is_file()), None
        )
        segments = None
        if segments_path is not None:
            segments = load_json(segments_path)
            if not isinstance(segments, dict):
                raise DatasetError(f"{segments_path.name} should map video ids to segments.")
        return self._videos(annotations, segments, source)

    def _videos(
        self, annotations: dict, segments: dict | None, source: str
    ) -> Iterator[VideoSample | ManifestProblem | DataNote]:
        if segments is None:
            yield ManifestProblem(source, SEGMENTS_MISSING, kind=SEGMENTS_MISSING, kept=True)
        for video_id, entries in annotations.items():
            where = f"video {video_id!r}"
            if not isinstance(entries, list):
                yield ManifestProblem(source, f"{where}: expected a list of entries")
                continue
            boxes: list[TruthBox] = []
            for position, entry in enumerate(entries):
                item = _truth_box(entry, f"{where} entry {position}")
                if isinstance(item, str):
                    yield ManifestProblem(source, item, kind="unusable box entry")
                else:
                    boxes.append(item)
            below = sum(_below_frame(box.box) for box in boxes)
            if below:
                yield DataNote(source, video_id, outside_frame=below)
            truth: list[TruthSegment] = []
            if segments is not None and video_id not in segments:
                reason = f"{where} is not in ground_seg.json: its segments are its boxed seconds"
                kind = "video not in ground_seg.json: segments from its boxed seconds"
                yield ManifestProblem(source, reason, kind=kind, kept=True)
            if segments is None or video_id not in segments:
                truth = segments_from_boxes(boxes)
            else:
                for position, entry in enumerate(segments[video_id] or []):
                    segment = _truth_segment(entry, f"ground_seg.json {where} segment {position}")
                    if isinstance(segment, str):
                        yield ManifestProblem(source, segment, kind="unusable segment")
                    else:
                        truth.append(segment)
            steps = dict.fromkeys([s.step for s in truth] + [b.step for b in boxes])
            try:
                yield VideoSample(
                    id=video_id,
                    video=f"{VIDEO_FOLDER}/{video_id}.mp4",
                    steps=tuple(steps),
                    segments=tuple(truth),
                    boxes=tuple(boxes),
                    dataset=self.name,
                )
            except ValueError as error:
                yield ManifestProblem(source, f"{where}: {error}", kind="unusable video")


def _below_frame(box: Sequence[float]) -> bool:
    """Whether a box leaves the resized videos' frame (the release never clamped y)."""
    return min(box) < 0 or max(box[1], box[3]) > FRAME_HEIGHT


def _box_annotations(folder: Path) -> tuple[dict, str]:
    """box_anno.json, video id → its boxed seconds, and the file's name."""
    path = find_file(folder, BOX_FILE)
    annotations = load_json(path)
    if not isinstance(annotations, dict):
        raise DatasetError(f"{path.name} should map video ids to lists of boxes.")
    return annotations, path.name


def _truth_box(entry: Any, where: str) -> TruthBox | str:
    """A boxed second of box_anno.json, or the reason it cannot be used."""
    if not isinstance(entry, dict):
        return f"{where}: expected an object"
    missing = [key for key in ENTRY_FIELDS if key not in entry]
    if missing:
        return f"{where}: missing {', '.join(missing)}"
    second, step = entry["second"], entry["step_name"]
    if not _whole(second):
        return f"{where}: 'second' must be a whole number of seconds, found {second!r}"
    if not isinstance(step, str) or not step.strip():
        return f"{where}: 'step_name' must be a non-empty string"
    try:
        box = parse_box(entry["box"], "'box'", allow_inverted=True)
    except ValueError as error:
        return f"{where}: {error}"
    return TruthBox(int(second), step, box)


def _truth_segment(entry: Any, where: str) -> TruthSegment | str:
    """A ``{"segment": [first, last], "sentence": step}`` entry, both seconds included."""
    if not isinstance(entry, dict) or "segment" not in entry or "sentence" not in entry:
        return f"{where}: expected an object with 'segment' and 'sentence'"
    bounds, step = entry["segment"], entry["sentence"]
    if not isinstance(step, str) or not step.strip():
        return f"{where}: 'sentence' must be a non-empty string"
    if (
        not isinstance(bounds, list)
        or len(bounds) != 2
        or not all(_number(value) for value in bounds)
        or not 0 <= bounds[0] <= bounds[1]
    ):
        return f"{where}: 'segment' must be [first, last] seconds with 0 <= first <= last"
    return TruthSegment(step, float(bounds[0]), float(bounds[1]) + 1.0)


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any) -> bool:
    if isinstance(value, Integral) and not isinstance(value, bool):
        return int(value) >= 0
    return _number(value) and float(value).is_integer() and value >= 0


GROUNDING_YOUTUBE = GroundingYouTube()
