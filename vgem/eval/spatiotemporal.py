"""Whole-video evaluation: when (and where) each step of an untrimmed video happens.

``vgem eval --task spatiotemporal|temporal`` follows the GroundingYouTube
protocol: each video is grounded once, at 1 fps, with the pool of its own
step names as the queries and ``temporal=TemporalSettings(...)``, so vgem
itself decides when each step happens (segments) and where (the point of the
segment's query at each of its seconds). Nothing is told about the ground
truth but the names of the steps.

A run is kept exactly like a spatial one (vgem.eval.runner): one line per
video in the run's ``predictions.jsonl``, on disk before the next video
starts, the same lock, resume and ``--retry-errors`` rules, with the runner's
own :class:`~vgem.eval.run_log.PredictionLog`. A line holds the predicted
segments and, for every boxed ground-truth second, the point of that second's
step and whether it lies in the box; every figure is computed from these lines
and the annotations (vgem.eval.temporal_metrics), so a resumed run reports
what an uninterrupted one does.

Videos that cannot be run (missing, unreadable) get an error line; they are
counted and left out of every figure, as unrunnable samples are in the
spatial task.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vgem.errors import InputError
from vgem.eval.manifest import Box, _box, _frame_size, _require_text
from vgem.eval.metrics import pointing_hit, scale_box_to_model
from vgem.eval.run_log import PredictionLog, current_records, fingerprint
from vgem.eval.runner import RunOutcome, Selection, _message, _now
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

if TYPE_CHECKING:
    from vgem.eval.report import RunDescription
    from vgem.results import GroundingResult
    from vgem.temporal import TemporalSettings
    from vgem.video import VideoInfo

VIDEO_TASKS = ("spatiotemporal", "temporal")
TASK_METRICS = {
    "spatiotemporal": ("iou_pointing", "video_map"),
    "temporal": ("iou", "iod", "segment_map"),
}
GROUNDING_FPS = 1.0  # the annotation's rate: one grounded time per annotated second


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class TruthSegment:
    """A step happening during ``[start, end)`` seconds (an annotated ``[first, last]``
    second range is ``[first, last + 1)``)."""

    step: str
    start: float
    end: float


@dataclass(frozen=True)
class TruthBox:
    """Where ``step`` happens at one annotated second: ``[x1, y1, x2, y2]`` in pixels
    of the video's frames (or of the sample's ``frame_size``)."""

    second: int
    step: str
    box: Box


@dataclass(frozen=True, kw_only=True)
class VideoSample:
    """One untrimmed video: its steps (the queries), when they happen, and boxes.

    Construction raises ``ValueError`` with a one-line reason when the sample
    cannot be evaluated; sequences are stored as tuples, so a sample is
    immutable and compares (and fingerprints) by value.
    """

    id: str
    video: str
    steps: tuple[str, ...]
    segments: tuple[TruthSegment, ...]
    boxes: tuple[TruthBox, ...] = ()
    dataset: str | None = None
    frame_size: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _require_text(self.id, "id")
        _require_text(self.video, "video")
        steps = tuple(self.steps)
        if not steps:
            raise ValueError("a video needs at least one step")
        for step in steps:
            _require_text(step, "step")
        if len(set(steps)) != len(steps):
            raise ValueError("the steps of a video must be distinct")
        object.__setattr__(self, "steps", steps)
        # times as floats and boxes as checked tuples: equal annotations fingerprint alike
        segments = tuple(TruthSegment(s.step, float(s.start), float(s.end)) for s in self.segments)
        object.__setattr__(self, "segments", segments)
        for segment in segments:
            if segment.step not in steps:
                raise ValueError(f"segment of unknown step {segment.step!r}")
            if not (math.isfinite(segment.start) and math.isfinite(segment.end)):
                raise ValueError(f"segment of {segment.step!r} has a non-finite time")
            if not 0 <= segment.start < segment.end:
                raise ValueError(
                    f"segment of {segment.step!r} must have 0 ≤ start < end, "
                    f"found [{segment.start:g}, {segment.end:g})"
                )
        boxes = []
        for truth in self.boxes:
            if truth.step not in steps:
                raise ValueError(f"box of unknown step {truth.step!r}")
            if isinstance(truth.second, bool) or not isinstance(truth.second, int):
                raise ValueError(f"box second must be a whole number, found {truth.second!r}")
            if truth.second < 0:
                raise ValueError(f"box second must not be negative, found {truth.second}")
            box = _box(truth.box, f"box at second {truth.second}")
            boxes.append(TruthBox(truth.second, truth.step, box))
        object.__setattr__(self, "boxes", tuple(boxes))
        if self.dataset is not None:
            _require_text(self.dataset, "dataset")
        if self.frame_size is not None:
            object.__setattr__(self, "frame_size", _frame_size(self.frame_size))

    def to_record(self) -> dict[str, Any]:
        """Plain JSON: what the sample's fingerprint covers."""
        record: dict[str, Any] = {
            "id": self.id,
            "video": self.video,
            "steps": list(self.steps),
            "segments": [[s.step, s.start, s.end] for s in self.segments],
            "boxes": [[b.second, b.step, list(b.box)] for b in self.boxes],
        }
        if self.dataset is not None:
            record["dataset"] = self.dataset
        if self.frame_size is not None:
            record["frame_size"] = list(self.frame_size)
        return record


def video_fingerprint(sample: VideoSample) -> str:
    """Changes whenever the video's annotation changes (a moved boundary, a new box)."""
    return fingerprint(sample.to_record())


def segments_from_boxes(boxes: Iterable[TruthBox]) -> list[TruthSegment]:
    """Runs of consecutive annotated seconds of one step, as segments.

    Used when a release has per-second boxes but no segment file: second k
    stands for [k, k + 1), so seconds 4, 5, 6 and 9 of a step give [4, 7) and
    [9, 10). A second missing inside a step splits it.
    """
    seconds: dict[str, set[int]] = {}
    for truth in boxes:
        seconds.setdefault(truth.step, set()).add(truth.second)
    segments = []
    for step, step_seconds in seconds.items():
        ordered = sorted(step_seconds)
        start = previous = ordered[0]
        for second in [*ordered[1:], None]:
            if second is not None and second == previous + 1:
                previous = second
                continue
            segments.append(TruthSegment(step, float(start), float(previous + 1)))
            if second is not None:
                start = previous = second
    return sorted(segments, key=lambda segment: (segment.start, segment.step))


# --------------------------------------------------------------------------- running


class SupportsVideoGround(Protocol):
    """What the runner needs of a grounder: :class:`vgem.grounder.Grounder` has it."""

    def ground(
        self, video: VideoInfo, queries: Sequence[str], *, fps: float, temporal: TemporalSettings
    ) -> GroundingResult: ...


@dataclass(frozen=True)
class VideoRunContext:
    """What every line of a whole-video run needs besides its video."""

    root: Path
    settings_hash: str
    temporal: TemporalSettings
    task: str = "spatiotemporal"
    source_fps: float = 1.0


def current_video_records(
    records: Iterable[Mapping[str, Any]], samples: Iterable[VideoSample], settings_hash: str
) -> dict[str, dict[str, Any]]:
    """The latest line of each selected video made with these settings for this annotation."""
    return current_records(records, samples, settings_hash, fingerprint_of=video_fingerprint)


def is_video_finished(record: Mapping[str, Any] | None, *, retry_errors: bool = False) -> bool:
    """Whether a video's line means it must not be grounded again (the spatial rule)."""
    if record is None:
        return False
    if "error" in record:
        return not retry_errors
    return "segments" in record and "pointing" in record


def evaluate_videos(
    selection: Selection,
    *,
    context: VideoRunContext,
    run_dir: str | os.PathLike[str],
    load_grounder: Callable[[], SupportsVideoGround],
    resume: bool = True,
    retry_errors: bool = False,
    on_resume: Callable[[list[dict[str, Any]]], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> RunOutcome:
    """Ground every selected video that is not finished yet; collect the lines to score.

    ``selection.samples`` holds :class:`VideoSample` objects (made by
    :func:`vgem.eval.runner.select_samples`, which only reads ids). The
    grounder is loaded when the first probed video needs it, so a finished
    run loads no model. Ctrl-C ends the sitting cleanly with ``interrupted``.
    """
    samples: list[VideoSample] = list(selection.samples)  # type: ignore[arg-type]
    log = PredictionLog(run_dir)
    loaded: list[SupportsVideoGround] = []
    written = 0

    def grounder() -> SupportsVideoGround:
        if not loaded:
            loaded.append(load_grounder())
        return loaded[0]

    with log.open(fresh=not resume):
        previous = current_video_records(log.records(), samples, context.settings_hash)
        finished = [
            line for line in previous.values() if is_video_finished(line, retry_errors=retry_errors)
        ]
        finished_ids = {line["id"] for line in finished}
        if on_resume is not None:
            on_resume(finished)
        interrupted = False
        try:
            for sample in samples:
                if sample.id in finished_ids:
                    continue
                known = selection.known_errors.get(sample.id)
                line = (
                    video_error_record(sample, context, known, 0.0)
                    if known is not None
                    else _ground_video(grounder, context, sample)
                )
                log.append(line)
                written += 1
                if on_record is not None:
                    on_record(line)
        except KeyboardInterrupt:
            interrupted = True
        records = current_video_records(log.records(), samples, context.settings_hash)
    return RunOutcome(records, len(finished_ids), written, interrupted)


def _ground_video(
    grounder: Callable[[], SupportsVideoGround], context: VideoRunContext, sample: VideoSample
) -> dict[str, Any]:
    """One video's line: one probe, one grounding call over the whole video at 1 fps."""
    from vgem.video import probe_video

    started = time.perf_counter()
    try:
        info = probe_video(context.root / sample.video, source_fps=context.source_fps)
    except (InputError, OSError) as error:
        return video_error_record(sample, context, _message(error), time.perf_counter() - started)
    probe_seconds = time.perf_counter() - started
    model = grounder()
    started = time.perf_counter()
    try:
        result = model.ground(
            info, list(sample.steps), fps=GROUNDING_FPS, temporal=context.temporal
        )
    except (InputError, OSError) as error:
        seconds = probe_seconds + time.perf_counter() - started
        return video_error_record(sample, context, _message(error), seconds)
    seconds = probe_seconds + time.perf_counter() - started
    return video_record(sample, context, result, seconds)


def video_record(
    sample: VideoSample, context: VideoRunContext, result: GroundingResult, seconds: float
) -> dict[str, Any]:
    """The line of a grounded video: its segments, and the point at each boxed second.

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
        boxes_at.setdefault(key, []).append(scale_box_to_model(truth.box, frame_size, input_size))
    pointing = []
    for (second, query), model_boxes in boxes_at.items():
        position = position_of_second.get(second)
        if position is None:
            continue  # past the end of the decoded video: counted as a miss
        x, y = (int(value) for value in result.queries[query].times[position].model_point)
        pointing.append([second, query, x, y, bool(pointing_hit((x, y), model_boxes))])
    line = _record_head(sample, context)
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
        seconds=round(seconds, 4),
        at=_now(),
    )
    return line


def video_error_record(
    sample: VideoSample, context: VideoRunContext, reason: str, seconds: float
) -> dict[str, Any]:
    """The line of a video that could not be run."""
    line = _record_head(sample, context)
    line.update(error=reason, seconds=round(seconds, 4), at=_now())
    return line


def _record_head(sample: VideoSample, context: VideoRunContext) -> dict[str, Any]:
    return {
        "id": sample.id,
        "settings": context.settings_hash,
        "sample": video_fingerprint(sample),
        "task": context.task,
        "video": sample.video,
    }


# --------------------------------------------------------------------------- scoring


@dataclass
class _VideoTruth:
    """One scored video in the shape the metrics read: per step, sets of seconds."""

    predicted: dict[str, set[int]]
    truth: dict[str, set[int]]
    boxed: dict[str, set[int]]
    verdicts: dict[str, dict[int, bool]]


def _video_truth(sample: VideoSample, record: Mapping[str, Any]) -> _VideoTruth:
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
        step: {second: hit_at[step].get(second, False) for second in boxed[step]} for step in steps
    }
    return _VideoTruth(predicted, truth, boxed, verdicts)


class _VideoTally:
    """Figures of one dataset (or of the whole run) for one task, video by video."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.selected = self.pending = self.errors = self.scored = 0
        self.iou_pointing = RatioAverager()
        self.iou = RatioAverager()
        self.iod = RatioAverager()
        self.detections: list[Detection] = []
        self.tubes: dict[tuple[str, str], list[TruthTube]] = {}
        self.intervals: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def add(self, sample: VideoSample, record: Mapping[str, Any] | None) -> None:
        self.selected += 1
        if record is None:
            self.pending += 1
            return
        if "error" in record:
            self.errors += 1
            return
        self.scored += 1
        video = _video_truth(sample, record)
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

    def to_dict(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "counts": {
                "selected": self.selected,
                "scored": self.scored,
                "errors": self.errors,
                "pending": self.pending,
            }
        }
        if self.task == "spatiotemporal":
            figures["iou_pointing"] = self.iou_pointing.result().to_dict()
            figures["video_map"] = mean_average_precision(
                self.detections, self.tubes, tube_iou, VIDEO_MAP_THRESHOLDS
            ).to_dict()
        else:
            figures["iou"] = self.iou.result().to_dict()
            figures["iod"] = self.iod.result().to_dict()
            figures["segment_map"] = mean_average_precision(
                self.detections, self.intervals, temporal_iou, SEGMENT_MAP_THRESHOLDS
            ).to_dict()
        return figures


def score_videos(
    samples: Sequence[VideoSample],
    records_by_id: Mapping[str, Mapping[str, Any]],
    task: str,
    default_dataset: str | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Overall figures and figures per dataset, as JSON-ready dicts."""
    if task not in VIDEO_TASKS:
        raise ValueError(f"unknown whole-video task {task!r}")
    overall = _VideoTally(task)
    per_dataset: dict[str, _VideoTally] = {}
    for sample in samples:
        record = records_by_id.get(sample.id)
        overall.add(sample, record)
        name = sample.dataset or default_dataset or "videos"
        per_dataset.setdefault(name, _VideoTally(task)).add(sample, record)
    return overall.to_dict(), {name: tally.to_dict() for name, tally in per_dataset.items()}


def build_video_results(
    description: RunDescription,
    selection: Selection,
    records_by_id: Mapping[str, Mapping[str, Any]],
    *,
    task: str,
    temporal: TemporalSettings,
    finished_at: str,
    resumed: int,
    evaluated: int,
) -> dict[str, Any]:
    """The results.json document of a whole-video run (schema ``vgem.eval/1``, with ``task``)."""
    from vgem import __version__
    from vgem.eval.report import SCHEMA

    samples: list[VideoSample] = list(selection.samples)  # type: ignore[arg-type]
    overall, per_dataset = score_videos(
        samples, records_by_id, task, description.dataset or description.label
    )
    errors = [
        {"id": sample.id, "video": sample.video, "error": records_by_id[sample.id]["error"]}
        for sample in samples
        if "error" in records_by_id.get(sample.id, {})
    ]
    return {
        "schema": SCHEMA,
        "vgem_version": __version__,
        "task": task,
        "complete": overall["counts"]["pending"] == 0,
        "dataset": description.dataset,
        "manifest": description.manifest,
        "root": description.root,
        "run_dir": description.run_dir,
        "backbone": description.backbone,
        "weights": description.weights,
        "settings": description.settings,
        "temporal": asdict(temporal),
        "settings_hash": description.settings_hash,
        "identity": description.identity,
        "metrics": list(description.metrics),
        "selection": {
            "limit": description.limit,
            "shuffle_seed": description.shuffle_seed,
            "videos": len(samples),
        },
        "started_at": description.started_at,
        "finished_at": finished_at,
        "this_sitting": {"resumed": resumed, "evaluated": evaluated},
        "overall": overall,
        "datasets": per_dataset,
        "errors": errors,
        "problems": [
            {"source": problem.source, "line": problem.line, "reason": problem.reason}
            for problem in selection.problems
        ],
    }
