"""Scoring *when* (and where) actions happen in whole videos: the untrimmed-video metrics.

Pure functions and small accumulators on seconds, intervals and scores; no
files, no models. vgem.eval.tasks turns prediction lines and
annotations into their inputs. Every definition below is written out with a
worked example in the README ("Untrimmed videos: when and where").

Time. A grounded second ``k`` stands for ``[k, k + 1)``; an interval
``[start, end)`` holds second ``k`` when its middle ``k + 0.5`` lies inside
(:func:`seconds_in`). Annotations given as ``[first, last]`` seconds, both
included, are the interval ``[first, last + 1)``.

Frame-wise ratios (IoU, IoD, IoU+Pointing). Each is a numerator over a
denominator counted in seconds, per class (a step name) and video:

- IoU = |P ∩ G| / |P ∪ G| and IoD = |P ∩ G| / |P|, P the predicted and G the
  ground-truth seconds of the class (MiningYouTube's "intersection over
  union" and "intersection over detection", Kuehne et al.).
- IoU+Pointing = hits / |P ∪ G|, a hit being a second of P ∩ G whose point
  lies in that second's box (GroundingYouTube, Chen et al., CVPR 2024).

A class whose denominator is zero in a video (IoD: nothing predicted) is left
out of that video; a video is the mean over its remaining classes, and the
figure is the mean over videos (``video_mean``). This is how the
GroundingYouTube authors averaged, as recorded in the VideoGEM authors'
evaluation code (felixVogel02/VideoGEM, ``stats_helper.get_temporal_ioU_ioD``:
"first over captions, then over videos"). ``class_mean`` pools the counts of
each class over all videos and averages over classes, as the issue words it;
both are reported.

Detection mAP (segment mAP and video mAP). Per class, detections from all
videos are ranked by score (highest first; ties keep input order). Each is
matched to the not yet matched ground-truth instance of its class in its
video with the highest overlap, if that overlap reaches the threshold (≥, to
within 1e-12 for float noise; then a true positive), else it is a false
positive: the THUMOS14 / ActivityNet protocol. AP is the area under the
precision envelope at every recall step (all-point interpolation, as in VOC
2010+ and the ActivityNet toolkit); mAP is the mean over classes that have
ground truth (a class without ground truth has no AP and is left out; a class
with ground truth but no detection has AP 0). Overlaps: temporal IoU for
segment mAP; tube IoU (:func:`tube_iou`) for video mAP.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from typing import Any

from vgem.plain import mean_of

Interval = tuple[float, float]

SEGMENT_MAP_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
VIDEO_MAP_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


# --------------------------------------------------------------------------- time


def seconds_in(start: float, end: float) -> range:
    """The seconds ``k`` whose middle ``k + 0.5`` lies in ``[start, end)``.

    ``[5, 12)`` holds seconds 5 to 11; a boundary a little off the grid (a
    refined segment ending at 11.9) still holds the seconds it mostly covers.
    """
    first = max(0, math.ceil(start - 0.5))
    return range(first, max(first, math.ceil(end - 0.5)))


def temporal_iou(predicted: Interval, truth: Interval) -> float:
    """Intersection over union of two intervals ``[start, end)`` (0 when disjoint)."""
    intersection = min(predicted[1], truth[1]) - max(predicted[0], truth[0])
    if intersection <= 0:
        return 0.0
    union = max(predicted[1], truth[1]) - min(predicted[0], truth[0])
    return intersection / union


@dataclass(frozen=True)
class TruthTube:
    """A ground-truth action instance: its interval, and the pointing verdict of
    every boxed second in it (True when the point of the prediction's query lies in
    that second's box). Seconds without a box are absent: nothing can be judged there."""

    start: float
    end: float
    judged: Mapping[int, bool] = field(default_factory=dict)


def tube_iou(predicted: Interval, truth: TruthTube) -> float:
    """Temporal IoU × the fraction of judged seconds in the overlap that hit.

    The spatio-temporal overlap of action tubes (temporal IoU times the mean
    spatial overlap over the temporal intersection, Weinzaepfel et al. 2015),
    with the per-frame box IoU replaced by the pointing verdict, since vgem
    predicts points. An overlap without any boxed second is judged on time
    alone (spatial factor 1): there is no box to contradict it.
    """
    overlap = temporal_iou(predicted, (truth.start, truth.end))
    if overlap == 0.0:
        return 0.0
    common = seconds_in(max(predicted[0], truth.start), min(predicted[1], truth.end))
    verdicts = [truth.judged[second] for second in common if second in truth.judged]
    if not verdicts:
        return overlap
    return overlap * sum(verdicts) / len(verdicts)


# --------------------------------------------------------------------------- frame-wise ratios


@dataclass(frozen=True)
class ClassRatio:
    """One class's counts pooled over all videos, and their ratio (None over zero)."""

    numerator: int
    denominator: int
    value: float | None


@dataclass(frozen=True)
class AveragedRatio:
    """A frame-wise ratio averaged per video then over videos, and per class."""

    video_mean: float | None
    class_mean: float | None
    videos: int
    classes: dict[str, ClassRatio]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RatioAverager:
    """Collects ``(numerator, denominator)`` per class, video by video (see the module doc)."""

    def __init__(self) -> None:
        self._video_values: list[float] = []
        self._pooled: dict[str, list[int]] = {}

    def add_video(self, counts: Mapping[str, tuple[int, int]]) -> float | None:
        """Add one video's counts per class; returns the video's mean (None if no class counts)."""
        values = []
        for class_key, (numerator, denominator) in counts.items():
            if numerator < 0 or denominator < numerator:
                raise ValueError(f"{class_key!r}: bad counts {numerator}/{denominator}")
            pooled = self._pooled.setdefault(class_key, [0, 0])
            pooled[0] += numerator
            pooled[1] += denominator
            if denominator:
                values.append(numerator / denominator)
        video_value = mean_of(values)
        if video_value is not None:
            self._video_values.append(video_value)
        return video_value

    def result(self) -> AveragedRatio:
        classes = {
            name: ClassRatio(
                numerator, denominator, numerator / denominator if denominator else None
            )
            for name, (numerator, denominator) in sorted(self._pooled.items())
        }
        return AveragedRatio(
            video_mean=mean_of(self._video_values),
            class_mean=mean_of(ratio.value for ratio in classes.values()),
            videos=len(self._video_values),
            classes=classes,
        )


def overlap_counts(predicted: set[int], truth: set[int]) -> tuple[int, int, int]:
    """``(|P ∩ G|, |P ∪ G|, |P|)``: the counts of IoU and IoD."""
    intersection = len(predicted & truth)
    return intersection, len(predicted) + len(truth) - intersection, len(predicted)


def iou_pointing_counts(
    predicted: set[int], truth: set[int], hits: set[int], ignored: AbstractSet[int] = frozenset()
) -> tuple[int, int]:
    """``(hits, |P ∪ G|)`` of one class in one video.

    ``hits``: the seconds where the class's point lies in the box; only those
    in P ∩ G count. ``ignored``: seconds left out of P and G alike (seconds of
    a ground-truth segment whose box the annotators did not give).
    """
    predicted = predicted - ignored
    truth = truth - ignored
    return len(predicted & truth & hits), len(predicted | truth)


# --------------------------------------------------------------------------- detection mAP


@dataclass(frozen=True)
class Detection:
    """One scored prediction of a class in a video; ``extent`` is what the overlap reads."""

    video: str
    label: str
    score: float
    extent: Any


def average_precision(ranked_hits: Sequence[bool], truth_count: int) -> float:
    """AP of detections in rank order (True: matched), all-point interpolated.

    Precision is made non-increasing from the right (the envelope) and summed
    over each recall step: AP = Σ (r_i − r_{i−1}) · max_{j ≥ i} p_j.
    """
    if truth_count <= 0:
        raise ValueError("average precision needs at least one ground-truth instance")
    precisions, recalls = [], []
    true_positives = 0
    for rank, hit in enumerate(ranked_hits, start=1):
        true_positives += bool(hit)
        precisions.append(true_positives / rank)
        recalls.append(true_positives / truth_count)
    for index in range(len(precisions) - 2, -1, -1):
        precisions[index] = max(precisions[index], precisions[index + 1])
    area, previous_recall = 0.0, 0.0
    for precision, recall in zip(precisions, recalls, strict=True):
        if recall > previous_recall:
            area += (recall - previous_recall) * precision
            previous_recall = recall
    return area


def match_detections(
    detections: Sequence[Detection],
    truths: Sequence[Any],
    overlap: Callable[[Any, Any], float],
    threshold: float,
) -> list[bool]:
    """Greedy matching of one class in one video's ranked detections to its instances.

    Each detection, best score first, takes the unmatched instance it
    overlaps most if that overlap reaches ``threshold``.
    """
    matched = [False] * len(truths)
    verdicts = []
    for detection in detections:
        best, best_overlap = None, -1.0
        for index, truth in enumerate(truths):
            if matched[index]:
                continue
            value = overlap(detection.extent, truth)
            if value >= threshold - 1e-12 and value > best_overlap:
                best, best_overlap = index, value
        if best is not None:
            matched[best] = True
        verdicts.append(best is not None)
    return verdicts


@dataclass(frozen=True)
class MeanAPResult:
    """mAP at each threshold (keys like ``"0.3"``), their mean, and AP per class."""

    thresholds: tuple[float, ...]
    map: dict[str, float | None]
    mean: float | None
    classes: dict[str, list[float]]
    detections: int
    truths: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def threshold_key(threshold: float) -> str:
    return f"{threshold:g}"


def mean_average_precision(
    detections: Sequence[Detection],
    truths: Mapping[tuple[str, str], Sequence[Any]],
    overlap: Callable[[Any, Any], float],
    thresholds: Sequence[float],
) -> MeanAPResult:
    """mAP over classes at each threshold; ``truths`` maps (video, class) to instances.

    Matching is per video, but the ranking is over all videos of a class, so
    a confident false detection in one video costs precision everywhere.
    """
    truth_count: dict[str, int] = {}
    for (_, label), instances in truths.items():
        truth_count[label] = truth_count.get(label, 0) + len(instances)
    labels = sorted(label for label, count in truth_count.items() if count > 0)
    ranked: dict[str, list[Detection]] = {label: [] for label in labels}
    for detection in detections:
        if detection.label in ranked:
            ranked[detection.label].append(detection)
    for label in labels:  # sorted() is stable: equal scores keep their input order
        ranked[label].sort(key=lambda detection: -detection.score)
    classes: dict[str, list[float]] = {label: [] for label in labels}
    for threshold in thresholds:
        for label in labels:
            classes[label].append(
                _class_ap(ranked[label], truths, label, overlap, threshold, truth_count[label])
            )
    per_threshold = {
        threshold_key(threshold): mean_of(classes[label][position] for label in labels)
        for position, threshold in enumerate(thresholds)
    }
    return MeanAPResult(
        thresholds=tuple(float(threshold) for threshold in thresholds),
        map=per_threshold,
        mean=mean_of(per_threshold.values()),
        classes=classes,
        detections=sum(len(ranked[label]) for label in labels),
        truths=sum(truth_count[label] for label in labels),
    )


def _class_ap(
    ranked: list[Detection],
    truths: Mapping[tuple[str, str], Sequence[Any]],
    label: str,
    overlap: Callable[[Any, Any], float],
    threshold: float,
    truth_count: int,
) -> float:
    positions: dict[str, list[int]] = {}
    for rank, detection in enumerate(ranked):
        positions.setdefault(detection.video, []).append(rank)
    hits = [False] * len(ranked)
    for video, ranks in positions.items():
        verdicts = match_detections(
            [ranked[rank] for rank in ranks], truths.get((video, label), ()), overlap, threshold
        )
        for rank, verdict in zip(ranks, verdicts, strict=True):
            hits[rank] = verdict
    return average_precision(hits, truth_count)
