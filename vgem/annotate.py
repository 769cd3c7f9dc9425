"""The annotated video of a grounding result: decode → draw → encode.

The one module that runs the annotated-video pipeline: source frames come
from :mod:`vgem.video` (decode), overlays are drawn by :mod:`vgem.render`,
and :class:`vgem.video.encode.VideoWriter` writes the MP4 atomically. Every
source frame shows the heatmap of the nearest grounded time, each query's
point and its text. Heatmaps are rebuilt from the small raw maps in the
result, one grounded time at a time, so memory does not grow with the
video's length.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vgem.prompts import PROMPT_ROLES
from vgem.render import FrameOverlay, TimelineStrip, apply_overlay
from vgem.results import GroundingResult

if TYPE_CHECKING:
    from vgem.results import StagedOutput
    from vgem.temporal.segments import Timeline
    from vgem.video import VideoInfo

__all__ = ["annotate_frames", "display_heatmap", "overlay_source", "write_annotated_video"]

ROLE_DISPLAY_WEIGHTS = {"decomposed": (1.0, 1.0, 3.0)}


def display_heatmap(
    similarity: np.ndarray, input_size: int, prompts_mode: str, queries: list[int] | None = None
) -> np.ndarray:
    """One [S, S] map in [0, 1] for raw maps ``[queries, 3, h, w]``.

    Per query: the normalized map of the prompt that decides the point (the
    1 : 1 : 3 mix of verb, object and action when decomposed); over queries,
    the element-wise maximum, so each query's region stays visible.
    """
    import torch

    from vgem.heatmaps import min_max_normalize, upsample

    if queries is not None:
        similarity = similarity[queries]
    heatmaps = min_max_normalize(upsample(torch.from_numpy(similarity), input_size))
    if prompts_mode in PROMPT_ROLES:
        per_query = heatmaps[:, PROMPT_ROLES.index(prompts_mode)]
    else:
        weights = torch.tensor(ROLE_DISPLAY_WEIGHTS["decomposed"]).view(1, 3, 1, 1)
        per_query = (heatmaps * weights).sum(dim=1) / weights.sum()
    return per_query.max(dim=0).values.numpy()


def overlay_source(result: GroundingResult) -> Callable[[int], FrameOverlay | None]:
    """``frame index → overlay`` using the grounded time nearest to each frame.

    With a timeline (``temporal`` settings), a frame shows only the query its time is
    labelled with (or "no action"), and a strip of the segments with a cursor.
    """
    from vgem.video import time_of_frame

    info = result.video
    times = np.asarray(result.times, dtype=np.float64)
    prompts_mode = str(result.settings.get("prompts", "decomposed"))
    timeline = result.timeline
    strip_spans = _strip_spans(timeline, info.duration) if timeline is not None else []
    cached: dict[int, np.ndarray | None] = {}

    def overlay(frame_index: int) -> FrameOverlay | None:
        if len(times) == 0:
            return None
        time = time_of_frame(info, frame_index)
        nearest = int(np.argmin(np.abs(times - time)))
        shown = list(range(len(result.queries)))
        title = f"t = {times[nearest]:.2f} s"
        strip = None
        if timeline is not None:
            label = timeline.labels[nearest]
            shown = [] if label is None else [label]
            title = f"{title}  {'no action' if label is None else result.queries[label].query}"
            strip = TimelineStrip(strip_spans, cursor=time / max(info.duration, 1e-9))
        if nearest not in cached:
            cached.clear()
            cached[nearest] = (
                display_heatmap(result.similarity[nearest], result.input_size, prompts_mode, shown)
                if shown
                else None
            )
        points = [(*result.queries[q].times[nearest].point, result.queries[q].query) for q in shown]
        return FrameOverlay(heatmap=cached[nearest], points=points, title=title, timeline=strip)

    return overlay


def _strip_spans(timeline: Timeline, duration: float) -> list[tuple[float, float, int]]:
    duration = max(duration, 1e-9)
    return [
        (segment.start / duration, segment.end / duration, segment.query_index + 1)
        for segment in timeline.segments
    ]


def write_annotated_video(
    result: GroundingResult,
    out_path: str | Path | StagedOutput,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Every source frame at source size and rate, annotated; written atomically.

    ``out_path``: a file path, or an output staged in a caller's
    :class:`vgem.results.OutputSet` (committed with the run's other outputs).
    ``progress(written, total)`` follows the frames written.
    """
    total = result.video.frame_count
    report = (lambda written: progress(written, total)) if progress else None
    annotate_frames(result.video, out_path, overlay_source(result), report)


def annotate_frames(
    info: VideoInfo,
    out_path: str | os.PathLike[str] | StagedOutput,
    overlay_for_frame: Callable[[int], FrameOverlay | None],
    progress: Callable[[int], None] | None = None,
    *,
    alpha: float = 0.5,
) -> None:
    """Re-encode the whole source with overlays, keeping its frame count, size and fps.

    Every source frame is decoded at full size, streaming, and written whether
    or not it has an overlay (``overlay_for_frame(index)`` may return None).
    ``progress`` is called with the number of frames written so far. The file
    appears at ``out_path`` only when complete; on any error nothing is left.
    """
    from vgem.video import VideoWriter, iter_full_frames

    with (
        VideoWriter(out_path, (info.width, info.height), info.fps) as writer,
        contextlib.closing(iter_full_frames(info)) as source_frames,
    ):
        for frame_index, frame in source_frames:
            overlay = overlay_for_frame(frame_index)
            writer.write(frame if overlay is None else apply_overlay(frame, overlay, alpha))
            if progress is not None:
                progress(writer.frames_written)
