"""The annotated video of a grounding result.

Glue between results and vgem.render: every source frame shows the heatmap of
the nearest grounded time, each query's point and its text. Heatmaps are
rebuilt from the small raw maps in the result, one grounded time at a time,
so memory does not grow with the video's length.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from vgem.prompts import PROMPT_ROLES
from vgem.render import FrameOverlay, TimelineStrip
from vgem.results import GroundingResult

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

    With a timeline (``--temporal``), a frame shows only the query its time is
    labelled with (or "no action"), and a strip of the segments with a cursor.
    """
    from vgem.video import time_of_frame

    info = result.video
    times = np.asarray(result.times, dtype=np.float64)
    prompts_mode = str(result.settings.get("prompts", "decomposed"))
    timeline = result.timeline
    strip_spans = _strip_spans(result) if timeline is not None else []
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
            title = f"{title}  {result.queries[label].query if shown else 'no action'}"
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


def _strip_spans(result: GroundingResult) -> list[tuple[float, float, int]]:
    duration = max(result.video.duration, 1e-9)
    return [
        (segment.start / duration, segment.end / duration, segment.query_index + 1)
        for segment in result.timeline.segments
    ]


def write_annotated_video(
    result: GroundingResult,
    out_path: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Every source frame at source size and rate, annotated; written atomically."""
    from vgem import render

    total = result.video.frame_count
    report = (lambda written: progress(written, total)) if progress else None
    render.write_annotated_video(result.video, out_path, overlay_source(result), report)
