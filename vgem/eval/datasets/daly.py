"""DALY, Daily Action Localization in YouTube (Weinzaepfel et al., 2016).

Release: ``daly1.1.0.pkl``, a Python 2 pickle (read through
:mod:`vgem.eval.safe_pickle`, latin-1), at ``<root>/daly1.1.0.pkl`` or
``<root>/annotations/daly1.1.0.pkl``. It holds ``labels`` (the ten CamelCase
classes, "BrushingTeeth"), ``splits`` (``splits[0]`` lists the test videos by
file name, "xxx.mp4"), ``metadata`` (fps, duration, frame count) and ``annot``:
per video, ``annot[action]`` is a list of instances with ``beginTime``,
``endTime``, ``flags`` and ``keyframes``; a keyframe has ``boundingBox``
(shape (1, 4), [x1, y1, x2, y2] as fractions of the frame), ``objects``
(rows of [x1, y1, x2, y2, object id, occluded, hallucinated], fractions too),
a 1-based ``frameNumber`` and its ``time`` in seconds.

One sample per keyframe of every test-split instance:

- ``boxes`` and ``human_boxes``: the actor box as published, in fractions,
  with ``frame_size`` [1, 1]. The VideoGEM authors scale these with
  ``round(fraction * S)``, which is what the metrics do with a 1 x 1 frame;
  the pickle has no frame sizes to turn them into pixels without the videos.
- ``object_boxes``: the first four columns of ``objects``.
- ``frame``: ``frameNumber - 1`` (0-based).
- ``query`` and ``class``: the action name as published ("BrushingTeeth");
  the label extractor splits CamelCase as the authors did.
- ``video``: ``videos/<file name>`` if present, else ``<file name>`` if
  present, else ``videos/<file name>``.
- ``id``: ``<video id>/<action>/<instance>/<frameNumber>``.

All keyframes are kept, flags (reflection, ambiguous, ...) notwithstanding:
the VideoGEM authors evaluated a keyframe list of their own that is not
published, and nothing in their code filters by flag.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from vgem.errors import DatasetError
from vgem.eval.datasets.base import (
    UniqueIds,
    dataset_root,
    find_annotation,
    first_existing,
    make_sample,
)
from vgem.eval.safe_pickle import safe_load
from vgem.eval.samples import ManifestProblem, Sample

ANNOTATION_CANDIDATES = ("daly1.1.0.pkl", "annotations/daly1.1.0.pkl")
RELATIVE_FRAME = (1, 1)


class Daly:
    name = "daly"
    description = "DALY: keyframes of the test split (daly1.1.0.pkl), relative boxes"

    def read(self, root: Path) -> Iterator[Sample | ManifestProblem]:
        folder = dataset_root(root)
        path = find_annotation(folder, ANNOTATION_CANDIDATES, "DALY daly1.1.0.pkl")
        release = safe_load(path)
        if not (isinstance(release, dict) and isinstance(release.get("annot"), dict)):
            raise DatasetError(f"{path.name} has no 'annot' table; is it the DALY release?")
        splits = release.get("splits")
        if not (isinstance(splits, (dict, list, tuple)) and _has_first_split(splits)):
            raise DatasetError(f"{path.name} has no test split (splits[0]).")
        return self._samples(folder, release["annot"], splits[0], path.name)

    def _samples(
        self, folder: Path, annotations: dict, test_videos: Any, source: str
    ) -> Iterator[Sample | ManifestProblem]:
        ids = UniqueIds()
        for video_name in test_videos:
            video_entry = annotations.get(video_name)
            actions = video_entry.get("annot") if isinstance(video_entry, dict) else None
            if not isinstance(actions, dict):
                yield ManifestProblem(source, f"test video {video_name!r} has no annotation")
                continue
            video_id = PurePosixPath(str(video_name)).stem
            video = first_existing(folder, (f"videos/{video_name}", str(video_name)))
            for action, instances in actions.items():
                for instance_index, instance in enumerate(instances):
                    where = f"video {video_name!r} {action} instance {instance_index}"
                    keyframes = instance.get("keyframes") if isinstance(instance, dict) else None
                    if not isinstance(keyframes, (list, tuple)):
                        yield ManifestProblem(source, f"{where}: no keyframes")
                        continue
                    for keyframe in keyframes:
                        yield self._keyframe_sample(
                            keyframe, ids, video_id, video, action, instance_index, where, source
                        )

    def _keyframe_sample(
        self,
        keyframe: Any,
        ids: UniqueIds,
        video_id: str,
        video: str,
        action: str,
        instance_index: int,
        where: str,
        source: str,
    ) -> Sample | ManifestProblem:
        if not isinstance(keyframe, dict) or "frameNumber" not in keyframe:
            return ManifestProblem(source, f"{where}: a keyframe has no frameNumber")
        frame_number = keyframe["frameNumber"]
        where = f"{where} frame {frame_number}"
        try:
            actor_box = _rows(keyframe.get("boundingBox"))[0]
            object_boxes = [row[:4] for row in _rows(keyframe.get("objects", ()))]
        except (ValueError, TypeError, IndexError) as error:
            return ManifestProblem(source, f"{where}: unreadable box ({error})")
        if isinstance(frame_number, bool) or not isinstance(frame_number, (int, np.integer)):
            return ManifestProblem(source, f"{where}: frameNumber is not a whole number")
        return make_sample(
            source,
            where,
            id=ids.make(f"{video_id}/{action}/{instance_index}/{frame_number}"),
            video=video,
            frame=int(frame_number) - 1,
            query=action,
            class_name=action,
            boxes=[actor_box],
            human_boxes=[actor_box],
            object_boxes=object_boxes,
            dataset=self.name,
            frame_size=RELATIVE_FRAME,
        )


def _has_first_split(splits: Any) -> bool:
    try:
        return isinstance(splits[0], (list, tuple, set, frozenset, np.ndarray))
    except (KeyError, IndexError):
        return False


def _rows(value: Any) -> list[list[float]]:
    """Boxes stored as an (n, k) array, a flat array, or nested lists, as rows."""
    if value is None:
        raise ValueError("missing")
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0:
        return []
    return array.reshape(-1, array.shape[-1]).tolist() if array.ndim > 1 else [array.tolist()]


DALY = Daly()
