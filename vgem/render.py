"""Drawing on frames: heatmap overlays, point markers, labels and timeline strips.

The drawing functions take an H×W×3 uint8 RGB frame and return a new one
(the input is left untouched), so they compose freely. Points are (x, y) =
(column, row) in the frame's pixels with pixel centres at integer
coordinates, the convention docs/method.md §4 reports predictions in.

This module knows frames and overlays only: reading and writing video is
:mod:`vgem.video`'s job, and :mod:`vgem.annotate` runs decode → draw → encode.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "QUERY_COLOURS",
    "FrameOverlay",
    "TimelineStrip",
    "apply_overlay",
    "blend",
    "colorize",
    "draw_label",
    "draw_point",
    "query_colour",
]

Colour = tuple[int, int, int]

# One colour per query, for its point, label, region contour, legend entry and
# timeline span: saturated hues far apart (after H.264's chroma subsampling too),
# bright enough on the labels' dark boxes.
QUERY_COLOURS: tuple[Colour, ...] = (
    (255, 150, 0),
    (0, 200, 255),
    (60, 230, 60),
    (255, 60, 220),
    (255, 235, 0),
    (255, 60, 60),
    (170, 110, 255),
    (255, 255, 255),
)
POINT_COLOURS = QUERY_COLOURS  # the name before colours were per query


def query_colour(index: int) -> Colour:
    """The colour of query ``index`` (the palette repeats after 8 queries)."""
    return QUERY_COLOURS[index % len(QUERY_COLOURS)]


@dataclass
class FrameOverlay:
    """What to draw on one frame.

    ``heatmap`` is float in [0, 1] at any resolution (it is stretched over the
    whole frame); ``points`` are ``(x, y, label)`` in the frame's pixels, drawn
    in ``colours`` (parallel to them; default: the palette in turn);
    ``regions`` are ``(map, colour)``: each map in [0, 1] (stretched over the
    frame like the heatmap) is outlined where it crosses ``region_level`` and
    lightly tinted inside, so several queries' regions stay apart; ``legend``
    lists ``(text, colour)`` under the ``title`` in the top-left corner.

    Whatever depends only on the frame size (resized maps, contours) is
    computed once per overlay and kept in ``cache``: copies made with
    :func:`dataclasses.replace` share it, so frames that differ only in their
    timeline cursor reuse the work.
    """

    heatmap: np.ndarray | None = None
    points: list[tuple[float, float, str]] = field(default_factory=list)
    title: str | None = None
    timeline: TimelineStrip | None = None
    colours: list[Colour] | None = None
    regions: list[tuple[np.ndarray, Colour]] = field(default_factory=list)
    legend: list[tuple[str, Colour]] = field(default_factory=list)
    region_level: float = 0.5
    #: ``(x1, y1, x2, y2, colour)``: boxes in the frame's pixel edges, outlined.
    boxes: list[tuple[float, float, float, float, Colour]] = field(default_factory=list)
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass
class TimelineStrip:
    """A bar along the bottom of the frame: spans (fractions of the video, and the
    query whose colour they take) and a cursor at the current position."""

    spans: list[tuple[float, float, int]] = field(default_factory=list)
    cursor: float = 0.0


# --------------------------------------------------------------------------- drawing


def _jet_lookup_table() -> np.ndarray:
    """256 colours from dark blue through cyan, yellow to dark red (MATLAB's jet shape)."""
    levels = np.linspace(0.0, 1.0, 256)
    channels = [
        np.clip(1.5 - np.abs(4.0 * levels - centre), 0.0, 1.0) for centre in (3.0, 2.0, 1.0)
    ]
    return np.round(np.stack(channels, axis=-1) * 255).astype(np.uint8)


_JET = _jet_lookup_table()


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """[H, W] floats in [0, 1] → [H, W, 3] uint8 jet colours (NaN and below 0 → low end)."""
    values = np.asarray(heatmap, dtype=np.float32)
    # NaN fails every comparison inside clip's max/min and would survive it, so
    # it is replaced first; levels are rounded to the nearest table entry.
    levels = np.clip(np.nan_to_num(values, nan=0.0) * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.take(_JET, levels, axis=0)


def _resize_heatmap(heatmap: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear, pixel centres aligned (align_corners=False), like the model's upsampling."""
    from PIL import Image

    values = np.asarray(heatmap, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"a heatmap must be 2-D, got shape {values.shape}")
    if values.shape == (height, width):
        return values
    # A float32 array becomes a mode "F" (32-bit float) image: no quantization.
    image = Image.fromarray(np.ascontiguousarray(values))
    # Pillow sets its filter constants with setattr, so its stubs lack them.
    resized = image.resize((width, height), Image.BILINEAR)  # type: ignore[attr-defined]
    return np.asarray(resized, dtype=np.float32)


def blend(frame: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Overlay a heatmap of any resolution on the frame, ``alpha`` its weight."""
    _check_frame(frame)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha}")
    height, width = frame.shape[:2]
    # Cleaned at its own (small) size, the upsampled map stays within [0, 1]
    # and needs no full-size clipping before the colour lookup.
    clean_heatmap = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0), 0, 1)
    levels = (_resize_heatmap(clean_heatmap, width, height) * 255 + 0.5).astype(np.uint8)
    colours = np.take(_JET, levels, axis=0)
    # Integer weights in 1/256ths: a 1080p frame blends in a few milliseconds
    # instead of the tens that float arithmetic takes, on every rendered frame.
    heatmap_weight = round(alpha * 256)
    mixed = frame.astype(np.uint16)
    mixed *= 256 - heatmap_weight
    mixed += colours.astype(np.uint16) * heatmap_weight
    mixed += 128
    mixed >>= 8
    return mixed.astype(np.uint8)


def draw_point(
    frame: np.ndarray,
    point: tuple[float, float],
    color: Colour = POINT_COLOURS[0],
    radius: float | None = None,
) -> np.ndarray:
    """A filled disc of ``color`` centred on (x, y), in a ring of the opposite brightness.

    The ring keeps the marker visible on any background, heatmap included.
    Parts outside the frame are clipped; a point off the frame draws nothing.
    """
    _check_frame(frame)
    marked = frame.copy()
    height, width = frame.shape[:2]
    disc_radius = _default_radius(width, height) if radius is None else float(radius)
    _draw_point_into(marked, point, color, disc_radius)
    return marked


def _draw_point_into(
    frame: np.ndarray, point: tuple[float, float], color: Colour, disc_radius: float
) -> None:
    """Draw in place, touching only the marker's bounding box."""
    height, width = frame.shape[:2]
    outer_radius = disc_radius + max(1.5, 0.4 * disc_radius)
    x, y = point
    if not (math.isfinite(x) and math.isfinite(y)):
        return
    first_row = max(0, math.floor(y - outer_radius))
    last_row = min(height - 1, math.ceil(y + outer_radius))
    first_column = max(0, math.floor(x - outer_radius))
    last_column = min(width - 1, math.ceil(x + outer_radius))
    if first_row > last_row or first_column > last_column:
        return
    rows = np.arange(first_row, last_row + 1, dtype=np.float32)[:, None]
    columns = np.arange(first_column, last_column + 1, dtype=np.float32)[None, :]
    distance = np.sqrt((columns - x) ** 2 + (rows - y) ** 2)
    region = frame[first_row : last_row + 1, first_column : last_column + 1]
    region[distance <= outer_radius] = _contrasting(color)
    region[distance <= disc_radius] = color


def _default_radius(width: int, height: int) -> float:
    return max(3.0, min(width, height) / 40.0)


def _contrasting(color: Colour) -> Colour:
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    return (0, 0, 0) if luminance > 110 else (255, 255, 255)


def draw_label(
    frame: np.ndarray,
    text: str,
    position: tuple[float, float],
    color: Colour = (255, 255, 255),
    *,
    font_size: int | None = None,
) -> np.ndarray:
    """Write ``text`` with its box's top-left corner at ``position`` (x, y), on a dark box.

    The box is moved inside the frame when it would stick out, so labels near
    an edge stay readable. The font is PIL's default, scaled to the frame.
    """
    _check_frame(frame)
    labelled = frame.copy()
    _draw_label_into(labelled, text, position, color, font_size)
    return labelled


def _draw_label_into(
    frame: np.ndarray,
    text: str,
    position: tuple[float, float],
    color: Colour,
    font_size: int | None = None,
) -> None:
    """Draw in place; only the label's box goes through PIL, not the whole frame."""
    from PIL import Image, ImageDraw

    if not text:
        return
    height, width = frame.shape[:2]
    font = _default_font(font_size or text_size(width, height))
    padding = max(2, round(font.size / 5)) if hasattr(font, "size") else 2
    text, (left, top, right, bottom) = _fitted(_spaced(text, font), font, width - 2 * padding)
    box_width = min(width, math.ceil(right - left) + 2 * padding)
    box_height = min(height, math.ceil(bottom - top) + 2 * padding)
    x, y = position
    box_left = int(min(max(0, round(x)), width - box_width)) if math.isfinite(x) else 0
    box_top = int(min(max(0, round(y)), height - box_height)) if math.isfinite(y) else 0
    box = Image.new("RGB", (box_width, box_height), (0, 0, 0))
    ImageDraw.Draw(box).text((padding - left, padding - top), text, fill=color, font=font)
    frame[box_top : box_top + box_height, box_left : box_left + box_width] = np.asarray(box)


def text_size(width: int, height: int) -> int:
    """The font size for a frame: a fortieth of its height, 10 px at least (readable
    from 320 x 180 up to 4K, where it is 54 px)."""
    return max(10, round(min(height, width * 9 / 16) / 40))


def _fitted(text: str, font: Any, room: int) -> tuple[str, tuple[float, float, float, float]]:
    """``text`` (cut short with "…" when wider than ``room`` pixels) and its box."""
    from PIL import Image, ImageDraw

    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    box = measure.textbbox((0, 0), text, font=font)
    if box[2] - box[0] <= room or len(text) <= 1:
        return text, box
    low, high = 0, len(text)  # the longest prefix that fits with its ellipsis
    while low < high:
        middle = (low + high + 1) // 2
        candidate = measure.textbbox((0, 0), text[:middle].rstrip() + "…", font=font)
        if candidate[2] - candidate[0] <= room:
            low = middle
        else:
            high = middle - 1
    shortened = text[:low].rstrip() + "…"
    return shortened, measure.textbbox((0, 0), shortened, font=font)


def _spaced(text: str, font: Any) -> str:
    """Spaces doubled at small sizes, where the default font's narrow space (a quarter
    of the size: 2 px at 10 px) lets words run together."""
    return text.replace(" ", "  ") if getattr(font, "size", 0) < 24 else text


def _label_box(text: str, width: int, height: int) -> tuple[int, int]:
    """The size of a label's dark box on a frame of this size."""
    font = _default_font(text_size(width, height))
    padding = max(2, round(font.size / 5)) if hasattr(font, "size") else 2
    _, (left, top, right, bottom) = _fitted(_spaced(text, font), font, width - 2 * padding)
    box_width = min(width, math.ceil(right - left) + 2 * padding)
    return box_width, min(height, math.ceil(bottom - top) + 2 * padding)


@functools.lru_cache(maxsize=8)
def _default_font(size: int) -> Any:  # PIL's font classes differ between versions
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


def apply_overlay(frame: np.ndarray, overlay: FrameOverlay, alpha: float = 0.5) -> np.ndarray:
    """Heatmap first, then the regions, markers, their labels, the title and legend on top.

    Works on one copy of the frame, drawing in place: rendering touches every
    frame of the video, so per-frame copies would add up.
    """
    _check_frame(frame)
    height, width = frame.shape[:2]
    annotated = frame.copy()
    if overlay.heatmap is not None:
        colours = _cached(
            overlay,
            ("heatmap", width, height),
            lambda: _heatmap_colours(overlay.heatmap, width, height),
        )
        _mix_into(annotated, colours, round(alpha * 256))
    if overlay.regions:
        tint, weight, outlines = _cached(
            overlay, ("regions", width, height), lambda: _region_layers(overlay, width, height)
        )
        _mix_into(annotated, tint, weight)
        for (rows, columns), colour in outlines:
            annotated[rows, columns] = colour
    radius = _default_radius(width, height)
    for x1, y1, x2, y2, colour in overlay.boxes:
        _draw_box_into(annotated, (x1, y1, x2, y2), colour, max(1, round(radius / 3)))
    colours_of_points = overlay.colours or [_point_colour(n) for n in range(len(overlay.points))]
    for (x, y, _label), colour in zip(overlay.points, colours_of_points, strict=False):
        _draw_point_into(annotated, (x, y), colour, radius)
    for (x, y, label), colour in zip(overlay.points, colours_of_points, strict=False):
        if label and math.isfinite(x) and math.isfinite(y):
            box_width, _ = _label_box(label, width, height)
            right_side = x + 1.6 * radius + 2
            # beside the point, on the side with room: the label stays inside the frame
            left = (
                right_side if right_side + box_width <= width else x - 1.6 * radius - 2 - box_width
            )
            _draw_label_into(annotated, label, (left, y - 1.4 * radius), colour)
    top = 4.0
    if overlay.title:
        _draw_label_into(annotated, overlay.title, (4, top), (255, 255, 255))
        top += _label_box(overlay.title, width, height)[1] + 2
    for text, colour in overlay.legend:  # a swatch of the query's colour, then its text
        _, box_height = _label_box(text, width, height)
        swatch = box_height
        if top + box_height > height or 4 + swatch + 2 >= width:
            break
        annotated[round(top) : round(top) + swatch, 4 : 4 + swatch] = _contrasting(colour)
        inner = max(1, swatch // 6)
        annotated[
            round(top) + inner : round(top) + swatch - inner, 4 + inner : 4 + swatch - inner
        ] = colour
        _draw_label_into(annotated, text, (4 + swatch + 2, top), colour)
        top += box_height + 1
    if overlay.timeline is not None:
        _draw_timeline_into(annotated, overlay.timeline)
    return annotated


def _draw_box_into(
    frame: np.ndarray, box: tuple[float, float, float, float], colour: Colour, thickness: int
) -> None:
    """A box's outline (pixel edges ``x1, y1, x2, y2``), ``thickness`` pixels inside it."""
    height, width = frame.shape[:2]
    if not all(math.isfinite(value) for value in box):
        return
    left, top = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    right, bottom = min(width, math.ceil(box[2])), min(height, math.ceil(box[3]))
    if right <= left or bottom <= top:
        return
    edge = min(thickness, right - left, bottom - top)
    frame[top : top + edge, left:right] = colour
    frame[bottom - edge : bottom, left:right] = colour
    frame[top:bottom, left : left + edge] = colour
    frame[top:bottom, right - edge : right] = colour


def _cached(overlay: FrameOverlay, key: Any, compute: Any) -> Any:
    if key not in overlay.cache:
        overlay.cache[key] = compute()
    return overlay.cache[key]


def _heatmap_colours(heatmap: Any, width: int, height: int) -> np.ndarray:
    clean = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0), 0, 1)
    levels = (_resize_heatmap(clean, width, height) * 255 + 0.5).astype(np.uint8)
    return np.take(_JET, levels, axis=0)


def _mix_into(frame: np.ndarray, colours: np.ndarray, weight: int | np.ndarray) -> None:
    """``frame`` ← its mix with ``colours``, ``weight`` in 1/256ths (a number or per pixel)."""
    weights = np.asarray(weight, dtype=np.uint16)
    if weights.ndim == 2:
        weights = weights[..., None]
    mixed = frame.astype(np.uint16)
    mixed *= 256 - weights
    mixed += colours.astype(np.uint16) * weights
    mixed += 128
    mixed >>= 8
    frame[...] = mixed.astype(np.uint8)


def _region_layers(
    overlay: FrameOverlay, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[tuple[np.ndarray, ...], Colour]]]:
    """A light tint inside each region and its outline's pixels, at the frame's size."""
    tint = np.zeros((height, width, 3), dtype=np.uint8)
    weight = np.zeros((height, width), dtype=np.uint16)
    outlines = []
    thickness = max(1, round(min(width, height) / 180))
    for region, colour in overlay.regions:
        clean = np.nan_to_num(np.asarray(region, dtype=np.float32), nan=0.0)
        inside = _resize_heatmap(clean, width, height) >= overlay.region_level
        tint[inside] = colour
        weight[inside] = 64  # a quarter of the colour
        eroded = inside.copy()
        for _ in range(thickness):
            shrunk = eroded.copy()
            shrunk[1:, :] &= eroded[:-1, :]
            shrunk[:-1, :] &= eroded[1:, :]
            shrunk[:, 1:] &= eroded[:, :-1]
            shrunk[:, :-1] &= eroded[:, 1:]
            eroded = shrunk
        outlines.append((np.nonzero(inside & ~eroded), colour))
    return tint, weight, outlines


def _draw_timeline_into(frame: np.ndarray, strip: TimelineStrip) -> None:
    """Segments as coloured spans on a dark bar, the current time as a white tick."""
    height, width = frame.shape[:2]
    bar = max(3, round(height / 30))
    top = height - bar
    frame[top:, :] = (frame[top:, :] // 4).astype(frame.dtype)
    for start, end, query in strip.spans:
        left = int(np.clip(round(start * width), 0, width))
        right = int(np.clip(round(end * width), left + 1, width))
        frame[top:, left:right] = query_colour(query)
    cursor = int(np.clip(round(strip.cursor * (width - 1)), 0, width - 1))
    frame[top:, max(0, cursor - 1) : cursor + 1] = (255, 255, 255)


def _point_colour(number: int) -> Colour:
    return query_colour(number)


def _check_frame(frame: np.ndarray) -> None:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 uint8 frame, got {frame.dtype} {frame.shape}")


def __getattr__(name: str) -> Any:
    """``vgem.render.AnnotatedVideoWriter``, kept for compatibility: the MP4 sink
    is :class:`vgem.video.encode.VideoWriter` now, imported only when asked for."""
    if name == "AnnotatedVideoWriter":
        from vgem.video.encode import VideoWriter

        return VideoWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
