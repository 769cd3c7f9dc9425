"""From per-time scores to labels and segments.

Scores are normalized per query over the whole video (min-max, as the
authors do for temporal grounding), so one threshold works for every query:
a time takes the label of its best query when that query's normalized score
reaches the threshold, and stays background otherwise. Labelled times of the
same query separated by at most ``max_gap`` seconds of background merge into
one segment; segments shorter than ``min_segment`` are dropped. Everything
works on arrays of a few numbers per grounded time, so memory stays flat
however long the video.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vgem.errors import SettingsError

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_SEGMENT = 2.0
DEFAULT_MAX_GAP = 1.0
DEFAULT_BOUNDARY_WINDOW = 2.0
#: Below this contrast (:func:`timeline_contrast`), no time stands out for a query.
LOW_CONTRAST = 5.0
#: The smallest jitter a contrast divides by (cosines: far below any real difference).
NOISE_FLOOR = 1e-6
CONTRAST_RULE = (
    "contrast = (max - median) / noise of a query's raw scores over the grounded times, "
    "noise = 1.4826 * median |score(t) - score(previous t)| / sqrt(2) (the jitter between "
    "neighbouring times); scores that are noise alone give about 2 to 4; below "
    f"{LOW_CONTRAST:g} no time stands out and the labels (cut from min-max normalized "
    "scores, which always reach 1 somewhere) mean little"
)


@dataclass(frozen=True)
class TemporalSettings:
    """How times become segments. ``threshold``: a number in [0, 1] or ``"auto"``."""

    scorer: str = "class-token"
    threshold: float | str = DEFAULT_THRESHOLD
    min_segment: float = DEFAULT_MIN_SEGMENT
    max_gap: float = DEFAULT_MAX_GAP
    boundary_window: float = DEFAULT_BOUNDARY_WINDOW

    def __post_init__(self) -> None:
        if isinstance(self.threshold, str) and self.threshold != "auto":
            try:
                object.__setattr__(self, "threshold", float(self.threshold))
            except ValueError:
                raise SettingsError(
                    f"`threshold` must be a number in [0, 1] or 'auto', not {self.threshold!r}.",
                    settings=["threshold"],
                ) from None
        if not isinstance(self.threshold, str) and not (
            math.isfinite(self.threshold) and 0 <= self.threshold <= 1
        ):
            raise SettingsError(
                "`threshold` must lie in [0, 1] (scores are normalized per query).",
                settings=["threshold"],
            )
        for name in ("min_segment", "max_gap", "boundary_window"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise SettingsError(
                    f"`{name}` must be a finite number of seconds ≥ 0, not {value!r}.",
                    settings=[name],
                )
        if not isinstance(self.scorer, str) or not self.scorer.strip():
            raise SettingsError(
                f"`scorer` must name a plugin, not {self.scorer!r}.", settings=["scorer"]
            )


@dataclass(frozen=True)
class Segment:
    """One query happening from ``start`` to ``end`` seconds."""

    query: str
    query_index: int
    start: float
    end: float
    score: float


@dataclass
class Timeline:
    """Per grounded time: the label (query index or None) and every query's score."""

    times: np.ndarray
    labels: list[int | None]
    relevance: np.ndarray
    normalized: np.ndarray
    threshold: float
    segments: list[Segment] = field(default_factory=list)
    settings: TemporalSettings | None = None
    #: Per query: how far its best time stands out of its scores' jitter (NaN: too few
    #: times to say), see :func:`timeline_contrast`.
    contrast: np.ndarray | None = None
    #: Runs of labels dropped for being shorter than ``min_segment``.
    dropped: list[Segment] = field(default_factory=list)

    def low_contrast(self, query: int) -> float | None:
        """The query's contrast where it is below :data:`LOW_CONTRAST` (no time stands
        out of its noise: its labels may say it happens where it does not), else None
        (enough contrast, or too few times to say)."""
        if self.contrast is None or query >= len(self.contrast):
            return None
        contrast = float(self.contrast[query])
        return contrast if math.isfinite(contrast) and contrast < LOW_CONTRAST else None


def timeline_contrast(times: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """Per query, how far its best time stands above its typical one, in units of the
    jitter between neighbouring times (:data:`CONTRAST_RULE`).

    Min-max normalization makes every query reach 1 somewhere, even on a video
    where it never happens; this figure, from the raw scores, says whether the
    top is more than noise. It is a warning sign, not an accuracy: it needs no
    ground truth and promises nothing about where the action is.
    """
    relevance = np.asarray(relevance, dtype=np.float64)
    if relevance.ndim != 2 or relevance.shape[0] < 3:
        return np.full(relevance.shape[-1] if relevance.ndim == 2 else 0, np.nan)
    ordered = relevance[np.argsort(np.asarray(times, dtype=np.float64), kind="stable")]
    jitter = np.median(np.abs(np.diff(ordered, axis=0)), axis=0) * 1.4826 / math.sqrt(2)
    noise = np.maximum(jitter, NOISE_FLOOR)
    return (ordered.max(axis=0) - np.median(ordered, axis=0)) / noise


def normalize_per_query(scores: np.ndarray) -> np.ndarray:
    """Min-max over the video, per query column (a constant column becomes 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    low = scores.min(axis=0, keepdims=True)
    span = scores.max(axis=0, keepdims=True) - low
    return (scores - low) / np.where(span > 0, span, 1.0)


def otsu_threshold(values: Sequence[float] | np.ndarray, bins: int = 64) -> float:
    """The cut that best separates two groups of values (Otsu's method).

    Used for ``threshold="auto"``: on a video where the queries happen only
    part of the time, the best per-time scores form a background mode and a
    foreground mode, and the cut falls in the valley between them.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or np.ptp(values) == 0:
        return float(values[0]) if values.size else DEFAULT_THRESHOLD
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_below = np.cumsum(counts)
    weight_above = weight_below[-1] - weight_below
    sum_below = np.cumsum(counts * centres)
    mean_below = sum_below / np.maximum(weight_below, 1)
    mean_above = (sum_below[-1] - sum_below) / np.maximum(weight_above, 1)
    between = weight_below * weight_above * (mean_below - mean_above) ** 2
    # every cut inside an empty valley separates the same two groups: take the
    # middle of those cuts rather than the first, so the cut sits between modes
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    middle = (edges[best[0] + 1] + edges[best[-1] + 1]) / 2
    return float(middle)


def label_times(normalized: np.ndarray, threshold: float) -> list[int | None]:
    """The best query per time when it reaches ``threshold``, else None (background)."""
    best = normalized.argmax(axis=1)
    best_score = normalized[np.arange(len(best)), best]
    return [
        int(q) if score >= threshold else None for q, score in zip(best, best_score, strict=True)
    ]


def time_step(times: np.ndarray) -> float:
    """How long one grounded time stands for: the typical spacing of the times."""
    if len(times) < 2:
        return 1.0
    return float(np.median(np.diff(np.sort(times))))


def segments_from_labels(
    times: np.ndarray,
    labels: Sequence[int | None],
    scores: np.ndarray,
    queries: Sequence[str],
    *,
    min_segment: float,
    max_gap: float,
    step: float | None = None,
    dropped: list[Segment] | None = None,
) -> list[Segment]:
    """Runs of one label, bridged over short background gaps, short runs dropped.

    A grounded time t stands for [t, t + step). ``scores`` ``[times, queries]``
    (normalized) give each segment its mean score. ``dropped`` collects the runs
    dropped for being shorter than ``min_segment`` (so that they can be counted).
    """
    times = np.asarray(times, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    step = time_step(times) if step is None else step
    segments: list[Segment] = []
    current: list[int] = []  # positions (into ``times``) of the open segment's labelled times

    def close() -> None:
        if not current:
            return
        query = labels[current[0]]
        assert query is not None  # only labelled positions join a segment
        start, end = times[current[0]], times[current[-1]] + step
        score = float(np.mean([scores[i, query] for i in current]))
        segment = Segment(queries[query], query, float(start), float(end), score)
        if end - start >= min_segment - 1e-9:
            segments.append(segment)
        elif dropped is not None:
            dropped.append(segment)
        current.clear()

    for position in order:
        label = labels[position]
        if label is None:
            continue
        if current:
            previous = current[-1]
            # times are visited in order, so a labelled time of another query in
            # between would already have closed the segment
            gap = times[position] - (times[previous] + step)
            if labels[previous] != label or gap > max_gap + 1e-9:
                close()
        current.append(int(position))
    close()
    return segments


def refine_boundaries(
    segments: list[Segment],
    times: np.ndarray,
    start_scores: np.ndarray,
    end_scores: np.ndarray,
    *,
    window: float,
    step: float,
) -> list[Segment]:
    """Move each boundary, within ``window`` seconds, to where the clip looks most
    like the action starting (or finishing), never past the segment's other end."""
    times = np.asarray(times, dtype=np.float64)
    refined = []
    for segment in segments:
        q = segment.query_index
        near_start = np.flatnonzero(np.abs(times - segment.start) <= window)
        near_start = near_start[times[near_start] < segment.end - step / 2]
        start = segment.start
        if near_start.size:
            start = float(times[near_start[np.argmax(start_scores[near_start, q])]])
        near_end = np.flatnonzero(np.abs(times + step - segment.end) <= window)
        near_end = near_end[times[near_end] + step > start + step / 2]
        end = segment.end
        if near_end.size:
            end = float(times[near_end[np.argmax(end_scores[near_end, q])]] + step)
        refined.append(Segment(segment.query, q, start, max(end, start + step), segment.score))
    return refined


def localize(
    times: np.ndarray,
    relevance: np.ndarray,
    queries: Sequence[str],
    settings: TemporalSettings,
    *,
    start_scores: np.ndarray | None = None,
    end_scores: np.ndarray | None = None,
) -> Timeline:
    """Labels and segments for raw ``relevance`` ``[times, queries]``."""
    times = np.asarray(times, dtype=np.float64)
    relevance = np.asarray(relevance, dtype=np.float64)
    normalized = normalize_per_query(relevance)
    if settings.threshold == "auto":
        threshold = otsu_threshold(normalized.max(axis=1))
    else:
        threshold = float(settings.threshold)
    labels = label_times(normalized, threshold)
    step = time_step(times)
    dropped: list[Segment] = []
    segments = segments_from_labels(
        times,
        labels,
        normalized,
        queries,
        min_segment=settings.min_segment,
        max_gap=settings.max_gap,
        step=step,
        dropped=dropped,
    )
    if start_scores is not None and end_scores is not None:
        segments = refine_boundaries(
            segments,
            times,
            normalize_per_query(start_scores),
            normalize_per_query(end_scores),
            window=settings.boundary_window,
            step=step,
        )
    return Timeline(
        times,
        labels,
        relevance,
        normalized,
        threshold,
        segments,
        settings,
        contrast=timeline_contrast(times, relevance),
        dropped=dropped,
    )
