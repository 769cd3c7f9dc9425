"""vgem.render: colours, markers, labels and timeline strips on frames."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import vgem.render
from vgem.render import (
    FrameOverlay,
    TimelineStrip,
    apply_overlay,
    blend,
    colorize,
    draw_label,
    draw_point,
    query_colour,
)

MAGENTA = (255, 0, 255)


def _grey_frame(width: int = 40, height: int = 30) -> np.ndarray:
    return np.full((height, width, 3), 128, dtype=np.uint8)


# --------------------------------------------------------------------------- colours


def test_colorize_runs_from_blue_through_green_to_red():
    colours = colorize(np.array([[0.0, 0.5, 1.0]])).astype(int)[0]

    low, middle, high = colours
    assert low[2] > 100 and low[0] == 0 and low[1] == 0
    assert middle[1] == 255 and middle[0] < 200 and middle[2] < 200
    assert high[0] > 100 and high[1] == 0 and high[2] == 0
    assert colorize(np.zeros((2, 3))).shape == (2, 3, 3)


def test_colorize_clips_out_of_range_and_nan_values():
    colours = colorize(np.array([[-3.0, np.nan, 7.0]]))

    assert np.array_equal(colours[0, 0], colorize(np.zeros((1, 1)))[0, 0])
    assert np.array_equal(colours[0, 1], colours[0, 0])
    assert np.array_equal(colours[0, 2], colorize(np.ones((1, 1)))[0, 0])


def test_blend_weights_frame_and_heatmap_by_alpha():
    frame = _grey_frame(4, 2)
    heatmap = np.ones((2, 4))

    assert np.array_equal(blend(frame, heatmap, alpha=0.0), frame)
    assert np.array_equal(blend(frame, heatmap, alpha=1.0), colorize(heatmap))
    half = blend(frame, heatmap, alpha=0.5).astype(int)
    assert np.abs(half - (128 + colorize(heatmap).astype(int)) / 2).max() <= 1


def test_blend_upsamples_a_small_heatmap_bilinearly_with_centres_aligned():
    frame = _grey_frame(4, 3)

    coloured = blend(frame, np.array([[0.0, 1.0]]), alpha=1.0)

    expected_row = colorize(np.array([[0.0, 0.25, 0.75, 1.0]]))[0]
    assert all(np.array_equal(coloured[row], expected_row) for row in range(3))


# --------------------------------------------------------------------------- markers and labels


def test_draw_point_marks_column_x_row_y():
    frame = _grey_frame(40, 30)

    marked = draw_point(frame, (10.0, 20.0), MAGENTA, radius=3)

    assert tuple(marked[20, 10]) == MAGENTA
    assert tuple(marked[20, 13]) == MAGENTA  # on the disc's edge
    assert tuple(marked[20, 14]) == (255, 255, 255)  # the ring contrasts with magenta
    assert tuple(marked[10, 20]) == (128, 128, 128)  # (row, column) not swapped
    assert tuple(marked[20, 20]) == (128, 128, 128)
    assert np.array_equal(frame, _grey_frame(40, 30))  # the input is left alone


def test_draw_point_ring_is_dark_around_a_bright_marker():
    marked = draw_point(_grey_frame(), (20.0, 15.0), (255, 255, 255), radius=3)

    assert tuple(marked[15, 20]) == (255, 255, 255)
    assert tuple(marked[15, 24]) == (0, 0, 0)


@pytest.mark.parametrize("point", [(-50.0, -50.0), (1000.0, 15.0), (float("nan"), 3.0)])
def test_draw_point_off_the_frame_draws_nothing(point):
    frame = _grey_frame()

    assert np.array_equal(draw_point(frame, point, MAGENTA, radius=3), frame)


def test_draw_point_partly_off_the_frame_draws_the_visible_part():
    marked = draw_point(_grey_frame(), (-1.0, 29.5), MAGENTA, radius=3)

    assert tuple(marked[29, 0]) == MAGENTA
    assert tuple(marked[10, 10]) == (128, 128, 128)


def test_draw_label_writes_text_on_a_dark_box_inside_the_frame():
    frame = _grey_frame(120, 40)

    labelled = draw_label(frame, "cut onion", (200.0, 200.0), (255, 255, 0))

    changed = np.any(labelled != frame, axis=-1)
    rows, columns = np.nonzero(changed)
    assert rows.max() == 39 and columns.max() == 119  # pushed back inside the frame
    box = labelled[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    is_dark = np.all(box < 40, axis=-1)
    is_text = (box[..., 0] > 150) & (box[..., 1] > 150) & (box[..., 2] < 100)
    assert is_dark.mean() > 0.5
    assert is_text.sum() > 10
    assert np.array_equal(frame, _grey_frame(120, 40))


def test_apply_overlay_draws_heatmap_markers_in_turn_and_title():
    frame = _grey_frame(80, 60)
    overlay = FrameOverlay(
        heatmap=np.ones((3, 3)),
        points=[(20.0, 40.0, ""), (60.0, 40.0, "")],
        title="cut onion",
    )

    annotated = apply_overlay(frame, overlay)

    assert tuple(annotated[40, 20]) == query_colour(0)  # each marker in its query's colour
    assert tuple(annotated[40, 60]) == query_colour(1)
    assert np.array_equal(annotated[55, 40], blend(frame, np.ones((3, 3)))[55, 40])
    assert np.all(annotated[5, 4] < 40)  # the title's dark box, top left
    assert np.array_equal(frame, _grey_frame(80, 60))


def test_apply_overlay_draws_a_timeline_strip_along_the_bottom():
    frame = _grey_frame(100, 60)
    strip = TimelineStrip(spans=[(0.2, 0.4, 1)], cursor=1.0)

    annotated = apply_overlay(frame, FrameOverlay(timeline=strip))

    assert tuple(annotated[59, 30]) == query_colour(1)  # span 20 %–40 %: query 1's colour
    assert tuple(annotated[59, 10]) == (32, 32, 32)  # the bar darkens the frame
    assert tuple(annotated[59, 99]) == (255, 255, 255)  # the cursor at the end
    assert tuple(annotated[40, 30]) == (128, 128, 128)  # above the bar: untouched


# --------------------------------------------------------------------------- scope


def test_render_draws_only_and_imports_no_video_io():
    module = ast.parse(Path(vgem.render.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in module.body  # module level: the compatibility alias imports lazily
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module for node in module.body if isinstance(node, ast.ImportFrom)}

    video_io = ("vgem.video", "imageio", "imageio_ffmpeg", "subprocess")
    assert imported and not {name for name in imported if name.startswith(video_io)}
    assert "write_annotated_video" not in vgem.render.__all__


def test_the_old_writer_name_still_imports():
    from vgem.render import AnnotatedVideoWriter
    from vgem.video import VideoWriter

    assert AnnotatedVideoWriter is VideoWriter


def test_boxes_are_outlined_in_their_colour_inside_their_edges():
    from vgem.render import FrameOverlay, apply_overlay

    frame = np.zeros((60, 80, 3), np.uint8)
    drawn = apply_overlay(frame, FrameOverlay(boxes=[(10.0, 20.0, 30.0, 50.0, (255, 150, 0))]))
    assert (drawn[20, 10:30] == (255, 150, 0)).all() and (drawn[49, 10:30] == (255, 150, 0)).all()
    assert (drawn[20:50, 10] == (255, 150, 0)).all() and (drawn[20:50, 29] == (255, 150, 0)).all()
    assert (drawn[35, 15:25] == 0).all()  # an outline, not a fill
    assert (drawn[:20].sum(), drawn[50:].sum(), drawn[:, 30:].sum()) == (0, 0, 0)  # inside edges
