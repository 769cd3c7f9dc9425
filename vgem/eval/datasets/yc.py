"""YouCook-Interactions (Tan et al., NeurIPS 2021), on YouCook2's validation videos.

Release (github.com/rxtan2/video-grounding-narrations, also shipped with the
GroundingYouTube code) plus YouCook2's own annotation file:

- ``final_dataset_annotations.pkl``: ``{video_id: {second: (x1, y1, x2, y2)}}``;
- ``final_dataset_segments.pkl``: a list of ``(video_id, start, end)``;
- ``youcookii_annotations_trainval.json``: YouCook2's ``database``, whose
  ``annotations`` give each segment's ``[start, end]`` and ``sentence``.

Each is looked for in ``<root>``, ``annotation(s)/`` and
``annotation(s)/YouCook2-Interactions/``. Pickles are read with
:mod:`vgem.eval.safe_pickle` only.

A segment's sentence is the YouCook2 annotation of the same video whose
segment starts at the same second, the match the GroundingYouTube evaluation
makes; the segment's seconds then run over YouCook2's ``[start, end]``,
inclusive. One sample per second that has a box:

- ``time``: ``second - 1``. The GroundingYouTube evaluation pairs annotation
  second k with frame k - 1 of a 1 fps decode, and the VideoGEM authors centre
  their clip on ``frame - 1``.
- ``query``: the segment's sentence; no ``class``, so per-class figures group
  by sentence, as the authors' code did.
- ``video``: ``validation/<id>.<ext>`` (the GroundingYouTube layout), else
  ``raw_videos/validation/<recipe_type>/<id>.<ext>`` (YouCook2's) or
  ``videos/<id>.<ext>``, for ext in mp4, mkv, webm: the first that exists,
  else the first of these.
- ``frame_size``: the boxes were drawn on frames rescaled to 640 x 360. The
  VideoGEM authors take that canvas when a video is larger in both
  dimensions and the video's own size otherwise. The adapter cannot see the
  videos, so it uses 640 x 360 unless ``<root>/video_sizes.json``
  (``{"<id>": [width, height]}``, e.g. written from ffprobe) gives the size,
  in which case the authors' rule is applied exactly.
- ``id``: ``<id>/<second>``.

The VideoGEM authors' ``filtered`` switch dropped seven videos
(:data:`AUTHORS_FILTERED_VIDEOS`); their documented run for the video model
turns it off, and so does the registered adapter. Pass ``exclude`` to drop
them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from numbers import Real
from pathlib import Path
from typing import Any

from vgem.errors import DatasetError
from vgem.eval.datasets.base import (
    UniqueIds,
    dataset_root,
    find_annotation,
    first_existing,
    load_json,
    make_sample,
)
from vgem.eval.safe_pickle import safe_load
from vgem.eval.samples import ManifestProblem, Sample

BOXES_FILE = "final_dataset_annotations.pkl"
SEGMENTS_FILE = "final_dataset_segments.pkl"
SENTENCES_FILE = "youcookii_annotations_trainval.json"
VIDEO_SIZES_FILE = "video_sizes.json"
ANNOTATION_FOLDERS = (
    "",
    "annotation",
    "annotations",
    "annotation/YouCook2-Interactions",
    "annotations/YouCook2-Interactions",
    "YouCook2-Interactions",
)
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm")
BOX_CANVAS = (640, 360)
AUTHORS_FILTERED_VIDEOS = frozenset(
    {
        "2HsWZdKKBGg",
        "OpURFOTdycE",
        "btikV_DUoCM",
        "9ekEjxd-A_Y",
        "DrXVuj1Qowo",
        "HF49t8uVJOE",
        "FliMoBfG72Y",
    }
)


def box_canvas(video_size: tuple[float, float] | None) -> tuple[float, float]:
    """The frame size the boxes of a video of this size were drawn on."""
    if video_size is None:
        return BOX_CANVAS
    width, height = video_size
    if width > BOX_CANVAS[0] and height > BOX_CANVAS[1]:
        return BOX_CANVAS
    return (width, height)


class YouCookInteractions:
    name = "yc"
    description = "YouCook-Interactions: per-second boxes on YouCook2 validation segments"

    def __init__(self, exclude: Collection[str] = ()) -> None:
        self.exclude = frozenset(exclude)

    def read(self, root: Path) -> Iterator[Sample | ManifestProblem]:
        folder = dataset_root(root)
        boxes_path = _find(folder, BOXES_FILE)
        segments_path = _find(folder, SEGMENTS_FILE)
        sentences_path = _find(folder, SENTENCES_FILE)
        boxes = safe_load(boxes_path)
        segments = safe_load(segments_path)
        database = load_json(sentences_path)
        if not isinstance(boxes, dict):
            raise DatasetError(f"{BOXES_FILE} should map video ids to per-second boxes.")
        if not isinstance(segments, (list, tuple)):
            raise DatasetError(f"{SEGMENTS_FILE} should be a list of (video, start, end).")
        if not isinstance(database, dict) or not isinstance(database.get("database"), dict):
            raise DatasetError(f"{SENTENCES_FILE} has no 'database' object.")
        sizes_path = folder / VIDEO_SIZES_FILE
        video_sizes = _video_sizes(sizes_path) if sizes_path.is_file() else {}
        return self._samples(folder, boxes, segments, database["database"], video_sizes)

    def _samples(
        self,
        folder: Path,
        boxes: dict,
        segments: list | tuple,
        database: dict,
        video_sizes: dict[str, tuple[float, float]],
    ) -> Iterator[Sample | ManifestProblem]:
        ids = UniqueIds()
        for position, segment in enumerate(segments):
            where = f"segment {position}"
            if not (isinstance(segment, (list, tuple)) and len(segment) == 3):
                yield ManifestProblem(SEGMENTS_FILE, f"{where}: expected (video, start, end)")
                continue
            video_id, start, _ = segment
            if video_id in self.exclude:
                continue
            found = _youcook_segment(database.get(video_id), start)
            if found is None:
                reason = f"{where}: no YouCook2 sentence for {video_id!r} starting at {start!r}"
                yield ManifestProblem(SENTENCES_FILE, reason)
                continue
            (first_second, last_second), sentence, recipe = found
            video = _video_path(folder, video_id, recipe)
            per_second = boxes.get(video_id, {})
            if not isinstance(per_second, dict):
                yield ManifestProblem(BOXES_FILE, f"video {video_id!r}: expected per-second boxes")
                continue
            frame_size = box_canvas(video_sizes.get(video_id))
            for second in range(first_second, last_second + 1):
                box = per_second.get(second, per_second.get(str(second)))
                if box is None:
                    continue
                yield make_sample(
                    BOXES_FILE,
                    f"video {video_id!r} second {second}",
                    id=ids.make(f"{video_id}/{second}"),
                    video=video,
                    time=second - 1,
                    query=sentence,
                    boxes=[box],
                    dataset=self.name,
                    frame_size=frame_size,
                )


def _find(folder: Path, file_name: str) -> Path:
    candidates = [f"{prefix}/{file_name}" if prefix else file_name for prefix in ANNOTATION_FOLDERS]
    return find_annotation(folder, candidates, f"YouCook-Interactions {file_name}")


def _youcook_segment(entry: Any, start: Any) -> tuple[tuple[int, int], Any, Any] | None:
    """The [start, end], sentence and recipe type of the YouCook2 segment starting at start.

    The sentence and recipe type are the file's values, unchecked: the sample
    checks its query, and ``_video_path`` uses only a non-empty recipe string.
    """
    if not isinstance(entry, dict):
        return None
    for annotation in entry.get("annotations", ()):
        span = annotation.get("segment") if isinstance(annotation, dict) else None
        if not (isinstance(span, (list, tuple)) and len(span) == 2) or span[0] != start:
            continue
        if not all(isinstance(value, Real) for value in span):
            return None
        return (int(span[0]), int(span[1])), annotation.get("sentence"), entry.get("recipe_type")
    return None


def _video_path(folder: Path, video_id: str, recipe: Any) -> str:
    stems = [f"validation/{video_id}"]
    if isinstance(recipe, str) and recipe:
        stems.append(f"raw_videos/validation/{recipe}/{video_id}")
    stems.append(f"videos/{video_id}")
    candidates = [stem + extension for stem in stems for extension in VIDEO_EXTENSIONS]
    return first_existing(folder, candidates)


def _video_sizes(path: Path) -> dict[str, tuple[float, float]]:
    sizes = load_json(path)
    if not isinstance(sizes, dict):
        raise DatasetError(f"{path.name} should map video ids to [width, height].")
    checked: dict[str, tuple[float, float]] = {}
    for video_id, size in sizes.items():
        if not (
            isinstance(size, list)
            and len(size) == 2
            # JSON numbers are ints and floats (bools among the ints).
            and all(isinstance(value, (int, float)) and value > 0 for value in size)
        ):
            raise DatasetError(
                f"{path.name}: {video_id!r} should be [width, height], got {size!r}."
            )
        checked[video_id] = (size[0], size[1])
    return checked


YOUCOOK_INTERACTIONS = YouCookInteractions()
