"""The annotated video of a grounding result: decode → draw → encode.

The one module that runs the annotated-video pipeline: source frames come
from :mod:`vgem.video` (decode), overlays are drawn by :mod:`vgem.render`,
and :class:`vgem.video.encode.VideoWriter` writes the MP4 atomically. Every
source frame near a grounded time shows that time's overlay: each query in
its own colour (:func:`vgem.render.query_colour`) for its point, its label,
its region and its part of the timeline strip, with a legend naming them. One
query shown: its heatmap, outlined in its colour. Several: each one's own
region (outlined and lightly tinted), never a maximum over queries that would
hide whose region is whose. A frame farther than half the grounding interval
from every grounded time shows the legend (and the strip) only, no stale
overlay. Heatmaps are rebuilt from the small raw maps in the result, one
grounded time at a time, so memory does not grow with the video's length.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vgem.render import FrameOverlay, TimelineStrip, apply_overlay, query_colour
from vgem.results import GroundingResult

if TYPE_CHECKING:
    from vgem.staging import StagedOutput
    from vgem.temporal.segments import Timeline
    from vgem.video import VideoInfo

__all__ = [
    "annotate_frames",
    "display_heatmap",
    "display_heatmaps",
    "overlay_source",
    "write_annotated_video",
]


def display_heatmap(
    similarity: np.ndarray, input_size: int, prompts_mode: str, queries: list[int] | None = None
) -> np.ndarray:
    """One [S, S] map in [0, 1] for raw maps ``[queries, 3, h, w]``.

    Per query: the normalized map of the prompt that decides the point (the
    1 : 1 : 3 mix of verb, object and action when decomposed); over queries,
    the element-wise maximum, so each query's region stays visible.
    """

    if queries is not None:
        similarity = similarity[queries]
    return display_heatmaps(similarity, input_size, prompts_mode).max(axis=0)


def display_heatmaps(similarity: np.ndarray, input_size: int, prompts_mode: str) -> np.ndarray:
    """``[queries, S, S]`` in [0, 1]: each query's own map, as :func:`display_heatmap`
    makes it, for raw maps ``[queries, 3, h, w]``."""
    import torch

    from vgem.heatmaps import min_max_normalize, upsample
    from vgem.regions import combined_heatmap

    heatmaps = min_max_normalize(upsample(torch.from_numpy(similarity), input_size))
    return combined_heatmap(heatmaps.numpy(), prompts_mode)


def overlay_source(result: GroundingResult) -> Callable[[int], FrameOverlay | None]:
    """``frame index → overlay`` using the grounded time nearest to each frame.

    With a timeline (``temporal`` settings), a frame shows only the query its time is
    labelled with (or "no action"), and a strip of the segments with a cursor. A frame
    more than half the grounding interval away from every grounded time shows only the
    legend (and the strip).
    """
    from vgem.temporal.segments import time_step
    from vgem.video import time_of_frame

    info = result.video
    times = np.asarray(result.times, dtype=np.float64)
    prompts_mode = str(result.settings.get("prompts", "decomposed"))
    timeline = result.timeline
    strip_spans = _strip_spans(timeline, info.duration) if timeline is not None else []
    legend = [(query.query, query_colour(q)) for q, query in enumerate(result.queries)]
    # half the spacing of the grounded times (one frame's duration at least): farther
    # from every grounded time, a frame's overlay would be another time's
    reach = max(time_step(times) / 2, 0.5 / max(info.fps, 1e-9)) + 1e-6
    cached: dict[int, FrameOverlay] = {}

    def overlay(frame_index: int) -> FrameOverlay | None:
        if len(times) == 0:
            return None
        time = time_of_frame(info, frame_index)
        nearest = int(np.argmin(np.abs(times - time)))
        strip = None
        if timeline is not None:
            strip = TimelineStrip(strip_spans, cursor=time / max(info.duration, 1e-9))
        if abs(times[nearest] - time) > reach:
            return FrameOverlay(legend=legend, timeline=strip)
        if nearest not in cached:
            cached.clear()
            cached[nearest] = _time_overlay(result, nearest, prompts_mode, legend)
        return dataclasses.replace(cached[nearest], timeline=strip)  # shares the drawing cache

    return overlay


def _time_overlay(
    result: GroundingResult, nearest: int, prompts_mode: str, legend: list
) -> FrameOverlay:
    """The overlay of one grounded time (without the timeline cursor)."""
    timeline = result.timeline
    shown = list(range(len(result.queries)))
    title = f"grounded at {float(result.times[nearest]):.2f} s"
    if timeline is not None:
        label = timeline.labels[nearest]
        shown = [] if label is None else [label]
        title = f"{title}  {'no action' if label is None else result.queries[label].query}"
    points = [(*result.queries[q].times[nearest].point, result.queries[q].query) for q in shown]
    colours = [query_colour(q) for q in shown]
    heatmap = None
    regions: list[tuple[np.ndarray, tuple[int, int, int]]] = []
    if shown:
        maps = display_heatmaps(result.similarity[nearest][shown], result.input_size, prompts_mode)
        if len(shown) == 1:
            heatmap = maps[0]  # one query: its heatmap, outlined in its colour
        regions = list(zip(maps, colours, strict=True))
    boxes = []  # each shown query's box, in its colour
    for q, colour in zip(shown, colours, strict=True):
        box = result.queries[q].times[nearest].box
        if box is not None:
            boxes.append((box[0], box[1], box[2], box[3], colour))
    return FrameOverlay(
        heatmap=heatmap,
        points=points,
        title=title,
        colours=colours,
        regions=regions,
        legend=legend,
        boxes=boxes,
    )


def _strip_spans(timeline: Timeline, duration: float) -> list[tuple[float, float, int]]:
    """The segments as fractions of the video, each with its query (and so its colour)."""
    duration = max(duration, 1e-9)
    return [
        (segment.start / duration, segment.end / duration, segment.query_index)
        for segment in timeline.segments
    ]


def write_annotated_video(
    result: GroundingResult,
    out_path: str | os.PathLike[str] | StagedOutput,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Every source frame at source size and rate, annotated; written atomically.

    ``out_path``: a file path, or an output staged in a caller's
    :class:`vgem.staging.OutputSet` (committed with the run's other outputs).
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
