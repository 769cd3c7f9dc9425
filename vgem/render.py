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
    "FrameOverlay",
    "TimelineStrip",
    "apply_overlay",
    "blend",
    "colorize",
    "draw_label",
    "draw_point",
]

Colour = tuple[int, int, int]

# Marker colours for successive points: bright, and far from each other and
# from the blue-to-red of the heatmap's middle range.
POINT_COLOURS: tuple[Colour, ...] = (
    (255, 255, 255),
    (255, 0, 255),
    (0, 255, 0),
    (255, 255, 0),
    (0, 255, 255),
)


@dataclass
class FrameOverlay:
    """What to draw on one frame.

    ``heatmap`` is float in [0, 1] at any resolution (it is stretched over the
    whole frame); ``points`` are ``(x, y, label)`` in the frame's pixels;
    ``title`` is written in the top-left corner.
    """

    heatmap: np.ndarray | None = None
    points: list[tuple[float, float, str]] = field(default_factory=list)
    title: str | None = None
    timeline: TimelineStrip | None = None


@dataclass
class TimelineStrip:
    """A bar along the bottom of the frame: coloured spans (fractions of the
    video, colour index) and a cursor at the current position."""

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
    font = _default_font(font_size or max(10, round(height / 40)))
    padding = 2
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox(
        (0, 0), text, font=font
    )
    box_width = min(width, right - left + 2 * padding)
    box_height = min(height, bottom - top + 2 * padding)
    x, y = position
    box_left = int(min(max(0, round(x)), width - box_width)) if math.isfinite(x) else 0
    box_top = int(min(max(0, round(y)), height - box_height)) if math.isfinite(y) else 0
    box = Image.new("RGB", (box_width, box_height), (0, 0, 0))
    ImageDraw.Draw(box).text((padding - left, padding - top), text, fill=color, font=font)
    frame[box_top : box_top + box_height, box_left : box_left + box_width] = np.asarray(box)


@functools.lru_cache(maxsize=8)
def _default_font(size: int) -> Any:  # PIL's font classes differ between versions
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


def apply_overlay(frame: np.ndarray, overlay: FrameOverlay, alpha: float = 0.5) -> np.ndarray:
    """Heatmap first, then markers, then their labels and the title on top.

    Works on one copy of the frame, drawing in place: rendering touches every
    frame of the video, so per-frame copies would add up.
    """
    _check_frame(frame)
    annotated = frame.copy() if overlay.heatmap is None else blend(frame, overlay.heatmap, alpha)
    height, width = annotated.shape[:2]
    radius = _default_radius(width, height)
    for number, (x, y, _label) in enumerate(overlay.points):
        _draw_point_into(annotated, (x, y), _point_colour(number), radius)
    for number, (x, y, label) in enumerate(overlay.points):
        if label and math.isfinite(x) and math.isfinite(y):
            label_position = (x + 1.6 * radius + 2, y - 1.4 * radius)
            _draw_label_into(annotated, label, label_position, _point_colour(number))
    if overlay.title:
        _draw_label_into(annotated, overlay.title, (4, 4), (255, 255, 255))
    if overlay.timeline is not None:
        _draw_timeline_into(annotated, overlay.timeline)
    return annotated


def _draw_timeline_into(frame: np.ndarray, strip: TimelineStrip) -> None:
    """Segments as coloured spans on a dark bar, the current time as a white tick."""
    height, width = frame.shape[:2]
    bar = max(3, round(height / 30))
    top = height - bar
    frame[top:, :] = (frame[top:, :] // 4).astype(frame.dtype)
    for start, end, colour in strip.spans:
        left = int(np.clip(round(start * width), 0, width))
        right = int(np.clip(round(end * width), left + 1, width))
        frame[top:, left:right] = _point_colour(colour)
    cursor = int(np.clip(round(strip.cursor * (width - 1)), 0, width - 1))
    frame[top:, max(0, cursor - 1) : cursor + 1] = (255, 255, 255)


def _point_colour(number: int) -> Colour:
    return POINT_COLOURS[number % len(POINT_COLOURS)]


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
