"""Scoring predictions exactly as the VideoGEM authors scored theirs.

Comparability with the published tables decides every detail here, so each
rule follows the authors' evaluation code (``application/utilities/data.py``,
``analysis.py`` and ``stats_helper.py`` of felixVogel02/VideoGEM):

- Everything is scored in model-input space (S x S). A box is scaled from the
  frame it was drawn on with ``round(x * (S / width))``: the ratio first,
  then a round half to even. GroundingYouTube, YouCook-Interactions and DALY
  boxes are scaled in Python floats (float64); V-HICO boxes in float32, as
  the authors' torch tensors are (:data:`BOX_ARITHMETIC`): a product that is
  exactly k + 1/2 in exact arithmetic may round the other way.
- Pointing game: the integer arg-max point is a hit when it lies in any
  ground-truth box, borders included. Samples that could not be run (a missing
  video) are left out of the accuracy, as the authors skipped unreadable
  frames, and are counted separately.
- Spatial mAP (the VideoGEM authors' ``spatial_eval``): min-max normalize the
  heatmap, keep the pixels strictly above the mask threshold, and compute the
  IoU of that mask with the union of the ground-truth boxes painted as
  ``mask[y1:y2, x1:x2]`` (right and bottom edges excluded, unlike the pointing
  game). A sample is correct when the IoU is strictly above 0.3; the fraction
  correct is taken per class and then averaged over classes. The mask
  threshold is 0.5, ``spatial_eval``'s default; the authors' released entry
  point (``spatial_test``) passes 0.4, so it is a setting
  (``SpatialAP(mask_threshold=...)``). The strict comparisons are the
  authors'; the paper's wording ("IoU >= 0.3") differs only on exact ties.
  One deliberate difference: a box starting left of or above the input is
  clipped at 0, where the authors' slicing wraps it around to the far edge.
- The GroundingYouTube authors' own spatial measure (:class:`WWWSpatial`,
  ``eval_mining_clip_iou.py`` of brian7685/GroundingYouTube) is a different
  one, kept separate: the heatmap upsampled to the frame's own pixels, cut at
  ``>= 1e-4`` (not normalized, not 0.5), the box painted one pixel to the
  right of where it is (columns x1 + 1 .. x2 + 1, rows y1 .. y2, both ends
  included, coordinates truncated), and "mAP" the fraction of *samples* (not
  classes) whose IoU is above 0.3. A box that paints nothing (an inverted
  one) is a sample with no IoU: counted, never correct.

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

DEFAULT_MASK_THRESHOLD = 0.5  # spatial_eval's default; the authors' entry point passes 0.4
AUTHORS_ENTRY_POINT_MASK_THRESHOLD = 0.4
WWW_HEAT_THRESHOLD = 1e-4  # the GroundingYouTube evaluation's --thre default
IOU_THRESHOLD = 0.3

#: The arithmetic the VideoGEM authors scaled each benchmark's boxes in: torch
#: tensors (float32) for V-HICO, Python floats for the others.
BOX_ARITHMETIC: dict[str, str] = {"vhico": "float32"}


def box_arithmetic(dataset: str | None) -> str:
    """``float32`` or ``float64``: how the authors scaled the boxes of a dataset."""
    return BOX_ARITHMETIC.get(dataset or "", "float64")


def scale_box_to_model(
    box: Sequence[float],
    frame_size: Sequence[float],
    input_size: int,
    *,
    arithmetic: str = "float64",
) -> ModelBox:
    """A box in the S x S model input, rounded to integers (halves to even) as the
    authors did.

    ``frame_size`` is the (width, height) of the frame the box was drawn on,
    in the box's own units: a box given as fractions of the frame uses (1, 1).
    ``arithmetic``: ``float64`` (Python floats) or ``float32`` (the authors'
    torch tensors for V-HICO: ``float32(x) * float32(S / width)``, rounded
    to float32, then to an integer).
    """
    width, height = (float(size) for size in frame_size)
    if not (width > 0 and height > 0 and input_size > 0):
        raise ValueError(f"sizes must be positive, got frame {frame_size} and input {input_size}")
    x_scale = input_size / width
    y_scale = input_size / height
    x1, y1, x2, y2 = (float(value) for value in box)
    if arithmetic == "float32":
        scales = np.array([x_scale, y_scale, x_scale, y_scale], dtype=np.float32)
        products = np.array([x1, y1, x2, y2], dtype=np.float32) * scales
        a, b, c, d = (int(value) for value in np.round(products))
        return (a, b, c, d)
    if arithmetic != "float64":
        raise ValueError(f"arithmetic is float64 or float32, not {arithmetic!r}")
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


def heatmap_mask(heatmap: np.ndarray, threshold: float = DEFAULT_MASK_THRESHOLD) -> np.ndarray:
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
    heatmap: np.ndarray,
    boxes: Iterable[Sequence[float]],
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
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

    def __init__(
        self, iou_threshold: float = IOU_THRESHOLD, mask_threshold: float = DEFAULT_MASK_THRESHOLD
    ) -> None:
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


# --------------------------------------------------------------------------- the WWW measure


def www_box_mask(box: Sequence[float], shape: tuple[int, int]) -> np.ndarray:
    """A box painted as the GroundingYouTube evaluation paints it, on a (height, width) frame.

    Coordinates are truncated to integers; columns ``x1 + 1`` to ``x2 + 1`` and
    rows ``y1`` to ``y2`` are set, both ends included (their loop sets column
    i when ``x1 < i <= x2 + 1``, and rows ``[y1:y2 + 1]``). Negative starts are
    clipped at 0 rather than wrapped around, as everywhere in vgem.
    """
    height, width = shape
    x1, y1, x2, y2 = (int(value) for value in box)
    mask = np.zeros((height, width), dtype=bool)
    first_column = max(x1 + 1, 0)
    last_column = min(x2 + 1, width - 1)
    if first_column <= last_column:
        mask[max(y1, 0) : y2 + 1, first_column : last_column + 1] = True
    return mask


def www_iou(
    frame_heatmap: np.ndarray, box: Sequence[float], heat_threshold: float = WWW_HEAT_THRESHOLD
) -> float | None:
    """The GroundingYouTube authors' IoU of a heatmap in frame pixels with one box.

    The heatmap is cut at ``>= heat_threshold`` as given (not normalized); the
    box is painted by :func:`www_box_mask`. None when the box paints nothing
    (their evaluation counts such a sample and never scores it correct).
    """
    values = np.asarray(frame_heatmap, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"a heatmap must be 2-D (height, width), got shape {values.shape}")
    box_mask = www_box_mask(box, (values.shape[0], values.shape[1]))
    if not box_mask.any():
        return None
    predicted = values >= heat_threshold
    union = np.logical_or(predicted, box_mask).sum()
    return float(np.logical_and(predicted, box_mask).sum() / union)


@dataclass(frozen=True)
class WWWSpatialResult:
    """The GroundingYouTube authors' spatial figures: their "mAP" is the fraction of
    samples whose IoU is above the bar; ``mean_iou`` averages over every sample
    (a box that paints nothing adds 0, as in their sums)."""

    samples: int
    correct: int
    map: float | None
    mean_iou: float | None
    iou_threshold: float
    heat_threshold: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class WWWSpatial:
    """Collects per-sample IoUs of the GroundingYouTube measure (None: no box painted)."""

    def __init__(
        self, iou_threshold: float = IOU_THRESHOLD, heat_threshold: float = WWW_HEAT_THRESHOLD
    ) -> None:
        self.iou_threshold = iou_threshold
        self.heat_threshold = heat_threshold
        self._ious: list[float | None] = []

    def add_iou(self, iou: float | None) -> None:
        if iou is not None and not math.isfinite(iou):
            raise ValueError(f"an IoU must be finite, got {iou}")
        self._ious.append(None if iou is None else float(iou))

    def add_heatmap(self, frame_heatmap: np.ndarray, box: Sequence[float]) -> float | None:
        iou = www_iou(frame_heatmap, box, self.heat_threshold)
        self.add_iou(iou)
        return iou

    def result(self) -> WWWSpatialResult:
        samples = len(self._ious)
        correct = sum(iou is not None and iou > self.iou_threshold for iou in self._ious)
        return WWWSpatialResult(
            samples=samples,
            correct=correct,
            map=_rate(correct, samples),
            mean_iou=mean_of(iou or 0.0 for iou in self._ious) if samples else None,
            iou_threshold=self.iou_threshold,
            heat_threshold=self.heat_threshold,
        )
