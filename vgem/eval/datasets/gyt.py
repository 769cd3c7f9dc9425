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

The first and third box coordinates of the release never exceed 480 while the
second and fourth reach about 570, which would fit [y1, x1, y2, x2] on
640 x 480 frames better than [x1, y1, x2, y2]. Both the GroundingYouTube and
the VideoGEM evaluation code read them as [x1, y1, x2, y2]; so does this
adapter, since matching the published figures is the point. A manifest is the
way to evaluate another reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vgem.errors import DatasetError
from vgem.eval.datasets.base import (
    UniqueIds,
    dataset_root,
    find_annotation,
    load_json,
    make_sample,
)
from vgem.eval.manifest import ManifestProblem, Sample

ANNOTATION_CANDIDATES = ("box_anno.json", "annotations/box_anno.json")
VIDEO_FOLDER = "mining_resized_video"
ENTRY_FIELDS = ("second", "box", "step_name")


class GroundingYouTube:
    name = "gyt"
    description = "GroundingYouTube: box_anno.json, one box per annotated second (1 fps)"

    def read(self, root: Path) -> Iterator[Sample | ManifestProblem]:
        folder = dataset_root(root)
        path = find_annotation(folder, ANNOTATION_CANDIDATES, "GroundingYouTube box_anno.json")
        annotations = load_json(path)
        if not isinstance(annotations, dict):
            raise DatasetError(f"{path.name} should map video ids to lists of boxes.")
        return self._samples(annotations, path.name)

    def _samples(self, annotations: dict, source: str) -> Iterator[Sample | ManifestProblem]:
        ids = UniqueIds()
        for video_id, entries in annotations.items():
            if not isinstance(entries, list):
                yield ManifestProblem(source, f"video {video_id!r}: expected a list of entries")
                continue
            for position, entry in enumerate(entries):
                where = f"video {video_id!r} entry {position}"
                if not isinstance(entry, dict):
                    yield ManifestProblem(source, f"{where}: expected an object")
                    continue
                missing = [key for key in ENTRY_FIELDS if key not in entry]
                if missing:
                    yield ManifestProblem(source, f"{where}: missing {', '.join(missing)}")
                    continue
                yield make_sample(
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


GROUNDING_YOUTUBE = GroundingYouTube()
