"""vgem.render: colours, markers, labels and the annotated-video writer."""

from __future__ import annotations

from fractions import Fraction

import imageio_ffmpeg
import numpy as np
import pytest

from tests.synth import frame_index_from_pixels, synthetic_frame, write_frame_folder, write_video
from vgem.errors import InputError, VgemError
from vgem.render import (
    AnnotatedVideoWriter,
    FrameOverlay,
    apply_overlay,
    blend,
    colorize,
    draw_label,
    draw_point,
    write_annotated_video,
)
from vgem.video import probe_video

MAGENTA = (255, 0, 255)


def _read_back(path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    metadata = next(reader)
    width, height = metadata["size"]
    frames = [np.frombuffer(data, np.uint8).reshape(height, width, 3) for data in reader]
    return metadata, frames


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

    assert tuple(annotated[40, 20]) == (255, 255, 255)  # first marker: white
    assert tuple(annotated[40, 60]) == (255, 0, 255)  # second marker: magenta
    assert np.array_equal(annotated[55, 40], blend(frame, np.ones((3, 3)))[55, 40])
    assert np.all(annotated[5, 4] < 40)  # the title's dark box, top left
    assert np.array_equal(frame, _grey_frame(80, 60))


# --------------------------------------------------------------------------- writer


@pytest.mark.parametrize("size", [(64, 48), (101, 57)], ids=["even", "odd"])
def test_writer_keeps_frame_count_size_and_fps(tmp_path, size):
    out_path = tmp_path / "out.mp4"

    with AnnotatedVideoWriter(out_path, size, fps=12.5) as writer:
        for index in range(15):
            writer.write(synthetic_frame(index, size))

    metadata, frames = _read_back(out_path)
    assert metadata["size"] == size
    assert metadata["fps"] == pytest.approx(12.5)
    assert [frame_index_from_pixels(frame) for frame in frames] == list(range(15))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.mp4"]


def test_writer_keeps_a_ntsc_rate_exactly(tmp_path):
    out_path = tmp_path / "ntsc.mp4"

    with AnnotatedVideoWriter(out_path, (32, 24), fps=30000 / 1001) as writer:
        for index in range(30):
            writer.write(synthetic_frame(index, (32, 24)))

    info = probe_video(out_path)
    assert Fraction(info.fps).limit_denominator(2000) == Fraction(30000, 1001)


def test_writer_leaves_no_file_when_the_block_fails(tmp_path):
    out_path = tmp_path / "out.mp4"

    with pytest.raises(KeyError), AnnotatedVideoWriter(out_path, (32, 24), fps=10) as writer:
        writer.write(synthetic_frame(1, (32, 24)))
        raise KeyError("model crashed")

    assert list(tmp_path.iterdir()) == []


def test_writer_keeps_an_existing_file_when_the_block_fails(tmp_path):
    out_path = tmp_path / "out.mp4"
    out_path.write_bytes(b"previous result")

    with pytest.raises(RuntimeError), AnnotatedVideoWriter(out_path, (32, 24), fps=10) as writer:
        writer.write(synthetic_frame(1, (32, 24)))
        raise RuntimeError("interrupted")

    assert out_path.read_bytes() == b"previous result"
    assert [path.name for path in tmp_path.iterdir()] == ["out.mp4"]


def test_writer_replaces_an_existing_file_when_complete(tmp_path):
    out_path = tmp_path / "out.mp4"
    out_path.write_bytes(b"previous result")

    with AnnotatedVideoWriter(out_path, (32, 24), fps=10) as writer:
        writer.write(synthetic_frame(3, (32, 24)))

    assert probe_video(out_path).frame_count == 1


def test_writer_output_gets_ordinary_file_permissions(tmp_path):
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("made the usual way")

    with AnnotatedVideoWriter(tmp_path / "out.mp4", (32, 24), fps=10) as writer:
        writer.write(synthetic_frame(3, (32, 24)))

    assert (tmp_path / "out.mp4").stat().st_mode == ordinary.stat().st_mode


def test_writer_without_frames_is_an_error_and_leaves_nothing(tmp_path):
    with (
        pytest.raises(VgemError, match="no frames"),
        AnnotatedVideoWriter(tmp_path / "out.mp4", (32, 24), fps=10),
    ):
        pass

    assert list(tmp_path.iterdir()) == []


def test_writer_into_a_missing_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        AnnotatedVideoWriter(tmp_path / "nowhere" / "out.mp4", (32, 24), fps=10).__enter__()


def test_writer_rejects_a_frame_of_the_wrong_size(tmp_path):
    with (
        pytest.raises(ValueError, match="32x24"),
        AnnotatedVideoWriter(tmp_path / "out.mp4", (32, 24), fps=10) as writer,
    ):
        writer.write(synthetic_frame(1, (24, 32)))

    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- annotated video


def test_write_annotated_video_keeps_the_source_and_draws_overlays(tmp_path):
    source = probe_video(write_video(tmp_path / "source.mp4", 20, size=(64, 48), fps=8))
    out_path = tmp_path / "annotated.mp4"
    progress_calls = []
    point = (15.0, 35.0, "hand")

    def overlay_for_frame(index: int) -> FrameOverlay | None:
        if index != 5:
            return None
        return FrameOverlay(heatmap=np.zeros((2, 2)), points=[point], title="frame 5")

    write_annotated_video(source, out_path, overlay_for_frame, progress_calls.append)

    written = probe_video(out_path)
    _, frames = _read_back(out_path)
    assert (written.frame_count, written.width, written.height) == (20, 64, 48)
    assert written.fps == pytest.approx(8.0)
    assert progress_calls == list(range(1, 21))
    assert frame_index_from_pixels(frames[4]) == 4  # untouched frames survive
    assert np.abs(frames[5][35, 15].astype(int) - 255).max() < 40  # the white marker
    assert np.abs(frames[4][35, 15].astype(int) - (0, 0, 96)).max() < 40
    assert sorted(path.name for path in tmp_path.iterdir()) == ["annotated.mp4", "source.mp4"]


def test_write_annotated_video_leaves_nothing_when_an_overlay_fails(tmp_path):
    source = probe_video(write_video(tmp_path / "source.mp4", 10, size=(32, 24)))

    def failing_overlay(index: int) -> FrameOverlay | None:
        if index == 6:
            raise RuntimeError("heatmap missing")
        return None

    with pytest.raises(RuntimeError, match="heatmap missing"):
        write_annotated_video(source, tmp_path / "out.mp4", failing_overlay)

    assert [path.name for path in tmp_path.iterdir()] == ["source.mp4"]


def test_write_annotated_video_from_an_odd_sized_frame_folder(tmp_path):
    write_frame_folder(tmp_path / "frames", 6, size=(45, 31))
    source = probe_video(tmp_path / "frames", source_fps=3.0)

    write_annotated_video(source, tmp_path / "out.mp4", lambda index: None)

    written = probe_video(tmp_path / "out.mp4")
    assert (written.frame_count, written.width, written.height) == (6, 45, 31)
    assert written.fps == pytest.approx(3.0)
