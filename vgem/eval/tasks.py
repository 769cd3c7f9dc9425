"""The evaluation tasks: what a run grounds, records and scores.

A task object tells the one run loop (vgem.eval.engine) everything that
differs between the spatial task and the whole-video tasks:

- how samples are grouped into work units (one per video: each video is
  probed once and grounded with one call),
- the grounding call for a unit, emitting one prediction line per sample as
  soon as it is grounded,
- the line itself, and the "already done" rule a resumed run applies to it,
- the scoring (overall and per dataset), its part of results.json and the
  columns of its table.

What is common (the head of every line, the line of a sample that could not be
run, probing a video with its errors captured, timing) is written once, in
:class:`Task`.

The spatial task (:class:`SpatialTask`) grounds one frame per sample, the
paper's protocol: samples are grouped by video, and one ``Grounder.ground``
call takes all of a video's distinct queries and times. The visual pass is per
clip and shared by every query, so this costs one forward per distinct time.
Each sample's line is written as soon as its time is grounded
(``on_grounded``), so a kill loses at most the samples of the clip in flight.

The whole-video tasks (:class:`WholeVideoTask`, ``spatiotemporal`` and
``temporal``) follow the GroundingYouTube protocol: each video is grounded
once at 1 fps with the pool of its own step names as the queries and
``temporal=TemporalSettings(...)``, so vgem itself decides when each step
happens (segments) and where (the point of the segment's query at each of its
seconds). A line holds the predicted segments and, for every boxed
ground-truth second, the point of that second's step and whether it lies in
the box.

A sample that cannot be run (video missing, unreadable, too short for its
time) gets an error line and never stops the run; it is counted and left out
of every figure.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.errors import InputError, SettingsError
from vgem.eval.lines import (
    BOX,
    HEAD_FIELDS,
    MODEL_POINT,
    POINT,
    field_problem,
    is_flag,
    is_number,
    is_text,
    is_whole,
    list_of,
    map_of,
    missing,
    optional,
    row_of,
)
from vgem.eval.metrics import (
    DEFAULT_MASK_THRESHOLD,
    PointingGame,
    SpatialAP,
    WWWSpatial,
    box_arithmetic,
    heatmap_box_iou,
    pointing_hit,
    scale_box_to_model,
    www_iou,
)
from vgem.eval.paper import match_paper_row
from vgem.eval.run_log import current_records, sample_fingerprint, video_fingerprint
from vgem.eval.samples import Sample, VideoSample, group_by_video
from vgem.eval.temporal_metrics import (
    SEGMENT_MAP_THRESHOLDS,
    VIDEO_MAP_THRESHOLDS,
    Detection,
    RatioAverager,
    TruthTube,
    iou_pointing_counts,
    mean_average_precision,
    overlap_counts,
    seconds_in,
    temporal_iou,
    tube_iou,
)
from vgem.execution.units import (
    Emit,
    Line,
    SupportsGround,
    WorkUnit,
    error_reason,
    missing_video_reason,
)
from vgem.plain import utc_timestamp

if TYPE_CHECKING:
    import numpy as np

    from vgem.results import GroundedTime, GroundingResult
    from vgem.temporal import TemporalSettings
    from vgem.video import VideoInfo

TASKS = ("spatial", "spatiotemporal", "temporal")
METRICS = ("pointing", "map", "www")  # the spatial task's, in their canonical order
DEFAULT_METRICS = ("pointing", "map")  # www, the GroundingYouTube authors' measure, on request
VIDEO_TASK_METRICS = {
    "spatiotemporal": ("iou_pointing", "video_map"),
    "temporal": ("iou", "iod", "segment_map"),
}
GROUNDING_FPS = 1.0  # whole videos: the annotation's rate, one grounded time per second


@dataclass(frozen=True)
class RunContext:
    """What every line of a run needs besides its sample."""

    root: Path
    settings_hash: str
    source_fps: float = 1.0


@dataclass(frozen=True)
class FigureColumn:
    """A column of a task's table: its title and the rate it shows from a dataset's figures."""

    title: str
    rate: Callable[[Mapping[str, Any]], float | None]


class Stopwatch:
    """Seconds since the last lap; time spent in :meth:`paused` is not counted."""

    def __init__(self) -> None:
        self._mark = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        seconds, self._mark = now - self._mark, now
        return seconds

    @contextmanager
    def paused(self) -> Iterator[None]:
        elapsed = time.perf_counter() - self._mark
        try:
            yield
        finally:
            self._mark = time.perf_counter() - elapsed


class Tally(ABC):
    """Figures of one dataset (or of the whole run), sample by sample.

    ``pending`` counts selected samples with no line yet (an interrupted run);
    they are in no rate and no error count.
    """

    def __init__(self) -> None:
        self.selected = self.pending = self.errors = self.scored = 0

    def add(self, sample: Any, record: Mapping[str, Any] | None) -> None:
        self.selected += 1
        if record is None:
            self.pending += 1
        elif "error" in record:
            self.errors += 1
            self.add_error(sample)
        else:
            self.scored += 1
            self.add_scored(sample, record)

    def add_error(self, sample: Any) -> None:  # noqa: B027 (most figures ignore errors)
        """An unrunnable sample, where the figures keep count of them."""

    @abstractmethod
    def add_scored(self, sample: Any, record: Mapping[str, Any]) -> None: ...

    @abstractmethod
    def figures(self) -> dict[str, Any]: ...

    def to_dict(self) -> dict[str, Any]:
        counts = {
            "selected": self.selected,
            "scored": self.scored,
            "errors": self.errors,
            "pending": self.pending,
        }
        return {"counts": counts, **self.figures()}


# --------------------------------------------------------------------------- the common part


class Task(ABC):
    """What differs between evaluation tasks; the common pieces are written here once."""

    name: str
    whole_video: bool
    unit_name: str  # what a sample is called in tables and counts: samples, videos

    @property
    @abstractmethod
    def metrics(self) -> tuple[str, ...]:
        """The metrics this task computes, in their canonical order."""

    # ----------------------------------------------------------------- identity

    def identity(self) -> dict[str, Any]:
        """What this task adds to the run's identity (and so to its settings hash)."""
        return {}

    def run_label(self, label: str) -> str:
        """The name runs of this task are filed under (their default run directory)."""
        return label

    # ----------------------------------------------------------------- lines

    @abstractmethod
    def fingerprint(self, sample: Any) -> str:
        """Changes whenever anything about the sample's annotation changes."""

    @abstractmethod
    def head_fields(self, sample: Any) -> dict[str, Any]:
        """The fields of every line of a sample after its id, settings and fingerprint."""

    def record_head(self, sample: Any, context: RunContext) -> Line:
        return {
            "id": sample.id,
            "settings": context.settings_hash,
            "sample": self.fingerprint(sample),
            **self.head_fields(sample),
        }

    def finish_record(self, line: Line, seconds: float) -> Line:
        line.update(seconds=round(seconds, 4), at=utc_timestamp())
        return line

    def error_record(self, sample: Any, context: RunContext, reason: str, seconds: float) -> Line:
        """The line of a sample that could not be run."""
        line = self.record_head(sample, context)
        line["error"] = reason
        return self.finish_record(line, seconds)

    # ----------------------------------------------------------------- resuming

    def current_records(
        self, records: Iterable[Mapping[str, Any]], samples: Iterable[Any], settings_hash: str
    ) -> dict[str, Line]:
        """The latest line of each selected sample made with these settings for it."""
        return current_records(records, samples, settings_hash, fingerprint_of=self.fingerprint)

    def is_finished(self, record: Mapping[str, Any] | None, *, retry_errors: bool = False) -> bool:
        """Whether a sample's line means it must not be grounded again.

        An error is final unless errors are retried (the video may have been
        fixed since); otherwise the line must hold what this task scores.
        """
        if record is None:
            return False
        if "error" in record:
            return not retry_errors
        return self.is_complete(record)

    @abstractmethod
    def is_complete(self, record: Mapping[str, Any]) -> bool: ...

    def line_problem(self, line: Mapping[str, Any]) -> str | None:
        """Why a line read back from the predictions file cannot be used (None: it can).

        A line a person edited into wrong types is damaged: the run counts it
        and grounds its sample again (see :mod:`vgem.eval.lines`).
        """
        problem = field_problem(line, HEAD_FIELDS)
        if problem or "error" in line:
            return problem
        return self.scored_problem(line)

    def scored_problem(self, line: Mapping[str, Any]) -> str | None:
        """Why a scored line's own fields cannot be used (None: they can)."""
        return None

    # ----------------------------------------------------------------- grounding

    def units(
        self, samples: Sequence[Any], known_errors: Mapping[str, str] | None = None
    ) -> list[WorkUnit]:
        """The work of a run: one unit per video, videos in order of first appearance."""
        known_errors = known_errors or {}
        return [
            WorkUnit(
                video,
                tuple(group),
                {s.id: known_errors[s.id] for s in group if s.id in known_errors},
            )
            for video, group in group_by_video(samples).items()
        ]

    def ground_unit(
        self,
        unit: WorkUnit,
        context: RunContext,
        grounder: Callable[[], SupportsGround],
        emit: Emit,
    ) -> None:
        """One probe and the task's grounding of a video; one line per sample, as it comes.

        ``grounder`` is called only once a probed video needs grounding, so a
        run with only missing videos loads no model; the loading is not
        counted in any line's ``seconds``.
        """
        from vgem.video import probe_video

        for sample in unit.samples:
            if sample.id in unit.known_errors:
                emit(self.error_record(sample, context, unit.known_errors[sample.id], 0.0))
        pending = [sample for sample in unit.samples if sample.id not in unit.known_errors]
        if not pending:
            return
        stopwatch = Stopwatch()
        if not (context.root / unit.video).exists():
            # one rule, whether the samples come from a dataset or a manifest: an error
            # line, counted, and grounded again with retry_errors once the video is there
            reason = missing_video_reason(unit.video, context.root)
            for sample in pending:
                emit(self.error_record(sample, context, reason, 0.0))
            return
        try:
            info = probe_video(context.root / unit.video, source_fps=context.source_fps)
        except (InputError, OSError) as error:
            seconds = stopwatch.lap()
            for sample in pending:
                emit(self.error_record(sample, context, error_reason(error), seconds))
            return
        done: set[str] = set()

        def emit_done(line: Line) -> None:
            done.add(line["id"])
            emit(line)

        plan = self.plan(info, pending, context, emit_done)
        if plan is None:
            return
        with stopwatch.paused():
            model = grounder()
        try:
            self.ground(model, info, plan, context, emit_done, stopwatch)
        except (InputError, OSError) as error:
            seconds = stopwatch.lap()
            for sample in pending:
                if sample.id not in done:
                    emit(self.error_record(sample, context, error_reason(error), seconds))

    def plan(self, info: VideoInfo, samples: list[Any], context: RunContext, emit: Emit) -> Any:
        """What to ground in a probed video (None: nothing), emitting the samples it cannot run."""
        return samples

    @abstractmethod
    def ground(
        self,
        model: SupportsGround,
        info: VideoInfo,
        plan: Any,
        context: RunContext,
        emit: Emit,
        stopwatch: Stopwatch,
    ) -> None: ...

    # ----------------------------------------------------------------- scoring

    @abstractmethod
    def new_tally(self) -> Tally: ...

    def score(
        self,
        samples: Sequence[Any],
        records_by_id: Mapping[str, Mapping[str, Any]],
        default_dataset: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Overall figures and figures per dataset (a sample's ``dataset``, else the run's)."""
        overall = self.new_tally()
        per_dataset: dict[str, Tally] = {}
        for sample in samples:
            record = records_by_id.get(sample.id)
            overall.add(sample, record)
            name = sample.dataset or default_dataset or self.unit_name
            per_dataset.setdefault(name, self.new_tally()).add(sample, record)
        return overall.to_dict(), {name: tally.to_dict() for name, tally in per_dataset.items()}

    def error_fields(self, sample: Any) -> dict[str, Any]:
        """What the errors list of results.json says of a sample besides id, video, error."""
        return {}

    def document_part(
        self, backbone: str, settings: Mapping[str, Any], datasets: Iterable[str]
    ) -> dict[str, Any]:
        """This task's own keys of results.json."""
        return {}

    # ----------------------------------------------------------------- table

    @abstractmethod
    def table_title(self, document: Mapping[str, Any]) -> str: ...

    @abstractmethod
    def figure_columns(self, figures: Sequence[Mapping[str, Any]]) -> list[FigureColumn]:
        """The columns after the counts, given the figures of every row."""

    compares_with_paper = False


# --------------------------------------------------------------------------- spatial


def _unit_interval(value: Any) -> bool:
    return is_number(value) and 0 <= value <= 1


#: What the fields of a spatial line must be when present.
SPATIAL_FIELDS = {
    "class": is_text,
    "query": is_text,
    "time": is_number,
    "frame": is_whole,
    "input_size": is_whole,
    "model_point": MODEL_POINT,
    "model_boxes": list_of(BOX),
    "predicted_box": row_of(is_whole, is_whole, is_whole, is_whole),
    "hit": is_flag,
    "point": POINT,
    "prompt_points": map_of(POINT),
    "iou": _unit_interval,
    "www_iou": optional(_unit_interval),
}


class SpatialTally(Tally):
    def __init__(
        self,
        with_map: bool,
        mask_threshold: float = DEFAULT_MASK_THRESHOLD,
        with_www: bool = False,
    ) -> None:
        super().__init__()
        self.pointing = PointingGame()
        self.spatial = SpatialAP(mask_threshold=mask_threshold) if with_map else None
        self.www = WWWSpatial() if with_www else None

    def add_error(self, sample: Sample) -> None:
        self.pointing.add_error(sample.class_key)

    def add_scored(self, sample: Sample, record: Mapping[str, Any]) -> None:
        self.pointing.add(sample.class_key, bool(record["hit"]))
        if self.spatial is not None and "iou" in record:
            self.spatial.add_iou(sample.class_key, float(record["iou"]))
        if self.www is not None and "www_iou" in record:
            iou = record["www_iou"]
            self.www.add_iou(None if iou is None else float(iou))

    def figures(self) -> dict[str, Any]:
        figures = {
            "pointing": self.pointing.result().to_dict(),
            "map": None if self.spatial is None else self.spatial.result().to_dict(),
        }
        if self.www is not None:
            figures["www"] = self.www.result().to_dict()
        return figures


@dataclass(frozen=True)
class SpatialTask(Task):
    """One frame per sample: the pointing game, (with ``map``) the VideoGEM authors'
    spatial mAP with its ``mask_threshold`` (0.5; their entry point used 0.4), and
    (with ``www``) the GroundingYouTube authors' own spatial measure
    (:class:`vgem.eval.metrics.WWWSpatial`)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS
    mask_threshold: float = DEFAULT_MASK_THRESHOLD
    name = "spatial"
    whole_video = False
    unit_name = "samples"
    compares_with_paper = True

    def __post_init__(self) -> None:
        if not 0 <= self.mask_threshold < 1:
            raise SettingsError(
                f"`mask_threshold` must lie in [0, 1), not {self.mask_threshold!r}.",
                settings=("mask_threshold",),
            )

    def identity(self) -> dict[str, Any]:
        # the IoU of a line depends on the threshold; the default keeps older hashes
        if self.mask_threshold == DEFAULT_MASK_THRESHOLD:
            return {}
        return {"mask_threshold": self.mask_threshold}

    def fingerprint(self, sample: Sample) -> str:
        return sample_fingerprint(sample)

    def head_fields(self, sample: Sample) -> dict[str, Any]:
        return {"class": sample.class_key, "video": sample.video, "query": sample.query}

    def scored_problem(self, line: Mapping[str, Any]) -> str | None:
        problem = field_problem(line, SPATIAL_FIELDS)
        if problem is None and "hit" in line:
            problem = missing(line, ("time", "model_point", "model_boxes"))
        return problem

    def is_complete(self, record: Mapping[str, Any]) -> bool:
        # a line from a run without map (or www) lacks the IoU that a run with it needs
        return (
            "hit" in record
            and ("map" not in self.metrics or "iou" in record)
            and ("www" not in self.metrics or "www_iou" in record)
        )

    def plan(
        self, info: VideoInfo, samples: list[Sample], context: RunContext, emit: Emit
    ) -> tuple[list[str], dict[float, list[Sample]]] | None:
        """The distinct queries, and the samples to ground at each time (in time order);
        samples past the video's end are errors."""
        at_time: dict[float, list[Sample]] = {}
        runnable = []
        for sample in samples:
            try:
                at_time.setdefault(target_time(info, sample), []).append(sample)
            except InputError as error:
                emit(self.error_record(sample, context, str(error), 0.0))
            else:
                runnable.append(sample)
        if not runnable:
            return None
        return list(dict.fromkeys(s.query for s in runnable)), dict(sorted(at_time.items()))

    def ground(
        self,
        model: SupportsGround,
        info: VideoInfo,
        plan: tuple[list[str], dict[float, list[Sample]]],
        context: RunContext,
        emit: Emit,
        stopwatch: Stopwatch,
    ) -> None:
        """One call for every distinct query and time; a sample's ``seconds`` is its share
        of the time since the previous grounded time (the probe included)."""
        queries, at_time = plan
        times = list(at_time)
        query_position = {query: position for position, query in enumerate(queries)}

        def grounded(position: int, entries: list[GroundedTime], similarity: np.ndarray) -> None:
            waiting = at_time[times[position]]
            seconds = stopwatch.lap() / len(waiting)
            for sample in waiting:
                query = query_position[sample.query]
                line = self.prediction_record(
                    sample, context, entries[query], similarity[query], info, model.input_size
                )
                emit(self.finish_record(line, seconds))

        model.ground(info, queries, at=times, on_grounded=grounded)

    def prediction_record(
        self,
        sample: Sample,
        context: RunContext,
        grounded: GroundedTime,
        similarity: np.ndarray,
        info: VideoInfo,
        input_size: int,
    ) -> Line:
        """The line of a scored sample (without its timing), from its grounded entry and
        raw maps ``[3, h, w]``."""
        from vgem.eval.gallery import pack_map
        from vgem.prompts import PROMPT_ROLES

        hit, model_boxes = score_point(
            grounded.model_point, sample, (info.width, info.height), input_size
        )
        line = self.record_head(sample, context)
        line.update(
            time=round(float(grounded.time), 6),
            frame=int(grounded.frame),
            input_size=input_size,
            model_point=[int(value) for value in grounded.model_point],
            model_boxes=[list(box) for box in model_boxes],
            hit=bool(hit),
            point=[round(float(value), 3) for value in grounded.point],
            prompt_points={
                role: [round(float(value), 3) for value in point]
                for role, point in grounded.prompt_points.items()
            },
        )
        if grounded.model_box is not None:  # the region around the point, for the gallery
            line["predicted_box"] = [int(value) for value in grounded.model_box]
        action_map = similarity[PROMPT_ROLES.index("action")]
        line["action_map"] = pack_map(action_map)  # for the report's gallery, ~300 bytes
        if "map" in self.metrics:
            iou = action_heatmap_iou(action_map, model_boxes, input_size, self.mask_threshold)
            line["iou"] = round(iou, 6)
        if "www" in self.metrics:
            frame_iou = www_frame_iou(action_map, sample, (info.width, info.height))
            line["www_iou"] = None if frame_iou is None else round(frame_iou, 6)
        return line

    def new_tally(self) -> Tally:
        return SpatialTally("map" in self.metrics, self.mask_threshold, "www" in self.metrics)

    def error_fields(self, sample: Sample) -> dict[str, Any]:
        return {"class": sample.class_key}

    def document_part(
        self, backbone: str, settings: Mapping[str, Any], datasets: Iterable[str]
    ) -> dict[str, Any]:
        match = match_paper_row(backbone, settings)
        return {
            "mask_threshold": self.mask_threshold,
            "paper": {
                "row": match.row,
                "reason": match.reason,
                "accuracy": {name: match.accuracy(name) for name in datasets},
            },
        }

    def table_title(self, document: Mapping[str, Any]) -> str:
        """The paper's row where the run reproduces one; else the method its settings
        are (VideoGEM, GEM) or "custom settings"; then the backbone and settings hash."""
        from vgem.eval.paper import PAPER_METHODS

        settings = document.get("settings") or {}
        configuration = (str(settings.get("weighting")), str(settings.get("prompts")))
        method = (document.get("paper") or {}).get("row") or PAPER_METHODS.get(
            configuration, "custom settings"
        )
        return f"{method} · {document['backbone']} · settings {document['settings_hash']}"

    def figure_columns(self, figures: Sequence[Mapping[str, Any]]) -> list[FigureColumn]:
        columns = [
            FigureColumn("accuracy %", lambda scores: scores["pointing"]["accuracy"]),
            FigureColumn("class-mean %", lambda scores: scores["pointing"]["class_mean_accuracy"]),
        ]
        if any(scores.get("map") for scores in figures):
            columns.append(
                FigureColumn("mAP %", lambda scores: (scores.get("map") or {}).get("mean_ap"))
            )
        if any(scores.get("www") for scores in figures):
            columns.append(
                FigureColumn("WWW mAP %", lambda scores: (scores.get("www") or {}).get("map"))
            )
        return columns


def target_time(info: VideoInfo, sample: Sample) -> float:
    """The time (seconds) to ground a sample at; ``frame`` counts in the video's own rate."""
    from vgem.video import time_of_frame

    if sample.frame is not None:
        if sample.frame >= info.frame_count:
            raise InputError(
                f"frame {sample.frame} is past the last frame ({info.frame_count - 1}) "
                f"of {sample.video}"
            )
        return time_of_frame(info, sample.frame)
    seconds = float(sample.time or 0.0)  # a Sample has exactly one of time and frame
    if seconds > info.duration:
        raise InputError(
            f"time {seconds:g} s is past the end of {sample.video} ({info.duration:.3f} s)"
        )
    return seconds


def score_point(
    model_point: Sequence[int], sample: Sample, video_size: tuple[int, int], input_size: int
) -> tuple[bool, list[tuple[int, int, int, int]]]:
    """Whether the model-space point hits, and the boxes it was tested against.

    Boxes are in pixels of ``sample.frame_size`` when given, else of the
    video's frames; they are scaled to the S x S input and rounded, and the
    point is tested there, borders included, as the authors did.
    """
    frame_size = sample.frame_size or video_size
    arithmetic = sample.box_dtype or box_arithmetic(sample.dataset)
    model_boxes = [
        scale_box_to_model(box, frame_size, input_size, arithmetic=arithmetic)
        for box in sample.boxes
    ]
    return pointing_hit(model_point, model_boxes), model_boxes


def action_heatmap_iou(
    similarity_map: np.ndarray,
    model_boxes: Sequence[Sequence[int]],
    input_size: int,
    mask_threshold: float = DEFAULT_MASK_THRESHOLD,
) -> float:
    """IoU of the action prompt's heatmap (upsampled to S x S, mask > threshold) with
    the boxes."""
    import torch

    from vgem.heatmaps import min_max_normalize, upsample

    heatmap = min_max_normalize(upsample(torch.from_numpy(similarity_map), input_size))
    return heatmap_box_iou(heatmap.numpy(), model_boxes, mask_threshold)


def www_frame_iou(
    similarity_map: np.ndarray, sample: Sample, video_size: tuple[int, int]
) -> float | None:
    """The GroundingYouTube authors' IoU for a sample: the action prompt's heatmap
    (min-max normalized, as vgem shows it) upsampled bilinearly to the video's own
    frame, against the sample's first box in that frame's pixels (scaled from
    ``frame_size`` when the sample has one); see :func:`vgem.eval.metrics.www_iou`.
    None when the box paints nothing."""
    import torch
    import torch.nn.functional as F

    width, height = (int(size) for size in video_size)
    maps = torch.from_numpy(similarity_map).float()[None, None]
    resized = F.interpolate(maps, size=(height, width), mode="bilinear", align_corners=False)
    low, high = resized.min(), resized.max()
    heatmap = (resized - low) / (high - low) if high > low else torch.zeros_like(resized)
    box = sample.boxes[0]
    if sample.frame_size is not None:
        x_scale, y_scale = width / sample.frame_size[0], height / sample.frame_size[1]
        box = (box[0] * x_scale, box[1] * y_scale, box[2] * x_scale, box[3] * y_scale)
    return www_iou(heatmap[0, 0].numpy(), box)


# --------------------------------------------------------------------------- whole videos


@dataclass
class VideoTruth:
    """One scored video in the shape the metrics read: per step, sets of seconds."""

    predicted: dict[str, set[int]]
    truth: dict[str, set[int]]
    boxed: dict[str, set[int]]
    verdicts: dict[str, dict[int, bool]]

    @classmethod
    def of(cls, sample: VideoSample, record: Mapping[str, Any]) -> VideoTruth:
        steps = list(sample.steps)
        names = list(record.get("queries", steps))
        predicted: dict[str, set[int]] = {step: set() for step in steps}
        for query, start, end, _ in record["segments"]:
            predicted.setdefault(names[query], set()).update(seconds_in(start, end))
        truth: dict[str, set[int]] = {step: set() for step in steps}
        for segment in sample.segments:
            truth[segment.step].update(seconds_in(segment.start, segment.end))
        boxed: dict[str, set[int]] = {step: set() for step in steps}
        for box in sample.boxes:
            boxed[box.step].add(box.second)
        hit_at: dict[str, dict[int, bool]] = {step: {} for step in steps}
        for second, query, _x, _y, hit in record["pointing"]:
            hit_at.setdefault(names[query], {})[int(second)] = bool(hit)
        # a boxed second that was never grounded (past the video's end) is a miss
        verdicts = {
            step: {second: hit_at[step].get(second, False) for second in boxed[step]}
            for step in steps
        }
        return cls(predicted, truth, boxed, verdicts)


class VideoTally(Tally):
    """Figures of one dataset (or of the whole run) for one whole-video task."""

    def __init__(self, task: str) -> None:
        super().__init__()
        self.task = task
        self.iou_pointing = RatioAverager()
        self.iou = RatioAverager()
        self.iod = RatioAverager()
        self.detections: list[Detection] = []
        self.tubes: dict[tuple[str, str], list[TruthTube]] = {}
        self.intervals: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def add_scored(self, sample: VideoSample, record: Mapping[str, Any]) -> None:
        video = VideoTruth.of(sample, record)
        names = list(record.get("queries", sample.steps))
        for query, start, end, score in record["segments"]:
            self.detections.append(Detection(sample.id, names[query], float(score), (start, end)))
        for segment in sample.segments:
            key = (sample.id, segment.step)
            judged = video.verdicts[segment.step]
            self.tubes.setdefault(key, []).append(TruthTube(segment.start, segment.end, judged))
            self.intervals.setdefault(key, []).append((segment.start, segment.end))
        if self.task == "spatiotemporal":
            self.iou_pointing.add_video(
                {
                    step: iou_pointing_counts(
                        video.predicted[step],
                        video.boxed[step],
                        {second for second, hit in video.verdicts[step].items() if hit},
                        ignored=video.truth[step] - video.boxed[step],
                    )
                    for step in sample.steps
                }
            )
        else:
            counts = {
                step: overlap_counts(video.predicted[step], video.truth[step])
                for step in sample.steps
            }
            self.iou.add_video({step: (inter, union) for step, (inter, union, _) in counts.items()})
            self.iod.add_video({step: (inter, pred) for step, (inter, _, pred) in counts.items()})

    def figures(self) -> dict[str, Any]:
        if self.task == "spatiotemporal":
            return {
                "iou_pointing": self.iou_pointing.result().to_dict(),
                "video_map": mean_average_precision(
                    self.detections, self.tubes, tube_iou, VIDEO_MAP_THRESHOLDS
                ).to_dict(),
            }
        return {
            "iou": self.iou.result().to_dict(),
            "iod": self.iod.result().to_dict(),
            "segment_map": mean_average_precision(
                self.detections, self.intervals, temporal_iou, SEGMENT_MAP_THRESHOLDS
            ).to_dict(),
        }


#: What the fields of a whole-video line must be when present.
VIDEO_FIELDS = {
    "task": is_text,
    "queries": list_of(is_text),
    "times": is_whole,
    "input_size": is_whole,
    "threshold": is_number,
    "segments": list_of(row_of(is_whole, is_number, is_number, is_number)),
    "pointing": list_of(row_of(is_whole, is_whole, is_whole, is_whole, is_flag)),
    "truth": list_of(row_of(is_whole, is_number, is_number)),
}

# Per task: the frame-wise columns (title, figure) and the detection mAP figure.
VIDEO_TASK_FIGURES: dict[str, tuple[tuple[tuple[str, str], ...], str]] = {
    "spatiotemporal": ((("IoU+Pointing %", "iou_pointing"),), "video_map"),
    "temporal": ((("IoU %", "iou"), ("IoD %", "iod")), "segment_map"),
}


@dataclass(frozen=True)
class WholeVideoTask(Task):
    """When (``temporal``), or when and where (``spatiotemporal``), each step of a video
    happens; ``temporal`` holds the settings that turn grounded times into segments."""

    name: str = "spatiotemporal"
    temporal: TemporalSettings | None = None
    whole_video = True
    unit_name = "videos"

    def __post_init__(self) -> None:
        if self.name not in VIDEO_TASK_METRICS:
            raise ValueError(f"unknown whole-video task {self.name!r}")
        if self.temporal is None:
            from vgem.temporal import TemporalSettings

            object.__setattr__(self, "temporal", TemporalSettings())

    @property
    def metrics(self) -> tuple[str, ...]:
        return VIDEO_TASK_METRICS[self.name]

    def identity(self) -> dict[str, Any]:
        return {"task": self.name, "temporal": self._temporal_dict()}

    def _temporal_dict(self) -> dict[str, Any]:
        assert self.temporal is not None  # __post_init__ fills it when not given
        return asdict(self.temporal)

    def run_label(self, label: str) -> str:
        return f"{label}-{self.name}"  # its own predictions and run directory

    def fingerprint(self, sample: VideoSample) -> str:
        return video_fingerprint(sample)

    def head_fields(self, sample: VideoSample) -> dict[str, Any]:
        return {"task": self.name, "video": sample.video}

    def is_complete(self, record: Mapping[str, Any]) -> bool:
        return "segments" in record and "pointing" in record

    def scored_problem(self, line: Mapping[str, Any]) -> str | None:
        problem = field_problem(line, VIDEO_FIELDS)
        if problem is not None or not ("segments" in line or "pointing" in line):
            return problem
        queries = line.get("queries")
        if queries is None:
            return "queries is missing"
        indexed = [row[0] for row in line.get("segments", []) + line.get("truth", [])]
        indexed += [row[1] for row in line.get("pointing", [])]
        if any(not 0 <= index < len(queries) for index in indexed):
            return f"a query index is outside the {len(queries)} queries"
        return None

    def ground(
        self,
        model: SupportsGround,
        info: VideoInfo,
        plan: list[VideoSample],
        context: RunContext,
        emit: Emit,
        stopwatch: Stopwatch,
    ) -> None:
        """One call per video sample over the whole video at 1 fps."""
        for sample in plan:
            result = model.ground(
                info, list(sample.steps), fps=GROUNDING_FPS, temporal=self.temporal
            )
            line = self.video_record(sample, context, result)
            emit(self.finish_record(line, stopwatch.lap()))

    def video_record(
        self, sample: VideoSample, context: RunContext, result: GroundingResult
    ) -> Line:
        """The line of a grounded video (without its timing): its segments, and the point
        at each boxed second.

        ``pointing`` holds ``[second, step index, x, y, hit]`` for every boxed
        second that was grounded, (x, y) being the model-space point of that
        second's step; boxes are scaled to the S x S input and the point tested
        there, borders included, exactly as in the spatial task.
        """
        timeline = result.timeline
        if timeline is None:
            raise ValueError("a whole-video line needs a grounding made with temporal settings")
        input_size = int(result.input_size)
        frame_size = sample.frame_size or (result.video.width, result.video.height)
        position_of_second = {round(float(t)): i for i, t in enumerate(result.times)}
        step_index = {step: index for index, step in enumerate(sample.steps)}
        boxes_at: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
        for truth in sample.boxes:
            key = (truth.second, step_index[truth.step])
            model_box = scale_box_to_model(truth.box, frame_size, input_size)
            boxes_at.setdefault(key, []).append(model_box)
        pointing = []
        for (second, query), model_boxes in boxes_at.items():
            position = position_of_second.get(second)
            if position is None:
                continue  # past the end of the decoded video: counted as a miss
            x, y = (int(value) for value in result.queries[query].times[position].model_point)
            pointing.append([second, query, x, y, bool(pointing_hit((x, y), model_boxes))])
        line = self.record_head(sample, context)
        line.update(
            queries=list(sample.steps),
            times=len(result.times),
            input_size=input_size,
            threshold=round(float(timeline.threshold), 6),
            segments=[
                [
                    segment.query_index,
                    round(segment.start, 6),
                    round(segment.end, 6),
                    round(segment.score, 6),
                ]
                for segment in timeline.segments
            ],
            pointing=sorted(pointing),
            # the ground truth beside the prediction, for the report's timelines
            truth=[
                [step_index[segment.step], round(segment.start, 6), round(segment.end, 6)]
                for segment in sample.segments
            ],
        )
        return line

    def new_tally(self) -> Tally:
        return VideoTally(self.name)

    def document_part(
        self, backbone: str, settings: Mapping[str, Any], datasets: Iterable[str]
    ) -> dict[str, Any]:
        return {"task": self.name, "temporal": self._temporal_dict()}

    def table_title(self, document: Mapping[str, Any]) -> str:
        return f"{self.name} · {document['backbone']} · settings {document['settings_hash']}"

    def figure_columns(self, figures: Sequence[Mapping[str, Any]]) -> list[FigureColumn]:
        ratios, map_name = VIDEO_TASK_FIGURES[self.name]

        def video_mean(name: str) -> Callable[[Mapping[str, Any]], float | None]:
            return lambda scores: scores[name]["video_mean"]

        def map_at(key: str) -> Callable[[Mapping[str, Any]], float | None]:
            return lambda scores: scores[map_name]["map"].get(key)

        columns = [FigureColumn(title, video_mean(name)) for title, name in ratios]
        thresholds = list(figures[0][map_name]["map"]) if figures else []
        columns += [FigureColumn(f"mAP@{key} %", map_at(key)) for key in thresholds]
        columns.append(FigureColumn("mAP avg %", lambda scores: scores[map_name]["mean"]))
        return columns


# --------------------------------------------------------------------------- choosing a task


def make_task(
    task: str | Task = "spatial",
    *,
    metrics: Sequence[str] | None = None,
    temporal: TemporalSettings | None = None,
    mask_threshold: float | None = None,
) -> Task:
    """The task object for a task name, refusing settings that do not apply to it.

    ``mask_threshold`` (spatial task, ``map``): where the normalized heatmap is
    cut, 0.5 by default (the authors' ``spatial_eval``); 0.4 reproduces their
    released entry point.
    """
    if isinstance(task, Task):
        if metrics is not None or temporal is not None or mask_threshold is not None:
            raise SettingsError(
                "`metrics`, `temporal` and `mask_threshold` are part of a task object; "
                "give them to its constructor.",
                settings=("metrics", "temporal", "mask_threshold"),
            )
        return task
    name = str(task).strip().lower()
    if name not in TASKS:
        raise SettingsError(f"`task` takes {', '.join(TASKS)}, not {task!r}.", settings=("task",))
    if name == "spatial":
        if temporal is not None:
            raise SettingsError(
                "`temporal` settings apply to the whole-video tasks (spatiotemporal, temporal), "
                "not to `task` spatial.",
                settings=("temporal", "task"),
            )
        threshold = DEFAULT_MASK_THRESHOLD if mask_threshold is None else float(mask_threshold)
        return SpatialTask(spatial_metrics(metrics), threshold)
    if metrics is not None:
        raise SettingsError(
            f"`metrics` chooses spatial figures; `task` {name} reports all of its own.",
            settings=("metrics", "task"),
        )
    if mask_threshold is not None:
        raise SettingsError(
            f"`mask_threshold` applies to `task` spatial (spatial mAP), not to {name}.",
            settings=("mask_threshold", "task"),
        )
    if temporal is not None:
        from vgem import plugins

        plugins.load("vgem.temporal", temporal.scorer)  # an unknown scorer fails before any work
    return WholeVideoTask(name, temporal)


def spatial_metrics(metrics: Sequence[str] | None) -> tuple[str, ...]:
    """The chosen spatial metrics in their canonical order (pointing and map when None)."""
    if metrics is None:
        return DEFAULT_METRICS
    chosen = {name.strip().lower() for name in metrics if name.strip()}
    unknown = sorted(chosen - set(METRICS))
    if unknown or not chosen:
        given = ", ".join(metrics)
        raise SettingsError(
            f"`metrics` takes {', '.join(METRICS[:-1])} and/or {METRICS[-1]}, not {given!r}.",
            settings=("metrics",),
        )
    return tuple(name for name in METRICS if name in chosen)


def task_of_document(document: Mapping[str, Any]) -> Task:
    """The task a results.json document was made by (a spatial one has no ``task`` key)."""
    name = document.get("task") or "spatial"
    if name == "spatial":
        threshold = document.get("mask_threshold", DEFAULT_MASK_THRESHOLD)
        return SpatialTask(tuple(document.get("metrics") or DEFAULT_METRICS), float(threshold))
    from vgem.temporal import TemporalSettings

    return WholeVideoTask(name, TemporalSettings(**(document.get("temporal") or {})))
