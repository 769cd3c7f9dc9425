"""Boxes and masks around each point, and steadier tracks (vgem.regions, ``smooth``)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.planted import INPUT_SIZE, PATCH, PlantedAdapter
from tests.synth import write_video
from vgem.errors import SettingsError
from vgem.grounder import Grounder
from vgem.regions import (
    box_in_original_pixels,
    combined_heatmap,
    pack_masks,
    region_around,
    unpack_masks,
)


def _blob(size: int, centre: tuple[int, int], radius: int, value: float) -> np.ndarray:
    rows, columns = np.mgrid[:size, :size]
    heat = np.zeros((size, size), np.float32)
    heat[(columns - centre[0]) ** 2 + (rows - centre[1]) ** 2 <= radius**2] = value
    return heat


def test_the_region_is_the_connected_part_holding_the_point():
    heat = np.maximum(_blob(64, (16, 16), 5, 1.0), _blob(64, (48, 40), 6, 0.9))
    region = region_around(heat, (16, 16), threshold=0.5)
    assert region.box == (11, 11, 21, 21)  # the first blob only, not the second
    assert region.mask.sum() == (_blob(64, (16, 16), 5, 1.0) > 0).sum()
    assert region.score == pytest.approx(1.0)
    other = region_around(heat, (48, 40), threshold=0.5)
    assert other.box == (42, 34, 54, 46)


def test_a_point_below_the_threshold_takes_the_nearest_part_and_stays_inside():
    heat = np.maximum(_blob(64, (16, 16), 4, 1.0), _blob(64, (50, 50), 4, 1.0))
    region = region_around(heat, (24, 16))  # right of the first blob, below the threshold
    x1, y1, x2, y2 = region.box
    assert (x1, y1, y2) == (12, 12, 20) and x2 == 24  # widened to hold the point
    assert region.mask[16, 24] and not region.mask[50, 50]


def test_a_flat_map_gives_the_point_alone():
    region = region_around(np.zeros((8, 8), np.float32), (3, 5))
    assert region.box == (3, 5, 3, 5) and region.mask.sum() == 1


def test_the_threshold_decides_the_extent():
    rows, columns = np.mgrid[:64, :64]
    cone = np.clip(1 - np.hypot(columns - 32, rows - 32) / 32, 0, 1).astype(np.float32)
    tight = region_around(cone, (32, 32), threshold=0.8).box
    loose = region_around(cone, (32, 32), threshold=0.3).box
    assert loose[0] < tight[0] <= 32 <= tight[2] < loose[2]


def test_boxes_map_pixel_edges_to_the_original_frame():
    assert box_in_original_pixels((0, 0, 63, 63), 64, (320, 180)) == (0.0, 0.0, 320.0, 180.0)
    assert box_in_original_pixels((16, 8, 31, 15), 64, (128, 64)) == (32.0, 8.0, 64.0, 16.0)


def test_masks_pack_and_unpack_bit_for_bit():
    generator = np.random.default_rng(0)
    masks = generator.random((3, 2, 13, 13)) > 0.5
    packed = pack_masks(masks)
    assert packed.dtype == np.uint8 and packed.shape == (3, 2, (13 * 13 + 7) // 8)
    assert (unpack_masks(packed, (13, 13)) == masks).all()


def test_the_combined_map_mixes_the_prompts_as_the_point_does():
    maps = np.stack([np.full((4, 4), value, np.float32) for value in (0.0, 1.0, 0.5)])
    assert combined_heatmap(maps, "decomposed")[0, 0] == pytest.approx((0 + 1 + 1.5) / 5)
    assert combined_heatmap(maps, "object")[0, 0] == 1.0


# --------------------------------------------------------------------------- on a video

SIZE = 128  # two video pixels per model-input pixel
PIXELS = SIZE // INPUT_SIZE


def _moving_patch_video(tmp_path, *, frames: int, noise: bool, seed: int = 0):
    """A bright patch moving right along row 4 (column = path(t)), and, with ``noise``,
    a brighter distractor patch somewhere else in many frames."""
    generator = np.random.default_rng(seed)
    columns = np.linspace(1, 6, frames)
    video_frames = []
    for index in range(frames):
        frame = np.full((SIZE, SIZE, 3), 20, np.uint8)
        column = int(np.rint(columns[index]))
        frame[4 * PATCH * PIXELS : 5 * PATCH * PIXELS, column * PATCH * PIXELS :][
            :, : PATCH * PIXELS
        ] = 200
        if noise and generator.random() < 0.45:
            row, other = generator.integers(0, 8, size=2)
            if row != 4:
                y, x = row * PATCH * PIXELS, other * PATCH * PIXELS
                frame[y : y + PATCH * PIXELS, x : x + PATCH * PIXELS] = 235
        video_frames.append(frame)
    path = write_video(tmp_path / "moving.mp4", video_frames, size=(SIZE, SIZE), fps=4)
    centres = [((column + 0.5) * PATCH * PIXELS, 4.5 * PATCH * PIXELS) for column in columns]
    return path, centres


def _grounder():
    return Grounder(adapter=PlantedAdapter(), depth=4, extractor="label")


def test_every_time_has_a_box_inside_the_frame_holding_its_point(tmp_path):
    video, _ = _moving_patch_video(tmp_path, frames=8, noise=False)
    result = _grounder().ground(video, ["cut onion", "stir soup"], every_frame=True, masks=True)
    masks = result.region_masks()
    assert masks is not None and masks.shape == (8, 2, INPUT_SIZE, INPUT_SIZE)
    for q, query in enumerate(result.queries):
        for t, entry in enumerate(query.times):
            x1, y1, x2, y2 = entry.box
            x, y = entry.point
            assert 0 <= x1 <= x <= x2 <= SIZE and 0 <= y1 <= y <= y2 <= SIZE
            mx, my = entry.model_point
            assert masks[t, q, my, mx]  # the mask holds the point
            # the box is the planted patch: one patch of the model input
            assert (x2 - x1, y2 - y1) == pytest.approx((PATCH * PIXELS, PATCH * PIXELS), abs=8)


def test_smoothing_keeps_a_noisy_track_closer_to_its_path(tmp_path):
    video, centres = _moving_patch_video(tmp_path, frames=40, noise=True)
    grounder = _grounder()

    def distance(result) -> float:
        points = np.array([entry.point for entry in result.queries[0].times])
        return float(np.mean(np.hypot(*(points - np.array(centres)).T)))

    raw = grounder.ground(video, ["cut onion"], every_frame=True)
    smoothed = grounder.ground(video, ["cut onion"], every_frame=True, smooth=1.0)
    assert distance(smoothed) < 0.5 * distance(raw)
    assert smoothed.settings["smooth"] == 1.0 and "smooth" not in raw.settings
    # the raw maps are what they were; only points and boxes come from the smoothed maps
    assert np.array_equal(smoothed.similarity, raw.similarity)


@pytest.mark.parametrize(
    ("options", "setting"),
    [({"smooth": -1.0}, "smooth"), ({"smooth": float("nan")}, "smooth"),
     ({"box_threshold": 0.0}, "box_threshold"), ({"box_threshold": 1.5}, "box_threshold")],
)  # fmt: skip
def test_bad_region_options_are_refused(tmp_path, options, setting):
    video, _ = _moving_patch_video(tmp_path, frames=2, noise=False)
    with pytest.raises(SettingsError) as refused:
        _grounder().ground(video, ["cut onion"], **options)
    assert refused.value.settings == (setting,)


def test_on_a_frame_smaller_than_the_model_input_the_box_still_holds_its_point():
    from vgem.heatmaps import to_original_pixels

    # 100 x 60 frame, 224 model input: a point sits up to half a video pixel left of (or
    # above) its model pixel's edges, e.g. model pixel (5, 3) -> (1.96, 0.44) and its left
    # edge at 2.23; the box is widened to hold it, and stays in the frame
    for model_point in [(1, 1), (5, 3), (223, 223)]:
        point = to_original_pixels(model_point, 224, (100, 60))
        box = box_in_original_pixels((*model_point, *model_point), 224, (100, 60), point)
        x1, y1, x2, y2 = box
        assert 0 <= x1 <= x2 <= 100 and 0 <= y1 <= y2 <= 60
        if 0 <= point[0] <= 100 and 0 <= point[1] <= 60:
            assert x1 <= point[0] <= x2 and y1 <= point[1] <= y2


def test_times_showing_the_same_clip_share_its_masks(tmp_path):
    video, _ = _moving_patch_video(tmp_path, frames=8, noise=False)
    # 0.0 and 0.01 s show the same frames (4 fps): one clip, two grounded times
    result = _grounder().ground(video, ["cut onion"], at=[0.0, 0.01, 1.0], masks=True)
    masks = result.region_masks()
    assert masks is not None and masks[0].any() and masks[1].any()
    assert np.array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[0], masks[2])  # the patch has moved by 1 s
