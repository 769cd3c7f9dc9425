"""V-HICO, human-object interaction in video (Li et al., "Detecting
Human-Object Interactions in Videos by Modeling the Temporal Evolution of
Interactions", 2021).

Release: ``gt_bbox_test.json`` which, despite its name, is a pickle (read
through :mod:`vgem.eval.safe_pickle`); looked for at ``<root>``, ``data/``,
``gt_annotations/`` and ``data/gt_annotations/``. ``annos[class][video]`` is a
list of annotated keyframes, each with ``path`` (``.../<frame>.jpg``),
``label`` (the interaction, e.g. "cut onion"), ``human`` and ``object`` (lists
of [x1, y1, x2, y2] in pixels), ``height`` and ``width``.

One sample per keyframe:

- ``boxes``: the union box of all human and object boxes, the VideoGEM
  authors' ground truth; ``human_boxes`` and ``object_boxes`` keep the parts.
- ``frame_size``: (``width``, ``height``) from the annotation.
- ``video``: ``VHICO-Keyframes/<class>/<video>/<frame>.jpg``, the keyframe
  image itself (the authors' image folder), as a one-frame video: ``frame``
  0. Only the last three components of the keyframe's ``path`` are kept, the
  official V-HICO evaluation's rule (``'/'.join(path.split('/')[-3:])``): a
  release whose paths carry an absolute or other prefix
  (``/data/VHICO/VHICO-Keyframes/cut/vid1/000123.jpg``) names the same file. A folder of
  keyframes would not do, since a frame folder's frames are numbered by
  position and the keyframes are sparse. The authors' ViCLIP runs read
  eight frames, four apart, around each keyframe from their own extraction
  of the test videos (``extracted_frames/test/<class>/<video>/<n>.jpg``),
  which is not published; from the keyframe alone a video backbone sees it
  repeated, the paper's image mode (Table 5). A manifest pointing at the
  videos is the way to reproduce the video-mode figure.
- ``query`` and ``class``: ``label``, which is what the authors prompt with
  and group their mAP by.
- ``id``: ``<class>/<video>/<frame number from the file name>``.

Scoring: the VideoGEM authors scale V-HICO boxes with torch, in float32
(``tensor * (S / width)`` then ``round``), where the other benchmarks are
scaled in Python floats. A product that is exactly k + 1/2 in exact arithmetic
then rounds the other way in about 0.16 % of the coordinates (x = 90 on a
640-wide frame at S = 224: 32 for the authors, 31 in float64). vgem follows the
authors in the number type of the rows: integers and float32 rows in float32,
float64 numpy rows (which torch keeps as float64) in float64
(:func:`rows_dtype`, recorded on each sample as ``box_dtype``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from vgem.errors import DatasetError
from vgem.eval.datasets.base import (
    DatasetFile,
    DatasetGuide,
    UniqueIds,
    dataset_root,
    find_file,
    make_sample,
)
from vgem.eval.metrics import box_arithmetic
from vgem.eval.safe_pickle import safe_load
from vgem.eval.samples import ManifestProblem, Sample

ANNOTATION_CANDIDATES = (
    "gt_bbox_test.json",
    "data/gt_bbox_test.json",
    "gt_annotations/gt_bbox_test.json",
    "data/gt_annotations/gt_bbox_test.json",
)
KEYFRAME_FOLDER = "VHICO-Keyframes"
KEYFRAME_FIELDS = ("path", "label", "human", "object", "height", "width")


def union_box(boxes: list[list[float]]) -> list[float]:
    """The smallest box holding all the given boxes."""
    return [
        min(box[0] for box in boxes),
        min(box[1] for box in boxes),
        max(box[2] for box in boxes),
        max(box[3] for box in boxes),
    ]


ANNOTATION_FILE = DatasetFile(
    "data/gt_annotations/gt_bbox_test.json",
    "the test keyframes' human and object boxes (a pickle, despite its name)",
    "the V-HICO release of 'Detecting Human-Object Interactions in Videos by Modeling "
    "the Temporal Evolution of Interactions' (its data archive, file "
    "data/gt_annotations/gt_bbox_test.json)",
    also_looked=tuple(
        name for name in ANNOTATION_CANDIDATES if name != "data/gt_annotations/gt_bbox_test.json"
    ),
)


def keyframe_location(path: str) -> str:
    """The official V-HICO evaluation's name of a keyframe: the last three components
    of its path (``<class>/<video>/<frame>.jpg``), whatever prefix the release gives."""
    return "/".join(str(path).split("/")[-3:])


class VHico:
    name = "vhico"
    description = "V-HICO: test keyframes (gt_bbox_test.json), union of human and object"
    guide = DatasetGuide(
        title="V-HICO (human-object interactions, test keyframes)",
        reference="Li et al., Detecting Human-Object Interactions in Videos by Modeling "
        "the Temporal Evolution of Interactions, 2021",
        files=(ANNOTATION_FILE,),
        videos=f"the keyframe images of the V-HICO release as {KEYFRAME_FOLDER}/<class>/"
        "<video>/<frame>.jpg (its VHICO-Keyframes archive)",
        counts="one sample per annotated test keyframe; the box is the union of its "
        "human and object boxes, as the VideoGEM authors scored",
        differences=(
            "each keyframe is read as a one-frame video (the paper's image mode); the "
            "authors' eight-frame clips came from an extraction of their own",
        ),
    )

    def read(self, root: Path) -> Iterator[Sample | ManifestProblem]:
        folder = dataset_root(root)
        path = find_file(folder, ANNOTATION_FILE, ANNOTATION_CANDIDATES)
        release = safe_load(path)
        if not (isinstance(release, dict) and isinstance(release.get("annos"), dict)):
            raise DatasetError(f"{path.name} has no 'annos' table; is it the V-HICO release?")
        return self._samples(release["annos"], path.name)

    def _samples(self, annotations: dict, source: str) -> Iterator[Sample | ManifestProblem]:
        ids = UniqueIds()
        for class_key, videos in annotations.items():
            if not isinstance(videos, dict):
                yield ManifestProblem(source, f"class {class_key!r}: expected videos")
                continue
            for video_key, keyframes in videos.items():
                if not isinstance(keyframes, (list, tuple)):
                    reason = f"class {class_key!r} video {video_key!r}: expected keyframes"
                    yield ManifestProblem(source, reason)
                    continue
                for position, keyframe in enumerate(keyframes):
                    where = f"class {class_key!r} video {video_key!r} keyframe {position}"
                    yield self._keyframe_sample(keyframe, ids, class_key, video_key, where, source)

    def _keyframe_sample(
        self, keyframe: Any, ids: UniqueIds, class_key: str, video_key: str, where: str, source: str
    ) -> Sample | ManifestProblem:
        if not isinstance(keyframe, dict):
            return ManifestProblem(source, f"{where}: expected an object", kind="not a keyframe")
        missing = [field for field in KEYFRAME_FIELDS if field not in keyframe]
        if missing:
            reason = f"{where}: missing {', '.join(missing)}"
            return ManifestProblem(source, reason, kind="keyframe with missing fields")
        image = PurePosixPath(keyframe_location(keyframe["path"]))
        if not image.stem.isdigit():
            reason = f"{where}: no frame number in path {str(keyframe['path'])!r}"
            return ManifestProblem(source, reason, kind="no frame number in path")
        try:
            human_boxes = _rows(keyframe["human"])
            object_boxes = _rows(keyframe["object"])
            # float32 is V-HICO's rule already: only float64 rows need saying (so the
            # samples, and the fingerprints resumed runs match them by, stay as before)
            dtype = rows_dtype([keyframe["human"], keyframe["object"]])
            box_dtype = dtype if dtype != box_arithmetic(self.name) else None
        except (ValueError, TypeError) as error:
            reason = f"{where}: unreadable boxes ({error})"
            return ManifestProblem(source, reason, kind="unreadable boxes")
        if not human_boxes and not object_boxes:
            reason = f"{where}: no human or object box"
            return ManifestProblem(source, reason, kind="no human or object box")
        return make_sample(
            source,
            where,
            id=ids.make(f"{class_key}/{video_key}/{int(image.stem)}"),
            video=f"{KEYFRAME_FOLDER}/{image}",
            frame=0,
            query=keyframe["label"],
            class_name=keyframe["label"],
            boxes=[union_box(human_boxes + object_boxes)],
            human_boxes=human_boxes,
            object_boxes=object_boxes,
            dataset=self.name,
            frame_size=(keyframe["width"], keyframe["height"]),
            box_dtype=box_dtype,
        )


def rows_dtype(values: list[Any]) -> str:
    """The number type the authors' torch code scaled these boxes in: ``float64`` when
    the annotation holds them as float64 numpy arrays (a tensor made from one keeps
    its type), else ``float32`` (integers, float32 arrays and Python numbers become
    torch's default float32)."""
    for value in values:
        for item in [value, *(value if isinstance(value, list | tuple) else [])]:
            dtype = getattr(item, "dtype", None)
            if dtype is not None and np.dtype(dtype) == np.float64:
                return "float64"
    return "float32"


def _rows(value: Any) -> list[list[float]]:
    """Boxes given as a list of boxes or an (n, 4) array, as rows of 4 floats."""
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0:
        return []
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] < 4:
        raise ValueError(f"boxes should be [x1, y1, x2, y2] rows, got shape {array.shape}")
    return array[:, :4].tolist()


VHICO = VHico()
