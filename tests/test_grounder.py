"""End to end through the Grounder: points in original pixels, outputs, one pass per clip."""

from __future__ import annotations

import json

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from tests.planted import INPUT_SIZE, PlantedAdapter, patch_centre_pixels, planted_frame
from tests.synth import write_video
from vgem.grounder import Grounder
from vgem.heatmaps import to_original_pixels
from vgem.outputs import write_json, write_npz
from vgem.results import SCHEMA, to_json_dict

# (patch row, patch column) of the bright square in successive frames
PLANTS = [(2, 5), (5, 1), (3, 3), (6, 6), (1, 2), (4, 6)]


def _planted_frames(width, height):
    return [planted_frame(width, height, row, column) for row, column in PLANTS]


def _video(tmp_path, width=96, height=64):
    frames = _planted_frames(width, height)
    return write_video(tmp_path / "planted.mp4", frames, size=(width, height), fps=2)


def _grounder(**settings):
    return Grounder(adapter=PlantedAdapter(), depth=4, extractor="label", **settings)


def _check_points(result, width, height, frames_per_time):
    for entry, frame in zip(result.queries[0].times, frames_per_time, strict=True):
        row, column = PLANTS[frame]
        xs, ys = patch_centre_pixels(row, column)
        model_x, model_y = entry.model_point
        assert model_x in xs and model_y in ys, (entry.time, entry.model_point, PLANTS[frame])
        expected = to_original_pixels((model_x, model_y), INPUT_SIZE, (width, height))
        assert entry.point == pytest.approx(expected)
        # the point lies inside the planted square of the original frame
        assert column * width / 8 <= entry.point[0] <= (column + 1) * width / 8
        assert row * height / 8 <= entry.point[1] <= (row + 1) * height / 8


@pytest.mark.parametrize("size", [(160, 90), (90, 160), (101, 57), (64, 64)])
def test_points_land_in_original_pixels_for_video_files(tmp_path, size):
    width, height = size
    video = write_video(tmp_path / "planted.mp4", _planted_frames(width, height), size=size, fps=2)
    result = _grounder().ground(video, "cut onion", fps=1)
    assert list(result.frames) == [0, 2, 4]
    assert (result.video.width, result.video.height) == size
    _check_points(result, width, height, [0, 2, 4])


@pytest.mark.parametrize("size", [(120, 48), (40, 100)])
def test_points_land_in_original_pixels_for_frame_folders(tmp_path, size):
    from PIL import Image

    width, height = size
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(_planted_frames(width, height)):
        Image.fromarray(frame).save(folder / f"img_{index + 1}.png")
    result = _grounder().ground(folder, "cut onion", every_frame=True, source_fps=4)
    assert list(result.frames) == list(range(len(PLANTS)))
    assert list(result.times) == pytest.approx([i / 4 for i in range(len(PLANTS))])
    _check_points(result, width, height, list(range(len(PLANTS))))


def test_explicit_times_pick_the_frame_shown_then(tmp_path):
    video = _video(tmp_path)
    result = _grounder().ground(video, "cut onion", at=[2.9, 0.4, 1.5])
    assert list(result.frames) == [5, 0, 3]
    _check_points(result, 96, 64, [5, 0, 3])


def test_json_document(tmp_path):
    video = _video(tmp_path)
    result = _grounder().ground(video, ["cut_onion", "BrushingTeeth"], fps=1)
    path = write_json(result, tmp_path / "out" / "result.json")
    document = json.loads(path.read_text())
    assert document["schema"] == SCHEMA
    assert document["video"] == {
        "path": str(video),
        "fps": 2.0,
        "frame_count": 6,
        "width": 96,
        "height": 64,
        "duration": 3.0,
        "is_frame_folder": False,
    }
    assert document["backbone"] == {"name": "planted", "weights": "planted"}
    settings = document["settings"]
    assert settings["weighting"] == "combined" and settings["depth"] == 4
    assert settings["video_attention"] == "joint"
    assert settings["templates"]["verb"] == "A photo of a person {} something."
    first, second = document["queries"]
    assert first["query"] == "cut_onion"
    assert first["prompts"] == {
        "verb": "A photo of a person cut something.",
        "object": "A photo of a person using onion.",
        "action": "A photo of a person cut onion.",
    }
    assert second["prompts"]["object"] == "A photo of a person using Teeth."
    assert [entry["time"] for entry in first["times"]] == [0.0, 1.0, 2.0]
    entry = first["times"][1]
    assert set(entry) == {
        *("time", "frame", "point", "model_point", "prompt_points", "score"),
        *("box", "box_score"),  # the region around the point (vgem.regions)
    }
    for timed in first["times"] + second["times"]:
        (x, y), (x1, y1, x2, y2) = timed["point"], timed["box"]
        assert 0 <= x1 <= x <= x2 <= 96 and 0 <= y1 <= y <= y2 <= 64
        assert 0 < timed["box_score"] <= 1
    assert set(entry["prompt_points"]) == {"verb", "object", "action"}
    assert entry["frame"] == 2
    assert entry["score"] == pytest.approx(1.0)  # planted class token equals the text


def test_npz_holds_raw_maps_in_documented_order(tmp_path):
    video = _video(tmp_path)
    result = _grounder().ground(video, ["cut onion", "stir soup"], fps=1)
    path = write_npz(result, tmp_path / "maps.npz")
    with np.load(path) as stored:
        assert stored["similarity"].shape == (3, 2, 3, 8, 8)
        assert stored["similarity"].dtype == np.float32
        assert list(stored["prompts"]) == ["verb", "object", "action"]
        np.testing.assert_array_equal(stored["frames"], [0, 2, 4])
        row, column = PLANTS[2]
        raw = stored["similarity"][1, 0, 2]
        assert np.unravel_index(raw.argmax(), raw.shape) == (row, column)
        np.testing.assert_allclose(stored["points"][:, 0], result.points[:, 0])


def test_one_visual_pass_per_clip_for_all_prompts(tmp_path):
    video = _video(tmp_path)
    adapter = PlantedAdapter()
    calls = []
    original_embed = adapter.embed
    adapter.embed = lambda clip: calls.append(clip.shape[0]) or original_embed(clip)
    grounder = Grounder(adapter=adapter, depth=4, extractor="label", batch_size=2)
    grounder.ground(video, ["cut onion", "stir soup", "open_door"], every_frame=True)
    assert calls == [2, 2, 2]  # six clips, two per pass, three queries × three prompts each


def test_text_embeddings_are_cached_per_prompt(tmp_path):
    video = _video(tmp_path)
    adapter = PlantedAdapter()
    encoded = []
    original = adapter.encode_text
    adapter.encode_text = lambda texts: encoded.extend(texts) or original(texts)
    grounder = _grounder_with(adapter)
    grounder.ground(video, ["cut onion", "cut bread"], fps=1)
    grounder.ground(video, ["cut onion"], fps=1)
    assert sorted(encoded) == sorted(
        {
            "A photo of a person cut something.",
            "A photo of a person using onion.",
            "A photo of a person using bread.",
            "A photo of a person cut onion.",
            "A photo of a person cut bread.",
        }
    )


def _grounder_with(adapter):
    return Grounder(adapter=adapter, depth=4, extractor="label")


def test_progress_is_reported(tmp_path):
    video = _video(tmp_path)
    seen = []
    _grounder(batch_size=4).ground(
        video, "cut onion", every_frame=True, progress=lambda d, t: seen.append((d, t))
    )
    assert seen == [(0, 6), (4, 6), (6, 6)]


def test_prompt_modes_pick_their_prompt(tmp_path):
    grounder = _grounder(prompts="action")
    pixels = torch.zeros(1, 1, 3, INPUT_SIZE, INPUT_SIZE)
    pixels[..., 40:48, 8:16] = 1.0  # patch row 5, column 1
    grounding = grounder.ground_pixels(pixels, ["cut onion"])
    assert grounding.points[0][0] == tuple(grounding.prompt_points[0, 0, 2].tolist())
    xs, ys = patch_centre_pixels(5, 1)
    assert grounding.points[0][0][0] in xs and grounding.points[0][0][1] in ys


def test_annotated_video_keeps_frames_size_and_rate(tmp_path):
    from vgem.annotate import write_annotated_video

    video = _video(tmp_path, 101, 57)
    result = _grounder().ground(video, "cut onion", fps=1)
    output = tmp_path / "annotated.mp4"
    write_annotated_video(result, output)
    reader = imageio_ffmpeg.read_frames(str(output))
    meta = next(reader)
    frames = list(reader)
    assert meta["size"] == (101, 57)
    assert meta["fps"] == pytest.approx(2.0)
    assert len(frames) == 6


def test_json_dict_round_trips_through_json(tmp_path):
    video = _video(tmp_path)
    result = _grounder().ground(video, "cut onion", at=[1.0])
    document = to_json_dict(result)
    assert json.loads(json.dumps(document)) == document
