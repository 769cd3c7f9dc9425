"""Grounding results as plain data, and their JSON form.

The result classes hold numbers only; their JSON document (the schema
``vgem.grounding/1`` documented in the README) is built by a function beside
them, so the classes stay small. Writing files is not this module's job: the
output layer (:mod:`vgem.outputs`) writes the JSON, the ``.npz`` of raw maps
and the annotated video, and this module imports no writer.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vgem.plain import plain_json
from vgem.temporal.segments import CONTRAST_RULE, LOW_CONTRAST, Segment, Timeline
from vgem.video.probe import VideoInfo

SCHEMA = "vgem.grounding/1"


@dataclass(frozen=True)
class CandidateScore:
    """A verb or object candidate and its cosine with the clip embedding."""

    text: str
    similarity: float


@dataclass(frozen=True)
class GroundedTime:
    """One query at one grounded time.

    ``point`` and ``prompt_points`` are (x, y) in original-video pixels, the centre of
    the chosen model-input pixel mapped back: they lie in the frame's area
    [-0.5, width - 0.5] x [-0.5, height - 0.5] (pixel centres at integers), so a video
    smaller than the model input can give a point up to 0.5 px beyond the outermost
    pixel centre (x = -0.36); round and clamp to [0, width - 1] to index a pixel;
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
    #: [x1, y1, x2, y2] in original-video pixel edges (the frame is [0, W] x [0, H]):
    #: the region of the query's heatmap around its point (vgem.regions), and its mean
    #: heat; ``model_box`` is the same region's inclusive box in model-input pixels.
    box: tuple[float, float, float, float] | None = None
    box_score: float | None = None
    model_box: tuple[int, int, int, int] | None = None

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
    #: The fingerprint of a many-video batch's request (:mod:`vgem.batch`), so that
    #: a resumed batch keeps only the outputs made for the same request.
    batch_request: str | None = None
    #: With ``masks=True``: each query's region at each time, bit-packed
    #: (:func:`vgem.regions.pack_masks`), uint8 ``[times, queries, ceil(S * S / 8)]``.
    masks: np.ndarray | None = None

    def region_masks(self) -> np.ndarray | None:
        """The regions as booleans ``[times, queries, S, S]`` in the model input (None
        when the grounding was not asked for masks)."""
        from vgem.regions import unpack_masks

        if self.masks is None:
            return None
        return unpack_masks(self.masks, (self.input_size, self.input_size))

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
    from vgem.version import __version__

    return {
        "schema": SCHEMA,
        "vgem_version": __version__,
        "video": asdict(result.video),
        "backbone": {"name": result.backbone, "weights": result.weights},
        "input_size": result.input_size,
        "settings": plain_json(result.settings),
        "queries": [_query_dict(query) for query in result.queries],
        **(_temporal_dict(result) if result.timeline is not None else {}),
        **({"batch_request": result.batch_request} if result.batch_request else {}),
    }


#: How a timeline's labels follow from its numbers (written into the JSON beside them).
LABEL_RULE = (
    "normalized = min-max of each query's scores over the grounded times (a constant "
    "query is 0); label = the query with the highest normalized score (the first on a "
    "tie) when that score >= threshold_used, else null (no action)"
)


def _temporal_dict(result: GroundingResult) -> dict[str, Any]:
    """Segments and the per-time label of a temporal run: for every grounded time the
    raw scores (cosines, rounded) and the normalized ones the label is cut from."""
    timeline = result.timeline
    assert timeline is not None  # called for temporal results only
    queries = [query.query for query in result.queries]
    return {
        "temporal": {
            **(asdict(timeline.settings) if timeline.settings else {}),
            # the threshold the labels were cut at (Otsu's, for threshold "auto"), exactly
            "threshold_used": float(timeline.threshold),
            "label_rule": LABEL_RULE,
            "contrast_rule": CONTRAST_RULE,
            "low_contrast_below": LOW_CONTRAST,
        },
        # per query: how far its best time stands out of its raw scores' jitter, and their
        # spread (max - min of the cosines); a low contrast is warned about in `warnings`
        "contrast": {
            query: {
                "contrast": _rounded(contrast),
                "spread": round(float(np.ptp(timeline.relevance[:, index])), 6),
            }
            for index, (query, contrast) in enumerate(
                zip(queries, _contrasts(timeline), strict=True)
            )
        },
        # runs of labels dropped for lasting less than min_segment: per query, how many
        # runs and how many labelled times they held
        "dropped": {
            query: {
                "segments": sum(1 for run in timeline.dropped if run.query_index == index),
                "times": sum(
                    _times_in(timeline, run) for run in timeline.dropped if run.query_index == index
                ),
            }
            for index, query in enumerate(queries)
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
                # not rounded: the label is re-derived from exactly these numbers
                "normalized": {
                    query: float(score)
                    for query, score in zip(queries, timeline.normalized[index], strict=True)
                },
            }
            for index, (time, label) in enumerate(zip(timeline.times, timeline.labels, strict=True))
        ],
    }


def _contrasts(timeline: Timeline) -> list[float | None]:
    count = timeline.relevance.shape[1] if timeline.relevance.ndim == 2 else 0
    if timeline.contrast is None:
        return [None] * count
    return [float(value) for value in timeline.contrast]


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 3)


def _times_in(timeline: Timeline, run: Segment) -> int:
    """How many labelled times of its query a dropped run held."""
    return sum(
        1
        for time, label in zip(timeline.times, timeline.labels, strict=True)
        if label == run.query_index and run.start - 1e-9 <= time < run.end - 1e-9
    )


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
    if entry.box is not None:
        document["box"] = [round(value, 3) for value in entry.box]
        document["box_score"] = None if entry.box_score is None else round(entry.box_score, 6)
    if entry.chosen:
        document["chosen"] = dict(entry.chosen)
    if entry.candidates:
        document["candidates"] = {
            role: [{"text": c.text, "similarity": round(c.similarity, 6)} for c in scores]
            for role, scores in entry.candidates.items()
        }
    return document


# --------------------------------------------------------------------------- JSON text


def json_text(document: Any) -> str:
    """``document`` as indented JSON that any parser reads: a number that is not finite
    (NaN, ±infinity: JSON has no words for them) is written as ``null``."""
    return json.dumps(_finite_numbers(document), indent=2, allow_nan=False) + "\n"


def _finite_numbers(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_numbers(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_numbers(item) for item in value]
    return value
