"""The annotated video of several queries: one colour each, a legend, labels inside,
readable from 320 x 180 to 1080p, and no stale overlay far from a grounded time."""

from __future__ import annotations

import numpy as np
import pytest

from tests.synth import write_video
from vgem.annotate import write_annotated_video
from vgem.render import QUERY_COLOURS, query_colour
from vgem.results import GroundedTime, GroundingResult, QueryResult
from vgem.video import probe_video

QUERIES = ("cut onion", "stir the soup in the pot", "pour water")
# where each query points, as fractions of the frame (the last one near the right edge)
PLACES = ((0.25, 0.62), (0.5, 0.35), (0.93, 0.72))
GRID = 7
GREY = 110


def _result(video, times: list[float]) -> GroundingResult:
    info = probe_video(video)
    similarity = np.zeros((len(times), len(QUERIES), 3, GRID, GRID), dtype=np.float32)
    queries = []
    for q, (fx, fy) in enumerate(PLACES):
        row, column = min(GRID - 1, int(fy * GRID)), min(GRID - 1, int(fx * GRID))
        similarity[:, q, :, row, column] = 1.0
        entries = [
            GroundedTime(
                time=t,
                frame=round(t * info.fps),
                point=(fx * (info.width - 1), fy * (info.height - 1)),
                model_point=(0, 0),
                prompt_points={},
                score=0.3,
            )
            for t in times
        ]
        queries.append(QueryResult(QUERIES[q], {}, "label", entries))
    return GroundingResult(
        video=info,
        backbone="test",
        weights="none",
        input_size=GRID * 8,
        settings={"prompts": "decomposed"},
        queries=queries,
        times=np.asarray(times),
        frames=np.asarray([round(t * info.fps) for t in times]),
        similarity=similarity,
    )


def _decoded(path) -> list[np.ndarray]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return [np.frombuffer(raw, np.uint8).reshape(height, width, 3).astype(int) for raw in reader]


def _nearest_colour(pixel: np.ndarray) -> int:
    return int(np.argmin([np.abs(pixel - np.array(colour)).sum() for colour in QUERY_COLOURS]))


def _colour_pixels(region: np.ndarray, colour: tuple[int, int, int], tolerance: int = 60) -> int:
    return int((np.abs(region - np.array(colour)).max(axis=-1) < tolerance).sum())


@pytest.mark.parametrize("size", [(320, 180), (1920, 1080)])
def test_each_query_keeps_its_colour_with_a_legend_and_labels_inside(tmp_path, size):
    width, height = size
    frames = [np.full((height, width, 3), GREY, dtype=np.uint8)] * 6
    video = write_video(tmp_path / "grey.mp4", frames, size=size, fps=2)  # 3 s
    output = tmp_path / "annotated.mp4"
    write_annotated_video(_result(video, [0.0, 1.0, 2.0]), output)
    decoded = _decoded(output)
    assert len(decoded) == 6 and decoded[0].shape == (height, width, 3)
    frame = decoded[2]  # 1.0 s, a grounded time
    if size == (1920, 1080):
        from PIL import Image

        Image.fromarray(frame.astype(np.uint8)).save(tmp_path / "frame.png")
    for q, (fx, fy) in enumerate(PLACES):
        x, y = round(fx * (width - 1)), round(fy * (height - 1))
        # the point is drawn in its query's colour
        assert _nearest_colour(frame[y, x]) == q, (q, frame[y, x])
        assert np.abs(frame[y, x] - np.array(query_colour(q))).max() < 70
    # the legend, top left: a line per query in its colour, under the title
    legend = frame[: height // 2, : width // 2]
    for q in range(len(QUERIES)):
        assert _colour_pixels(legend, query_colour(q)) > (width * height) / 20_000, q
    # the label of the point near the right edge is drawn to its left, inside the frame
    fx, fy = PLACES[2]
    x, y = round(fx * (width - 1)), round(fy * (height - 1))
    radius = max(3.0, min(width, height) / 40.0)
    band = frame[max(0, y - int(2 * radius)) : y + int(radius), :]
    left_of_point = band[:, : max(1, x - int(2 * radius))]
    assert _colour_pixels(left_of_point, query_colour(2)) > (width * height) / 50_000
    # every query's own region is outlined in its colour (no maximum over queries)
    for q, (fx, fy) in enumerate(PLACES):
        cx, cy = round(fx * (width - 1)), round(fy * (height - 1))
        around = frame[
            max(0, cy - height // 6) : cy + height // 6, max(0, cx - width // 6) : cx + width // 6
        ]
        assert _colour_pixels(around, query_colour(q)) > 0


def test_a_frame_far_from_every_grounded_time_has_no_stale_overlay(tmp_path):
    width, height = 320, 180
    frames = [np.full((height, width, 3), GREY, dtype=np.uint8)] * 8
    video = write_video(tmp_path / "grey.mp4", frames, size=(width, height), fps=2)  # 4 s
    output = tmp_path / "annotated.mp4"
    write_annotated_video(_result(video, [0.5, 1.0]), output)  # grounded at 0.5 s and 1 s
    decoded = _decoded(output)
    near, far = decoded[2], decoded[6]  # 1.0 s (grounded), 3.0 s (2 s from any grounded time)
    for q, (fx, fy) in enumerate(PLACES):
        x, y = round(fx * (width - 1)), round(fy * (height - 1))
        assert _nearest_colour(near[y, x]) == q
        assert np.abs(far[y, x] - GREY).max() < 12  # no point, no region
    bottom_right = far[height // 2 :, width // 2 :]
    assert np.abs(bottom_right - GREY).max() < 12  # nothing but grey there
    legend = far[: height // 2, : width // 2]
    assert all(_colour_pixels(legend, query_colour(q)) > 3 for q in range(len(QUERIES)))


def test_the_legend_names_the_grounded_time_a_frame_shows(tmp_path):
    from vgem.annotate import overlay_source

    frames = [np.full((180, 320, 3), GREY, dtype=np.uint8)] * 20
    video = write_video(tmp_path / "grey.mp4", frames, size=(320, 180), fps=10)  # 0..1.9 s
    overlay = overlay_source(_result(video, [0.5, 1.0]))
    # the frame at 0.4 s shows the overlay of the time grounded at 0.5 s: the legend says
    # so, not "t = 0.40 s", which reads like the playback clock
    assert overlay(4).title == "grounded at 0.50 s"
    assert overlay(11).title == "grounded at 1.00 s"
