"""Grounding results as plain data, and their JSON / .npz forms.

The result classes hold numbers only; converters to files live beside them
as functions, so the classes stay small. JSON is the schema
``vgem.grounding/1`` documented in the README; the ``.npz`` holds the raw
cosine maps for anyone who wants to post-process them elsewhere.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vgem.plain import plain_json
from vgem.temporal.segments import Timeline
from vgem.video import VideoInfo

SCHEMA = "vgem.grounding/1"


@dataclass(frozen=True)
class CandidateScore:
    """A verb or object candidate and its cosine with the clip embedding."""

    text: str
    similarity: float


@dataclass(frozen=True)
class GroundedTime:
    """One query at one grounded time.

    ``point`` and ``prompt_points`` are (x, y) in original-video pixels;
    ``model_point`` is the integer point in the S × S model input that the
    authors' evaluation tests. ``score`` is the cosine of the original path's
    clip embedding with the action prompt.
    """

    time: float
    frame: int
    point: tuple[float, float]
    model_point: tuple[int, int]
    prompt_points: dict[str, tuple[float, float]]
    score: float
    chosen: dict[str, str] = field(default_factory=dict)
    candidates: dict[str, list[CandidateScore]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not all(math.isfinite(value) for value in self.point):
            raise ValueError(f"point {self.point} is not finite")


@dataclass(frozen=True)
class QueryResult:
    """Everything grounded for one query, in time order."""

    query: str
    prompts: dict[str, str]
    extractor: str
    times: list[GroundedTime]
    verb_candidates: list[str] = field(default_factory=list)
    object_candidates: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class GroundingResult:
    """The answer to ``Grounder.ground``.

    ``similarity`` is float32 ``[times, queries, 3, grid_h, grid_w]``: the raw
    cosine maps of the verb, object and action prompts (chosen candidates)
    before upsampling and normalization. ``times`` / ``frames`` are parallel to
    its first axis, as are ``clip_embeddings`` ``[times, D]`` (the original
    path's normalized clip embeddings). ``timeline`` says when each query
    happens, when temporal localization was asked for.
    """

    video: VideoInfo
    backbone: str
    weights: str
    input_size: int
    settings: dict[str, Any]
    queries: list[QueryResult]
    times: np.ndarray
    frames: np.ndarray
    similarity: np.ndarray
    clip_embeddings: np.ndarray | None = None
    timeline: Timeline | None = None

    def __post_init__(self) -> None:
        count = len(self.times)
        if len(self.frames) != count or self.similarity.shape[:2] != (count, len(self.queries)):
            raise ValueError("times, frames, similarity and queries disagree in length")
        if any(len(query.times) != count for query in self.queries):
            raise ValueError("every query needs one entry per grounded time")

    @property
    def points(self) -> np.ndarray:
        """``[times, queries, 2]`` final points in original-video pixels."""
        return np.array(
            [[query.times[i].point for query in self.queries] for i in range(len(self.times))],
            dtype=np.float64,
        ).reshape(len(self.times), len(self.queries), 2)


def to_json_dict(result: GroundingResult) -> dict[str, Any]:
    """The ``vgem.grounding/1`` document."""
    from vgem import __version__

    return {
        "schema": SCHEMA,
        "vgem_version": __version__,
        "video": asdict(result.video),
        "backbone": {"name": result.backbone, "weights": result.weights},
        "input_size": result.input_size,
        "settings": plain_json(result.settings),
        "queries": [_query_dict(query) for query in result.queries],
        **(_temporal_dict(result) if result.timeline is not None else {}),
    }


def _temporal_dict(result: GroundingResult) -> dict[str, Any]:
    """Segments and the per-time label of a temporal run."""
    timeline = result.timeline
    assert timeline is not None  # called for temporal results only
    queries = [query.query for query in result.queries]
    return {
        "temporal": {
            **(asdict(timeline.settings) if timeline.settings else {}),
            "threshold_used": round(timeline.threshold, 6),
        },
        "segments": [
            {
                "query": segment.query,
                "start": round(segment.start, 3),
                "end": round(segment.end, 3),
                "score": round(segment.score, 6),
            }
            for segment in timeline.segments
        ],
        "timeline": [
            {
                "time": float(time),
                "label": None if label is None else queries[label],
                "scores": {
                    query: round(float(score), 6)
                    for query, score in zip(queries, timeline.relevance[index], strict=True)
                },
            }
            for index, (time, label) in enumerate(zip(timeline.times, timeline.labels, strict=True))
        ],
    }


def _query_dict(query: QueryResult) -> dict[str, Any]:
    document: dict[str, Any] = {
        "query": query.query,
        "prompts": dict(query.prompts),
        "extractor": query.extractor,
        "warnings": list(query.warnings),
    }
    if len(query.verb_candidates) > 1 or len(query.object_candidates) > 1:
        document["candidates"] = {
            "verb": list(query.verb_candidates),
            "object": list(query.object_candidates),
        }
    document["times"] = [_time_dict(entry) for entry in query.times]
    return document


def _time_dict(entry: GroundedTime) -> dict[str, Any]:
    document: dict[str, Any] = {
        "time": entry.time,
        "frame": entry.frame,
        "point": [round(entry.point[0], 3), round(entry.point[1], 3)],
        "model_point": list(entry.model_point),
        "prompt_points": {
            role: [round(x, 3), round(y, 3)] for role, (x, y) in entry.prompt_points.items()
        },
        "score": round(entry.score, 6),
    }
    if entry.chosen:
        document["chosen"] = dict(entry.chosen)
    if entry.candidates:
        document["candidates"] = {
            role: [{"text": c.text, "similarity": round(c.similarity, 6)} for c in scores]
            for role, scores in entry.candidates.items()
        }
    return document


def atomic_write(path: str | Path, write) -> Path:
    """Call ``write(temporary_path)`` and rename onto ``path`` only if it succeeds.

    Bad input must never destroy earlier output, so a failed write leaves
    whatever was at ``path`` untouched.
    """
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".part{target.suffix}", dir=target.parent
    )
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 is for the temporary only
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_json(result: GroundingResult, path: str | Path) -> Path:
    text = json.dumps(to_json_dict(result), indent=2) + "\n"
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_npz(result: GroundingResult, path: str | Path) -> Path:
    """``similarity`` [times, queries, prompts, grid_h, grid_w] plus times, frames,
    points, the query texts and the prompt order."""

    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            np.savez_compressed(
                handle,
                similarity=result.similarity.astype(np.float32),
                times=np.asarray(result.times, dtype=np.float64),
                frames=np.asarray(result.frames, dtype=np.int64),
                points=result.points,
                clip_embeddings=(
                    np.zeros((len(result.times), 0), np.float32)
                    if result.clip_embeddings is None
                    else result.clip_embeddings.astype(np.float32)
                ),
                queries=np.array([query.query for query in result.queries]),
                prompts=np.array(["verb", "object", "action"]),
            )

    return atomic_write(path, write)
