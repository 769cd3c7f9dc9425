"""``--html``: one page to check a grounding by eye, next to its video.

The page is self-contained and opens from disk with no network: its CSS, its
JavaScript and the grounding's numbers are inline, and the video is the
original file, **referenced by its path relative to the page** (it is never
copied or embedded, so the page stays small whatever the video's length; keep
the two together when moving them). It plays the video under a canvas that
draws, for each query in its own colour, the heatmap (the query's combined
map at the model's grid resolution, stretched over the frame), the box and
the point of the grounded time nearest to the playhead (none beyond half the
spacing of the grounded times, as in the annotated video); each query can be
shown or hidden and the heatmaps' opacity set. Below, a timeline per query
plots its score at every grounded time (with ``--temporal``: its relevance,
segments and labels); a click seeks, and the arrow keys step through the
grounded times. A folder of frames has no video to play: the page shows the
overlays on a dark frame.

Texts from the user (queries) are shown as text, never read as HTML: the page
is a Jinja2 template with autoescaping, and the data is JSON whose ``<``, ``>``
and ``&`` are escaped.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from vgem.render import query_colour
from vgem.results import GroundingResult
from vgem.staging import Destination, StagedOutput, atomic_write


def viewer_data(result: GroundingResult) -> dict[str, Any]:
    """The numbers the page draws from (JSON-able)."""
    import torch

    from vgem.heatmaps import min_max_normalize
    from vgem.regions import combined_heatmap

    grid = result.similarity.shape[-2:]
    normalized = min_max_normalize(torch.from_numpy(np.asarray(result.similarity))).numpy()
    combined = combined_heatmap(normalized, str(result.settings.get("prompts")))  # [T, Q, h, w]
    queries = []
    for q, query in enumerate(result.queries):
        heat = [_packed(combined[t, q]) for t in range(len(result.times))]
        entries = query.times
        queries.append(
            {
                "name": query.query,
                "colour": "#{:02x}{:02x}{:02x}".format(*query_colour(q)),
                "points": [[round(e.point[0], 2), round(e.point[1], 2)] for e in entries],
                "boxes": [None if e.box is None else [round(v, 2) for v in e.box] for e in entries],
                "scores": [round(e.score, 6) for e in entries],
                "heat": heat,
            }
        )
    data: dict[str, Any] = {
        "width": result.video.width,
        "height": result.video.height,
        "duration": result.video.duration,
        "times": [float(time) for time in result.times],
        "grid": [int(grid[0]), int(grid[1])],
        "queries": queries,
        "temporal": None,
    }
    timeline = result.timeline
    if timeline is not None:
        data["temporal"] = {
            "relevance": [
                [round(float(value), 6) for value in timeline.normalized[:, q]]
                for q in range(len(result.queries))
            ],
            "labels": list(timeline.labels),
            "segments": [
                {"query": segment.query_index, "start": segment.start, "end": segment.end}
                for segment in timeline.segments
            ],
        }
    return data


def _packed(heat: np.ndarray) -> str:
    levels = np.round(np.clip(heat, 0, 1) * 255).astype(np.uint8)
    return base64.b64encode(levels.tobytes()).decode("ascii")


def video_reference(video_path: str, page: Path) -> str | None:
    """The video as the page refers to it: its path relative to the page's folder
    (percent-encoded), or None for a folder of frames (nothing to play)."""
    source = Path(video_path)
    if source.is_dir():
        return None
    relative = os.path.relpath(source.resolve(), page.resolve().parent)
    return quote(Path(relative).as_posix())


def viewer_page(result: GroundingResult, video_href: str | None) -> str:
    """The page's HTML (see the module's docstring)."""
    import jinja2

    numbers = viewer_data(result)
    data = json.dumps(numbers, separators=(",", ":"), allow_nan=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("vgem", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("viewer.html.j2").render(
        title=f"vgem · {Path(result.video.path).name}",
        queries=[(query["name"], query["colour"]) for query in numbers["queries"]],
        video_href=video_href,
        data=data,
    )


def write_viewer(result: GroundingResult, destination: Destination) -> Path:
    """The page at ``destination``, referring to the video relative to where it lands."""
    if isinstance(destination, StagedOutput):
        page = destination.target or Path(destination.path)
    else:
        page = Path(os.fspath(destination)).expanduser()
    text = viewer_page(result, video_reference(result.video.path, page))
    return atomic_write(destination, lambda temporary: temporary.write_text(text, "utf-8"))
