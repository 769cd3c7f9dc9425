"""YouCook-Interactions (Tan et al., NeurIPS 2021), on YouCook2's validation videos.

Release (github.com/rxtan2/video-grounding-narrations, a Google Drive archive;
the same three files are committed in github.com/brian7685/GroundingYouTube
under ``data/Youcook2/annotation/``) plus YouCook2's own annotation file:

- ``final_dataset_annotations.pkl``: ``{video_id: {second: (x1, y1, x2, y2)}}``
  (92 videos, 2,570 boxed seconds, int and float coordinates);
- ``final_dataset_segments.pkl``: the evaluated segments, ``(video_id, start,
  end)`` tuples. The published file holds a Python **set** of 254 tuples;
  a list, tuple or array is read the same way;
- ``youcookii_annotations_trainval.json``: YouCook2's ``database``, whose
  ``annotations`` give each segment's ``[start, end]`` and ``sentence``.

Each is looked for in ``<root>``, ``annotation(s)/`` and
``annotation(s)/YouCook2-Interactions/``. Pickles are read with
:mod:`vgem.eval.safe_pickle` only (Python 2 or 3 pickles, sets, numpy arrays).

A segment's sentence is the YouCook2 annotation of the same video whose
segment starts at the same second, the match the GroundingYouTube evaluation
makes; the segment's seconds then run over YouCook2's ``[start, end]``,
inclusive. One sample per second that has a box, as the reference evaluation
loop counts them: the release gives 2,496 samples in 91 videos, 253 distinct
sentences (one video of the boxes file has no evaluated segment).

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
- ``id``: ``<id>/<second>``. Segments are read in sorted (video, start, end)
  order, never in the set's iteration order (which changes with the hash
  seed from one process to the next), so ids and sample order are the same
  in every run. Eight boxes sit on a second shared by two segments of a
  video: each is a sample of both, as in the reference loop, and the later
  segment's gets ``#2``.

Boxes outside the 640 x 360 canvas: 156 samples in 8 videos. 151 are in the
seven videos the VideoGEM authors' loader lists as boxed in native pixels
(:data:`AUTHORS_NATIVE_PIXEL_VIDEOS`, used by their ``filtered`` switch only),
5 in one video whose y2 reaches 480. The authors' evaluation keeps them,
scales them like every box and lets the pointing test run against the
scaled box, so does vgem; the data report of a run counts them.

The VideoGEM authors' ``filtered`` switch dropped seven videos
(:data:`AUTHORS_FILTERED_VIDEOS`), read the native-pixel videos at their own
size and forced one video (``Re46osq_NkI``) to the canvas; their documented
run for the video model turns it off, and so does the registered adapter.
``YouCookInteractions(filtered=True)`` applies it (with ``video_sizes.json``
for the native sizes); ``exclude`` drops any other videos.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from vgem.errors import DatasetError
from vgem.eval.datasets.base import (
    DatasetFile,
    DatasetGuide,
    UniqueIds,
    dataset_root,
    find_file,
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
_ELSEWHERE = ("the same name in <root>, annotation(s)/ or annotation(s)/YouCook2-Interactions/",)
# The VideoGEM authors' data.py: videos whose boxes are in the video's own pixels,
# and the one video always read on the 640 x 360 canvas (their ``filtered`` switch).
AUTHORS_NATIVE_PIXEL_VIDEOS = frozenset(
    {
        "WYAFPvlDB_A",
        "vU2lND4YQjM",
        "oJZUxU9szWA",
        "1vJp-jaIaeE",
        "4Y8vVGsv4JE",
        "FzhJGCaaYVs",
        "30Q8k57Kbz4",
    }
)
AUTHORS_CANVAS_VIDEOS = frozenset({"Re46osq_NkI"})
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
    guide = DatasetGuide(
        title="YouCook-Interactions (boxes on YouCook2 validation segments)",
        reference="Tan et al., Look at What I'm Doing, NeurIPS 2021",
        files=(
            DatasetFile(
                f"annotation/YouCook2-Interactions/{BOXES_FILE}",
                "one box per annotated second: {video id: {second: (x1, y1, x2, y2)}}",
                "YouCook2-Interactions archive of the video-grounding-narrations project "
                "(github.com/rxtan2/video-grounding-narrations, Google Drive link in its "
                "README); also committed in github.com/brian7685/GroundingYouTube under "
                "data/Youcook2/annotation/YouCook2-Interactions/",
                also_looked=_ELSEWHERE,
            ),
            DatasetFile(
                f"annotation/YouCook2-Interactions/{SEGMENTS_FILE}",
                "the 254 evaluated segments, a Python set of (video id, start, end)",
                "the same archive as final_dataset_annotations.pkl",
                also_looked=_ELSEWHERE,
            ),
            DatasetFile(
                f"annotation/{SENTENCES_FILE}",
                "YouCook2's segments and sentences ('database')",
                "YouCook2 (youcook2.eecs.umich.edu, annotation archive youcookii_annotations"
                "_trainval.tar.gz); also in github.com/brian7685/GroundingYouTube under "
                "data/Youcook2/annotation/",
                also_looked=_ELSEWHERE,
            ),
            DatasetFile(
                VIDEO_SIZES_FILE,
                "optional {video id: [width, height]} of your downloaded videos (ffprobe), "
                "so that the authors' canvas rule is applied exactly",
                "written by you",
                optional=True,
            ),
        ),
        videos="YouCook2 validation videos (downloaded from YouTube with the YouCook2 "
        "scripts) as validation/<id>.mp4 (or .mkv, .webm), or YouCook2's own "
        "raw_videos/validation/<recipe type>/<id>.<ext>, or videos/<id>.<ext>",
        counts="2,496 samples (annotated seconds of the 254 segments) in 91 videos, "
        "253 distinct sentences; 156 samples have a box outside the 640 x 360 canvas; "
        "the reference evaluation loop counts the same 2,496",
        differences=(
            "the registered adapter keeps all 91 videos and the 640 x 360 canvas rule "
            "(the authors' documented run, their filtered switch off); "
            "YouCookInteractions(filtered=True) applies the switch",
        ),
    )

    def __init__(self, exclude: Collection[str] = (), *, filtered: bool = False) -> None:
        self.filtered = filtered
        self.exclude = frozenset(exclude) | (AUTHORS_FILTERED_VIDEOS if filtered else frozenset())

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
        ordered = _ordered_segments(segments)
        if ordered is None:
            raise DatasetError(
                f"{SEGMENTS_FILE} should hold (video, start, end) segments "
                f"(a set or a list), not {type(segments).__name__}."
            )
        if not isinstance(database, dict) or not isinstance(database.get("database"), dict):
            raise DatasetError(f"{SENTENCES_FILE} has no 'database' object.")
        sizes_path = folder / VIDEO_SIZES_FILE
        video_sizes = _video_sizes(sizes_path) if sizes_path.is_file() else {}
        return self._samples(folder, boxes, ordered, database["database"], video_sizes)

    def _samples(
        self,
        folder: Path,
        boxes: dict,
        segments: list[tuple[int, Any]],
        database: dict,
        video_sizes: dict[str, tuple[float, float]],
    ) -> Iterator[Sample | ManifestProblem]:
        ids = UniqueIds()
        for position, segment in segments:
            where = f"segment {position}"
            if not (isinstance(segment, (list, tuple)) and len(segment) == 3):
                yield ManifestProblem(
                    SEGMENTS_FILE, f"{where}: expected (video, start, end)", kind="not a segment"
                )
                continue
            video_id, start, _ = segment
            where = f"segment {tuple(segment)!r}"
            if video_id in self.exclude:
                continue
            found = _youcook_segment(database.get(video_id), start)
            if found is None:
                reason = f"{where}: no YouCook2 sentence for {video_id!r} starting at {start!r}"
                yield ManifestProblem(SENTENCES_FILE, reason, kind="no YouCook2 sentence")
                continue
            (first_second, last_second), sentence, recipe = found
            video = _video_path(folder, video_id, recipe)
            per_second = boxes.get(video_id, {})
            if not isinstance(per_second, dict):
                reason = f"video {video_id!r}: expected per-second boxes"
                yield ManifestProblem(BOXES_FILE, reason, kind="unreadable boxes")
                continue
            frame_size = self._frame_size(video_id, video_sizes.get(video_id))
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

    def _frame_size(
        self, video_id: str, video_size: tuple[float, float] | None
    ) -> tuple[float, float] | None:
        """The frame the boxes of a video were drawn on (None: the video's own frames)."""
        if self.filtered and video_id in AUTHORS_CANVAS_VIDEOS:
            return BOX_CANVAS
        if self.filtered and video_id in AUTHORS_NATIVE_PIXEL_VIDEOS:
            return video_size
        return box_canvas(video_size)


def _ordered_segments(segments: Any) -> list[tuple[int, Any]] | None:
    """The segments with their position in sorted order, whatever container holds them.

    A set's order depends on the process's hash seed; sorting makes the order
    (and so every sample id) the same in every run. Entries that are not
    (video, start, end) keep their place at the end, for the reader to report.
    """
    items: list[Any]
    if isinstance(segments, (set, frozenset, list, tuple)):
        items = list(segments)
    elif isinstance(segments, np.ndarray) and segments.ndim == 2:
        items = [tuple(row) for row in segments.tolist()]
    else:
        return None
    proper = [item for item in items if _is_segment(item)]
    other = [item for item in items if not _is_segment(item)]
    proper.sort(key=lambda item: (str(item[0]), float(item[1]), float(item[2])))
    return list(enumerate([*proper, *sorted(other, key=repr)]))


def _is_segment(item: Any) -> bool:
    return (
        isinstance(item, (list, tuple))
        and len(item) == 3
        and isinstance(item[0], str)
        and all(isinstance(value, Real) and not isinstance(value, bool) for value in item[1:])
    )


def _find(folder: Path, file_name: str) -> Path:
    candidates = [f"{prefix}/{file_name}" if prefix else file_name for prefix in ANNOTATION_FOLDERS]
    item = next(item for item in YouCookInteractions.guide.files if item.path.endswith(file_name))
    return find_file(folder, item, candidates)


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
