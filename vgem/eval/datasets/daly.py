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
- ``time``: the keyframe's ``time`` in seconds, as annotated. The frame
  number counts frames of the video the annotators had; a copy downloaded
  or re-encoded at another rate would put ``frameNumber`` at another moment,
  the time does not move. Where the release gives the video's ``fps``
  (``metadata``), the time is checked against ``(frameNumber - 1) / fps``;
  a keyframe more than one frame off is counted in the data report ("time
  and frameNumber disagree"). A keyframe without a ``time`` falls back to
  ``frame``: ``frameNumber - 1`` in the video's own rate (counted too).
- ``query`` and ``class``: the action name as published ("BrushingTeeth");
  the label extractor splits CamelCase as the authors did.
- ``video``: ``videos/<file name>`` if present, else ``<file name>`` if
  present, else ``videos/<file name>``.
- ``id``: ``<video id>/<action>/<instance>/<frameNumber>``.

Flags: a keyframe is *flagged* when its instance's ``flags`` (or the keyframe
itself) set ``isReflection``, ``isAmbiguous`` or another ``is...`` flag. All
keyframes are kept and evaluated, flags notwithstanding: the VideoGEM
authors evaluated a keyframe list of their own that is not published, and
nothing in their code filters by flag. The data report counts the flagged
keyframes per flag, so a figure can be read knowing how many there were.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
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
    first_existing,
    make_sample,
)
from vgem.eval.safe_pickle import safe_load
from vgem.eval.samples import DataNote, ManifestProblem, Sample

ANNOTATION_CANDIDATES = ("daly1.1.0.pkl", "annotations/daly1.1.0.pkl")
RELATIVE_FRAME = (1, 1)


ANNOTATION_FILE = DatasetFile(
    ANNOTATION_CANDIDATES[0],
    "the DALY annotations (a Python 2 pickle): labels, splits, metadata, annot",
    "the DALY project page (thoth.inrialpes.fr/daly, archive daly1.1.0.tgz)",
    also_looked=ANNOTATION_CANDIDATES[1:],
)
TIME_MISMATCH = "time and frameNumber disagree (more than one frame at the release's fps)"
NO_TIME = "keyframe without a time: its frameNumber is used in the video's own rate"


class Daly:
    name = "daly"
    description = "DALY: keyframes of the test split (daly1.1.0.pkl), relative boxes"
    guide = DatasetGuide(
        title="DALY, Daily Action Localization in YouTube (test split keyframes)",
        reference="Weinzaepfel, Martin and Schmid, Human Action Localization with "
        "Sparse Spatial Supervision, 2016",
        files=(ANNOTATION_FILE,),
        videos="the test videos as videos/<name>.mp4 (or <name>.mp4 at the root), "
        "downloaded from YouTube with the DALY download scripts; any frame rate will "
        "do, the keyframes are placed by their annotated time",
        counts="one sample per keyframe of the test split's instances (splits[0]; the paper "
        "evaluates a keyframe list of its own, not published); flagged keyframes are "
        "kept and counted",
        differences=(
            "keyframes are placed by their annotated time rather than by frame number "
            "in the downloaded copy's rate",
        ),
    )

    def read(self, root: Path) -> Iterator[Sample | ManifestProblem | DataNote]:
        folder = dataset_root(root)
        path = find_file(folder, ANNOTATION_FILE)
        release = safe_load(path)
        if not (isinstance(release, dict) and isinstance(release.get("annot"), dict)):
            raise DatasetError(f"{path.name} has no 'annot' table; is it the DALY release?")
        splits = release.get("splits")
        if not (isinstance(splits, (dict, list, tuple)) and _has_first_split(splits)):
            raise DatasetError(f"{path.name} has no test split (splits[0]).")
        metadata = release.get("metadata")
        return self._samples(
            folder,
            release["annot"],
            splits[0],
            metadata if isinstance(metadata, dict) else {},
            path.name,
        )

    def _samples(
        self, folder: Path, annotations: dict, test_videos: Any, metadata: dict, source: str
    ) -> Iterator[Sample | ManifestProblem | DataNote]:
        ids = UniqueIds()
        for video_name in test_videos:
            video_entry = annotations.get(video_name)
            actions = video_entry.get("annot") if isinstance(video_entry, dict) else None
            if not isinstance(actions, dict):
                reason = f"test video {video_name!r} has no annotation"
                yield ManifestProblem(source, reason, kind="test video without annotation")
                continue
            video_id = PurePosixPath(str(video_name)).stem
            video = first_existing(folder, (f"videos/{video_name}", str(video_name)))
            fps = _fps(metadata.get(video_name))
            for action, instances in actions.items():
                for instance_index, instance in enumerate(instances):
                    where = f"video {video_name!r} {action} instance {instance_index}"
                    keyframes = instance.get("keyframes") if isinstance(instance, dict) else None
                    if not isinstance(keyframes, (list, tuple)):
                        yield ManifestProblem(source, f"{where}: no keyframes", kind="no keyframes")
                        continue
                    flags = _flags(instance.get("flags"))
                    for keyframe in keyframes:
                        place = _Place(video_id, video, action, instance_index, where, source, fps)
                        yield from self._keyframe_sample(keyframe, ids, place, flags)

    def _keyframe_sample(
        self, keyframe: Any, ids: UniqueIds, place: _Place, instance_flags: tuple[str, ...]
    ) -> Iterator[Sample | ManifestProblem | DataNote]:
        source = place.source
        if not isinstance(keyframe, dict) or "frameNumber" not in keyframe:
            reason = f"{place.where}: a keyframe has no frameNumber"
            yield ManifestProblem(source, reason, kind="keyframe without frameNumber")
            return
        frame_number = keyframe["frameNumber"]
        where = f"{place.where} frame {frame_number}"
        try:
            actor_box = _rows(keyframe.get("boundingBox"))[0]
            object_boxes = [row[:4] for row in _rows(keyframe.get("objects", ()))]
        except (ValueError, TypeError, IndexError) as error:
            reason = f"{where}: unreadable box ({error})"
            yield ManifestProblem(source, reason, kind="unreadable box")
            return
        if isinstance(frame_number, bool) or not isinstance(frame_number, (int, np.integer)):
            reason = f"{where}: frameNumber is not a whole number"
            yield ManifestProblem(source, reason, kind="frameNumber not a whole number")
            return
        remarks: list[str] = []
        seconds: Any = keyframe.get("time")
        if _real(seconds) and float(seconds) >= 0:
            when: dict[str, Any] = {"time": float(seconds)}
            if place.fps is not None and not time_matches_frame(
                float(seconds), int(frame_number), place.fps
            ):
                remarks.append(TIME_MISMATCH)
        else:
            when = {"frame": int(frame_number) - 1}
            remarks.append(NO_TIME)
        sample = make_sample(
            source,
            where,
            id=ids.make(f"{place.video_id}/{place.action}/{place.instance_index}/{frame_number}"),
            video=place.video,
            query=place.action,
            class_name=place.action,
            boxes=[actor_box],
            human_boxes=[actor_box],
            object_boxes=object_boxes,
            dataset=self.name,
            frame_size=RELATIVE_FRAME,
            **when,
        )
        yield sample
        flags = tuple(dict.fromkeys([*instance_flags, *_flags(keyframe)]))
        if isinstance(sample, Sample) and (flags or remarks):
            yield DataNote(source, sample.id, flags=flags, remarks=tuple(remarks))


@dataclass(frozen=True)
class _Place:
    """Where a keyframe sits in the release."""

    video_id: str
    video: str
    action: str
    instance_index: int
    where: str
    source: str
    fps: float | None


def time_matches_frame(seconds: float, frame_number: int, fps: float) -> bool:
    """Whether an annotated time and a 1-based frame number name the same moment, within
    one frame at ``fps`` (the frame's start, ``(frameNumber - 1) / fps``, or its end)."""
    return abs(seconds - (frame_number - 1) / fps) <= 1.0 / fps + 1e-9


def _fps(metadata: Any) -> float | None:
    fps: Any = metadata.get("fps") if isinstance(metadata, dict) else None
    return float(fps) if _real(fps) and float(fps) > 0 else None


def _real(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _flags(holder: Any) -> tuple[str, ...]:
    """The ``is...`` flags set in a dict (an instance's ``flags``, or a keyframe)."""
    if not isinstance(holder, dict):
        return ()
    return tuple(
        sorted(
            str(name)
            for name, value in holder.items()
            if str(name).startswith("is") and isinstance(value, (bool, int, np.bool_)) and value
        )
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
