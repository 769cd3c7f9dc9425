"""Running an evaluation: samples in, one prediction line per sample out.

A run's whole state is its predictions file, ``predictions.jsonl`` in the run
directory. Each line is written, flushed and fsynced as soon as its sample
is scored, so a run killed at any moment keeps everything it finished, and a
resumed run skips every sample that already has a line made with the same
settings for the same sample. The figures are computed from that file alone
(see vgem.eval.report), so an interrupted and resumed run reports exactly
what an uninterrupted one does.

Samples are grouped by video: each video is probed once and grounded with
one ``Grounder.ground`` call that takes all of its distinct queries and
times. The visual pass is per clip and shared by every query, and the video
is decoded in one streaming pass, so this costs one forward per distinct
time; calling once per (video, query) would decode the video and run the
backbone again for every extra query. Each sample's line is still written as
soon as its time is grounded (``on_grounded``), so a kill loses at most the
samples of the clip in flight (grounded again on resume, never recorded twice).

A sample that cannot be run (video missing, unreadable, too short for its
time) gets an error line and never stops the run. An error line counts as
done, so resuming never records a sample twice; once the missing videos are
there, ``retry_errors`` (``--retry-errors``) grounds those samples again and
their new line replaces the error.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vgem.errors import InputError
from vgem.eval.manifest import ManifestProblem, Sample
from vgem.eval.metrics import heatmap_box_iou, pointing_hit, scale_box_to_model
from vgem.eval.run_log import (
    PredictionLog,
    current_records,
    is_finished,
    os_error_reason,
    sample_fingerprint,
)

if TYPE_CHECKING:
    import numpy as np

    from vgem.results import GroundedTime, GroundingResult
    from vgem.video import VideoInfo

METRICS = ("pointing", "map")


class SupportsGround(Protocol):
    """What the runner needs of a grounder: :class:`vgem.grounder.Grounder` has it."""

    @property
    def input_size(self) -> int: ...

    def ground(
        self,
        video: VideoInfo,
        queries: Sequence[str],
        *,
        at: Sequence[float],
        on_grounded: Callable[[int, list[GroundedTime], np.ndarray], None] | None = None,
    ) -> GroundingResult: ...


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """The samples a run evaluates, in order, and what could not be read.

    ``problems`` holds every problem the reader reported, in reading order,
    including those that still carry a sample (a missing video): such a
    sample is in ``samples`` as well, with its reason in ``known_errors``, so
    that it is counted as an error rather than silently dropped.
    """

    samples: list[Sample]
    problems: list[ManifestProblem]
    known_errors: dict[str, str] = field(default_factory=dict)


def select_samples(
    items: Iterable[Sample | ManifestProblem],
    *,
    limit: int | None = None,
    shuffle_seed: int | None = None,
) -> Selection:
    """The samples to run: all of them, or ``limit`` of them in (seeded) random order.

    Shuffling before limiting makes ``--limit 200 --shuffle-seed 0`` a fair
    random subset rather than the first videos of the file; the same seed
    always gives the same subset, so such a run can be resumed.
    """
    samples: list[Sample] = []
    problems: list[ManifestProblem] = []
    known_errors: dict[str, str] = {}
    seen_ids: set[str] = set()
    for item in items:
        if isinstance(item, ManifestProblem):
            problems.append(item)
            if item.sample is None or item.sample.id in seen_ids:
                continue
            known_errors[item.sample.id] = item.reason
            item = item.sample
        elif item.id in seen_ids:
            problems.append(ManifestProblem(item.dataset or "samples", f"duplicate id {item.id!r}"))
            continue
        seen_ids.add(item.id)
        samples.append(item)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(samples)
    if limit is not None:
        samples = samples[:limit]
        kept = {sample.id for sample in samples}
        known_errors = {key: reason for key, reason in known_errors.items() if key in kept}
    return Selection(samples, problems, known_errors)


# --------------------------------------------------------------------------- running


@dataclass(frozen=True)
class RunContext:
    """What every prediction line of a run needs besides its sample."""

    root: Path
    settings_hash: str
    metrics: frozenset[str] = frozenset(METRICS)
    source_fps: float = 1.0


@dataclass(frozen=True)
class RunOutcome:
    """What a sitting of a run leaves: the lines to score, and what this sitting did."""

    records: dict[str, dict[str, Any]]
    resumed: int
    written: int
    interrupted: bool


def evaluate(
    selection: Selection,
    *,
    context: RunContext,
    run_dir: str | os.PathLike[str],
    load_grounder: Callable[[], SupportsGround],
    resume: bool = True,
    retry_errors: bool = False,
    on_resume: Callable[[list[dict[str, Any]]], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> RunOutcome:
    """Run every selected sample that is not finished yet, and collect the lines to score.

    ``on_resume`` sees the lines of samples finished in earlier sittings
    before anything is grounded. Ctrl-C stops the sitting cleanly: the
    outcome says ``interrupted`` and holds what was finished, so the caller
    can still report it.
    """
    log = PredictionLog(run_dir)
    written = 0

    def count(line: dict[str, Any]) -> None:
        nonlocal written
        written += 1
        if on_record is not None:
            on_record(line)

    with log.open(fresh=not resume):
        previous = current_records(log.records(), selection.samples, context.settings_hash)
        finished = [
            line
            for line in previous.values()
            if is_finished(line, context.metrics, retry_errors=retry_errors)
        ]
        finished_ids = {line["id"] for line in finished}
        if on_resume is not None:
            on_resume(finished)
        pending = [sample for sample in selection.samples if sample.id not in finished_ids]
        interrupted = False
        try:
            run_samples(
                pending,
                context=context,
                log=log,
                load_grounder=load_grounder,
                known_errors=selection.known_errors,
                on_record=count,
            )
        except KeyboardInterrupt:
            interrupted = True
        records = current_records(log.records(), selection.samples, context.settings_hash)
    return RunOutcome(records, len(finished_ids), written, interrupted)


def run_samples(
    samples: Sequence[Sample],
    *,
    context: RunContext,
    log: PredictionLog,
    load_grounder: Callable[[], SupportsGround],
    known_errors: Mapping[str, str] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Ground and score the samples video by video; returns how many lines were written.

    ``load_grounder`` is called once, when the first video that could be
    probed needs grounding, so a run with nothing left to do, or with only
    missing videos, loads no model.
    ``on_record`` sees each line right after it is on disk (progress display).
    """
    known_errors = known_errors or {}
    loaded: list[SupportsGround] = []
    written = 0

    def grounder() -> SupportsGround:
        if not loaded:
            loaded.append(load_grounder())
        return loaded[0]

    def record(line: dict[str, Any]) -> None:
        nonlocal written
        log.append(line)
        written += 1
        if on_record is not None:
            on_record(line)

    for video, group in group_by_video(samples).items():
        for sample in group:
            if sample.id in known_errors:
                record(error_record(sample, context, known_errors[sample.id], 0.0))
        runnable = [sample for sample in group if sample.id not in known_errors]
        if runnable:
            _ground_video(grounder, context, video, runnable, record)
    return written


def group_by_video(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    """Samples per video, videos in order of first appearance."""
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.video, []).append(sample)
    return groups


def _ground_video(
    grounder: Callable[[], SupportsGround],
    context: RunContext,
    video: str,
    samples: list[Sample],
    record: Callable[[dict[str, Any]], None],
) -> None:
    """One probe and one grounding call for a video's samples.

    Each sample's line is recorded as soon as its time is grounded, so a
    killed run loses at most the samples of the clip in flight. A sample's
    ``seconds`` is its share of the time since the previous grounded time (the
    probe included); loading the model (on the first video) is not counted.
    """
    from vgem.video import probe_video

    started = time.perf_counter()
    try:
        info = probe_video(context.root / video, source_fps=context.source_fps)
    except (InputError, OSError) as error:
        seconds = time.perf_counter() - started
        for sample in samples:
            record(error_record(sample, context, _message(error), seconds))
        return
    target_times: dict[str, float] = {}
    for sample in samples:
        try:
            target_times[sample.id] = target_time(info, sample)
        except InputError as error:
            record(error_record(sample, context, str(error), 0.0))
    runnable = [sample for sample in samples if sample.id in target_times]
    if not runnable:
        return
    times = sorted(set(target_times.values()))
    queries = list(dict.fromkeys(sample.query for sample in runnable))
    query_position = {query: position for position, query in enumerate(queries)}
    at_time: dict[float, list[Sample]] = {}
    for sample in runnable:
        at_time.setdefault(target_times[sample.id], []).append(sample)
    done: set[str] = set()
    probe_seconds = time.perf_counter() - started
    model = grounder()
    clock = [time.perf_counter() - probe_seconds]

    def grounded(position: int, entries: list[GroundedTime], similarity: np.ndarray) -> None:
        now = time.perf_counter()
        waiting = at_time[times[position]]
        seconds = (now - clock[0]) / len(waiting)
        clock[0] = now
        for sample in waiting:
            query = query_position[sample.query]
            record(
                prediction_record(
                    sample,
                    context,
                    entries[query],
                    similarity[query],
                    info,
                    model.input_size,
                    seconds,
                )
            )
            done.add(sample.id)

    try:
        model.ground(info, queries, at=times, on_grounded=grounded)
    except (InputError, OSError) as error:
        seconds = time.perf_counter() - clock[0]
        for sample in runnable:
            if sample.id not in done:
                record(error_record(sample, context, _message(error), seconds))


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
    model_boxes = [scale_box_to_model(box, frame_size, input_size) for box in sample.boxes]
    return pointing_hit(model_point, model_boxes), model_boxes


def action_heatmap_iou(
    similarity_map: np.ndarray, model_boxes: Sequence[Sequence[int]], input_size: int
) -> float:
    """IoU of the action prompt's heatmap (upsampled to S x S, mask > 0.5) with the boxes."""
    import torch

    from vgem.heatmaps import min_max_normalize, upsample

    heatmap = min_max_normalize(upsample(torch.from_numpy(similarity_map), input_size))
    return heatmap_box_iou(heatmap.numpy(), model_boxes)


def prediction_record(
    sample: Sample,
    context: RunContext,
    grounded: GroundedTime,
    similarity: np.ndarray,
    info: VideoInfo,
    input_size: int,
    seconds: float,
) -> dict[str, Any]:
    """The line of a scored sample, from its grounded entry and raw maps ``[3, h, w]``."""
    from vgem.prompts import PROMPT_ROLES

    video_size = (info.width, info.height)
    hit, model_boxes = score_point(grounded.model_point, sample, video_size, input_size)
    line = _record_head(sample, context)
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
    if "map" in context.metrics:
        action_map = similarity[PROMPT_ROLES.index("action")]
        line["iou"] = round(action_heatmap_iou(action_map, model_boxes, input_size), 6)
    line["seconds"] = round(seconds, 4)
    line["at"] = _now()
    return line


def error_record(
    sample: Sample, context: RunContext, reason: str, seconds: float
) -> dict[str, Any]:
    """The line of a sample that could not be run."""
    line = _record_head(sample, context)
    line.update(error=reason, seconds=round(seconds, 4), at=_now())
    return line


def _record_head(sample: Sample, context: RunContext) -> dict[str, Any]:
    return {
        "id": sample.id,
        "settings": context.settings_hash,
        "sample": sample_fingerprint(sample),
        "class": sample.class_key,
        "video": sample.video,
        "query": sample.query,
    }


def _message(error: BaseException) -> str:
    if isinstance(error, OSError):
        return f"{getattr(error, 'filename', None) or 'video'}: {os_error_reason(error)}"
    return str(error)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
