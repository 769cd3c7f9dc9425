"""Scoring predictions exactly as the VideoGEM authors scored theirs.

Comparability with the published tables decides every detail here, so each
rule follows the authors' evaluation code (``application/utilities/data.py``,
``analysis.py`` and ``stats_helper.py`` of felixVogel02/VideoGEM):

- Everything is scored in model-input space (S x S). A box is scaled from the
  frame it was drawn on with ``round(x * (S / width))``: the ratio first,
  then Python's ``round``, which rounds halves to even.
- Pointing game: the integer arg-max point is a hit when it lies in any
  ground-truth box, borders included. Samples that could not be run (a missing
  video) are left out of the accuracy, as the authors skipped unreadable
  frames, and are counted separately.
- Spatial mAP (the WWW paper's measure): min-max normalize the heatmap, keep
  the pixels strictly above 0.5, and compute the IoU of that mask with the
  union of the ground-truth boxes painted as ``mask[y1:y2, x1:x2]`` (right and
  bottom edges excluded, unlike the pointing game). A sample is correct when
  the IoU is strictly above 0.3; the fraction correct is taken per class and
  then averaged over classes. The strict comparisons are the authors'; the
  paper's wording ("IoU >= 0.3") differs only on exact ties.

All results are frozen dataclasses of plain numbers; ``to_dict()`` gives JSON.
A rate over zero samples is ``None`` rather than NaN, which JSON cannot hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vgem.plain import mean_of

Point = tuple[int, int]
ModelBox = tuple[int, int, int, int]


def scale_box_to_model(
    box: Sequence[float], frame_size: Sequence[float], input_size: int
) -> ModelBox:
    """A box in the S x S model input, rounded to integers as the authors did.

    ``frame_size`` is the (width, height) of the frame the box was drawn on,
    in the box's own units: a box given as fractions of the frame uses (1, 1).
    """
    width, height = (float(size) for size in frame_size)
    if not (width > 0 and height > 0 and input_size > 0):
        raise ValueError(f"sizes must be positive, got frame {frame_size} and input {input_size}")
    x_scale = input_size / width
    y_scale = input_size / height
    x1, y1, x2, y2 = (float(value) for value in box)
    return (round(x1 * x_scale), round(y1 * y_scale), round(x2 * x_scale), round(y2 * y_scale))


def point_in_box(point: Sequence[float], box: Sequence[float]) -> bool:
    """Whether (x, y) lies in [x1, y1, x2, y2], borders included."""
    x, y = point
    x1, y1, x2, y2 = box
    return x1 <= x <= x2 and y1 <= y <= y2


def pointing_hit(point: Sequence[float], boxes: Iterable[Sequence[float]]) -> bool:
    """Whether the point lies in any of the boxes."""
    return any(point_in_box(point, box) for box in boxes)


def format_percent(rate: float | None) -> str:
    """A rate as the paper prints it (``0.7`` gives ``70.00 %``)."""
    return "n/a" if rate is None else f"{100 * rate:.2f} %"


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class ClassAccuracy:
    """Pointing-game figures of one class."""

    samples: int
    hits: int
    errors: int
    accuracy: float | None


@dataclass(frozen=True)
class PointingResult:
    """Pointing-game figures: overall, per class, and the mean over classes.

    ``samples`` counts the samples that were scored; ``errors`` those that
    could not be run and are in no rate. ``class_mean_accuracy`` weighs every
    class alike, so it differs from ``accuracy`` when classes are unbalanced.
    """

    samples: int
    hits: int
    errors: int
    accuracy: float | None
    class_mean_accuracy: float | None
    classes: dict[str, ClassAccuracy]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PointingGame:
    """Collects hits and failures sample by sample, e.g. as a run goes along."""

    def __init__(self) -> None:
        self._hits: dict[str, int] = {}
        self._samples: dict[str, int] = {}
        self._errors: dict[str, int] = {}

    def add(self, class_key: str, hit: bool) -> None:
        self._samples[class_key] = self._samples.get(class_key, 0) + 1
        self._hits[class_key] = self._hits.get(class_key, 0) + int(bool(hit))

    def add_point(
        self, class_key: str, point: Sequence[float], boxes: Iterable[Sequence[float]]
    ) -> bool:
        """Score one predicted point against its boxes; returns whether it hit."""
        hit = pointing_hit(point, boxes)
        self.add(class_key, hit)
        return hit

    def add_error(self, class_key: str) -> None:
        """Count a sample that could not be run; it enters no rate."""
        self._errors[class_key] = self._errors.get(class_key, 0) + 1

    def result(self) -> PointingResult:
        names = sorted(set(self._samples) | set(self._errors))
        classes = {
            name: ClassAccuracy(
                samples=self._samples.get(name, 0),
                hits=self._hits.get(name, 0),
                errors=self._errors.get(name, 0),
                accuracy=_rate(self._hits.get(name, 0), self._samples.get(name, 0)),
            )
            for name in names
        }
        samples = sum(self._samples.values())
        hits = sum(self._hits.values())
        return PointingResult(
            samples=samples,
            hits=hits,
            errors=sum(self._errors.values()),
            accuracy=_rate(hits, samples),
            class_mean_accuracy=mean_of(score.accuracy for score in classes.values()),
            classes=classes,
        )


def normalize_heatmap(heatmap: np.ndarray) -> np.ndarray:
    """Min-max normalize to [0, 1]; a flat map becomes all zeros (no mask)."""
    values = np.asarray(heatmap, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"a heatmap must be 2-D (height, width), got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("the heatmap holds NaN or infinite values")
    low, high = values.min(), values.max()
    if high == low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def heatmap_mask(heatmap: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The pixels whose normalized heat is strictly above the threshold."""
    return normalize_heatmap(heatmap) > threshold


def boxes_mask(boxes: Iterable[Sequence[float]], shape: tuple[int, int]) -> np.ndarray:
    """The union of boxes painted as ``mask[y1:y2, x1:x2]``, as the authors did.

    Coordinates are truncated to integers; negative ones are clipped to 0 so
    that they cannot wrap around to the far edge as Python slicing would.
    """
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        x1, y1, x2, y2 = (max(int(value), 0) for value in box)
        mask[y1:y2, x1:x2] = True
    return mask


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 0 when both are empty."""
    union = np.logical_or(predicted, truth).sum()
    if union == 0:
        return 0.0
    return float(np.logical_and(predicted, truth).sum() / union)


def heatmap_box_iou(
    heatmap: np.ndarray, boxes: Iterable[Sequence[float]], mask_threshold: float = 0.5
) -> float:
    """IoU of the thresholded heatmap with the boxes, both in model-input pixels."""
    predicted = heatmap_mask(heatmap, mask_threshold)
    return mask_iou(predicted, boxes_mask(boxes, predicted.shape))


@dataclass(frozen=True)
class ClassPrecision:
    """Spatial figures of one class: the fraction of its samples above the IoU bar."""

    samples: int
    correct: int
    precision: float | None
    mean_iou: float | None


@dataclass(frozen=True)
class SpatialAPResult:
    """Spatial mAP (mean over classes of the per-class precision) and its parts."""

    samples: int
    correct: int
    mean_ap: float | None
    accuracy: float | None
    mean_iou: float | None
    iou_threshold: float
    mask_threshold: float
    classes: dict[str, ClassPrecision]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpatialAP:
    """Collects per-sample IoUs and turns them into the spatial mAP."""

    def __init__(self, iou_threshold: float = 0.3, mask_threshold: float = 0.5) -> None:
        self.iou_threshold = iou_threshold
        self.mask_threshold = mask_threshold
        self._ious: dict[str, list[float]] = {}

    def add_iou(self, class_key: str, iou: float) -> None:
        if not math.isfinite(iou):
            raise ValueError(f"an IoU must be finite, got {iou}")
        self._ious.setdefault(class_key, []).append(float(iou))

    def add_heatmap(
        self, class_key: str, heatmap: np.ndarray, boxes: Iterable[Sequence[float]]
    ) -> float:
        """Score one S x S heatmap against its model-space boxes; returns the IoU."""
        iou = heatmap_box_iou(heatmap, boxes, self.mask_threshold)
        self.add_iou(class_key, iou)
        return iou

    def result(self) -> SpatialAPResult:
        classes = {}
        for name in sorted(self._ious):
            ious = self._ious[name]
            correct = sum(iou > self.iou_threshold for iou in ious)
            classes[name] = ClassPrecision(
                samples=len(ious),
                correct=correct,
                precision=_rate(correct, len(ious)),
                mean_iou=mean_of(ious),
            )
        all_ious = [iou for ious in self._ious.values() for iou in ious]
        correct = sum(score.correct for score in classes.values())
        return SpatialAPResult(
            samples=len(all_ious),
            correct=correct,
            mean_ap=mean_of(score.precision for score in classes.values()),
            accuracy=_rate(correct, len(all_ious)),
            mean_iou=mean_of(all_ious),
            iou_threshold=self.iou_threshold,
            mask_threshold=self.mask_threshold,
            classes=classes,
        )
