"""vgem.video: probing, the time ↔ frame rules, clips and streaming decode."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import weakref

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

import vgem.video.decode
from tests.synth import (
    ffmpeg_child_pids,
    frame_index_from_pixels,
    synthetic_frame,
    truncate_file,
    write_frame_folder,
    write_frameless_mp4,
    write_video,
)
from vgem.errors import InputError, SettingsError
from vgem.video import (
    VideoInfo,
    clip_frame_indices,
    clip_to_tensor,
    frame_index_at,
    grounded_times,
    iter_clips,
    iter_frames,
    iter_full_frames,
    probe_video,
    time_of_frame,
)

FPS = 10.0
FRAME_COUNT = 40


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory):
    """One small video per shape, shared by the tests that only read them."""
    folder = tmp_path_factory.mktemp("media")
    return {
        size: write_video(folder / f"v{size[0]}x{size[1]}.mp4", FRAME_COUNT, size=size, fps=FPS)
        for size in [(160, 90), (90, 160), (101, 57)]
    }


@pytest.fixture(scope="module")
def landscape(media) -> VideoInfo:
    return probe_video(media[(160, 90)])


def _info(frame_count: int = FRAME_COUNT, fps: float = FPS) -> VideoInfo:
    return VideoInfo(
        path="made-up.mp4",
        fps=fps,
        frame_count=frame_count,
        width=64,
        height=48,
        duration=frame_count / fps,
        is_frame_folder=False,
    )


def _run_ffmpeg(*arguments: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", *arguments], check=True)


def _decode_thread_alive() -> bool:
    return any(thread.name == "vgem-decode" for thread in threading.enumerate())


# --------------------------------------------------------------------------- probing


@pytest.mark.parametrize("size", [(160, 90), (90, 160), (101, 57)])
def test_probe_reads_size_rate_and_count_of_a_file(media, size):
    info = probe_video(media[size])

    assert (info.width, info.height) == size
    assert info.fps == pytest.approx(FPS)
    assert info.frame_count == FRAME_COUNT
    assert info.duration == pytest.approx(FRAME_COUNT / FPS)
    assert not info.is_frame_folder


@pytest.mark.parametrize("suffix", [".mkv", ".avi"])
def test_probe_and_decode_other_containers(tmp_path, suffix):
    path = write_video(tmp_path / f"clip{suffix}", 12, size=(64, 48), fps=5)

    info = probe_video(path)
    decoded = dict(iter_frames(info, [0, 11], None))

    assert (info.frame_count, info.fps, info.width, info.height) == (12, 5.0, 64, 48)
    assert {index: frame_index_from_pixels(frame) for index, frame in decoded.items()} == {
        0: 0,
        11: 11,
    }


def test_probe_of_a_rotated_video_reports_the_displayed_size(media, tmp_path):
    rotated = tmp_path / "rotated.mp4"
    _run_ffmpeg("-display_rotation", "90", "-i", str(media[(160, 90)]), "-c", "copy", str(rotated))

    info = probe_video(rotated)
    _, first_frame = next(iter(iter_frames(info, [0], None)))

    assert (info.width, info.height) == (90, 160)
    assert first_frame.shape == (160, 90, 3)


def test_probe_of_a_folder_sorts_frames_naturally(tmp_path):
    write_frame_folder(tmp_path / "frames", 12, size=(64, 48))

    info = probe_video(tmp_path / "frames", source_fps=4.0)
    decoded = [frame_index_from_pixels(frame) for _, frame in iter_full_frames(info)]

    assert (info.frame_count, info.fps, info.duration) == (12, 4.0, 3.0)
    assert (info.width, info.height, info.is_frame_folder) == (64, 48, True)
    assert decoded == list(range(12))  # a naive sort would put frame_10 second


def test_a_variable_rate_file_yields_each_stored_frame_once(tmp_path):
    # 20 frames at 10 fps with a one-second pause after the tenth: nothing may
    # be duplicated to fill the pause, or every later index would shift.
    pause_after_ten = ["-vf", "setpts='(N+if(gte(N,10),10,0))/10/TB'", "-fps_mode", "vfr"]
    path = write_video(tmp_path / "gap.mkv", 20, fps=10, output_params=pause_after_ten)

    info = probe_video(path)
    decoded = [frame_index_from_pixels(frame) for _, frame in iter_full_frames(info)]

    assert info.frame_count == 20
    assert info.duration == pytest.approx(3.0)  # the mean rate keeps the length right
    assert decoded == list(range(20))


def test_a_file_trimmed_without_reencoding_counts_only_the_frames_it_shows(media, tmp_path):
    trimmed = tmp_path / "trimmed.mp4"
    # Cutting a stream copy mid-GOP leaves hidden lead-in frames behind an edit list.
    _run_ffmpeg("-ss", "1.55", "-i", str(media[(160, 90)]), "-c", "copy", str(trimmed))

    info = probe_video(trimmed)
    decoded = [frame_index_from_pixels(frame) for _, frame in iter_full_frames(info)]

    assert info.frame_count == len(decoded) < FRAME_COUNT
    assert decoded == list(range(decoded[0], FRAME_COUNT))
    assert decoded[0] > 0


@pytest.mark.parametrize(
    ("make_input", "message_part"),
    [
        (lambda folder: folder / "missing.mp4", "no such file"),
        (lambda folder: _text_file(folder / "notes.mp4"), "not a video"),
        (lambda folder: write_video(folder / "empty.mp4", 0), "no video stream"),
        (lambda folder: write_frameless_mp4(folder / "frameless.mp4"), "no frames"),
        (lambda folder: _truncated_without_index(folder / "cut.mp4"), "not a video"),
        (lambda folder: _empty_folder(folder / "no-images"), "no image frames"),
    ],
    ids=["missing", "text-as-mp4", "empty-container", "frameless", "cut-before-index", "folder"],
)
def test_probe_rejects_unusable_input_with_one_line(tmp_path, make_input, message_part):
    path = make_input(tmp_path)

    with pytest.raises(InputError) as raised:
        probe_video(path)

    message = str(raised.value)
    assert message_part in message
    assert str(path) in message
    assert "\n" not in message


def _text_file(path):
    path.write_text("this is not a video\n")
    return path


def _truncated_without_index(path):
    write_video(path, 20, faststart=False)  # the index is written last
    truncate_file(path, 0.5)
    return path


def _empty_folder(path):
    path.mkdir()
    (path / "readme.txt").write_text("no frames here")
    return path


def test_probe_rejects_a_non_positive_folder_rate(tmp_path):
    write_frame_folder(tmp_path, 2)

    with pytest.raises(SettingsError):
        probe_video(tmp_path, source_fps=0)


def test_an_undecodable_folder_image_fails_when_read_and_reaches_the_consumer(tmp_path):
    write_frame_folder(tmp_path, 4)
    (tmp_path / "frame_3.png").write_bytes(b"not a png")
    info = probe_video(tmp_path)
    received = []

    with pytest.raises(InputError, match=r"frame_3\.png"):
        for index, _ in iter_frames(info, range(4), None):
            received.append(index)

    assert received == [0, 1]
    assert not _decode_thread_alive()


def test_a_folder_image_of_another_size_is_rejected(tmp_path):
    write_frame_folder(tmp_path, 3, size=(64, 48))
    Image.fromarray(synthetic_frame(1, (32, 24))).save(tmp_path / "frame_2.png")
    info = probe_video(tmp_path)

    with pytest.raises(InputError, match="one size"):
        list(iter_frames(info, range(3), None))


# --------------------------------------------------------------------------- truncated files


@pytest.fixture(scope="module")
def truncated(tmp_path_factory: pytest.TempPathFactory) -> VideoInfo:
    folder = tmp_path_factory.mktemp("truncated")
    path = write_video(folder / "cut.mp4", FRAME_COUNT, size=(160, 90), fps=FPS)
    truncate_file(path, 0.5)
    return probe_video(path, allow_truncated=True)


def test_a_truncated_file_is_refused_unless_allowed(truncated):
    with pytest.raises(InputError, match=r"is truncated.*-c copy"):
        probe_video(truncated.path)


def test_a_truncated_file_counts_and_decodes_the_frames_it_still_has(truncated):
    decoded = [frame_index_from_pixels(frame) for _, frame in iter_full_frames(truncated)]

    assert 5 < truncated.frame_count < FRAME_COUNT
    assert decoded == list(range(truncated.frame_count))  # the cut-off last frame is not counted


def test_a_frame_past_the_real_end_is_an_input_error_naming_frame_and_video(truncated):
    claims_all = dataclasses.replace(truncated, frame_count=FRAME_COUNT)

    with pytest.raises(InputError) as raised:
        list(iter_frames(claims_all, [0, FRAME_COUNT - 1], None))

    message = str(raised.value)
    assert f"frame {FRAME_COUNT - 1}" in message
    assert truncated.path in message
    assert "\n" not in message


def test_past_end_stop_yields_what_exists_then_ends(truncated):
    claims_all = dataclasses.replace(truncated, frame_count=FRAME_COUNT)

    decoded = list(iter_frames(claims_all, range(FRAME_COUNT), (32, 24), past_end="stop"))

    assert 5 < len(decoded) < FRAME_COUNT
    assert [index for index, _ in decoded] == list(range(len(decoded)))
    assert [frame_index_from_pixels(frame) for _, frame in decoded] == list(range(len(decoded)))


# --------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("time", "index"),
    [(0.0, 0), (0.099, 0), (0.1, 1), (1.25, 12), (3.95, 39), (4.0, 39), (60.0, 39), (-2.0, 0)],
)
def test_frame_index_at_uses_display_intervals_and_clamps(time, index):
    assert frame_index_at(_info(), time) == index


@pytest.mark.parametrize("fps", [10.0, 25.0, 30000 / 1001, 24000 / 1001])
def test_time_of_frame_and_frame_index_at_round_trip(fps):
    info = _info(frame_count=5000, fps=fps)

    assert all(frame_index_at(info, time_of_frame(info, index)) == index for index in range(5000))


def test_time_of_frame_clamps_the_index():
    info = _info()

    assert time_of_frame(info, 7) == pytest.approx(0.7)
    assert time_of_frame(info, -3) == 0.0
    assert time_of_frame(info, 99) == pytest.approx(3.9)


@pytest.mark.parametrize(
    ("frame_count", "options", "expected"),
    [
        (40, {}, [0.0, 1.0, 2.0, 3.0]),
        (25, {}, [0.0, 1.0, 2.0]),
        (20, {"fps": 2.5}, [0.0, 0.4, 0.8, 1.2, 1.6]),
        (5, {"every_frame": True}, [0.0, 0.1, 0.2, 0.3, 0.4]),
        (40, {"at": [3.5, 0.0, 4.0]}, [3.5, 0.0, 4.0]),
    ],
    ids=["default-1fps", "partial-last-second", "fps", "every-frame", "at-in-given-order"],
)
def test_grounded_times(frame_count, options, expected):
    assert grounded_times(_info(frame_count), **options) == pytest.approx(expected)


@pytest.mark.parametrize("bad_time", [4.01, 100.0, -0.5, float("nan")])
def test_grounded_times_rejects_a_time_outside_the_video(bad_time):
    with pytest.raises(InputError) as raised:
        grounded_times(_info(), at=[1.0, bad_time])

    message = str(raised.value)
    assert str(bad_time) in message
    assert "4.000" in message  # the duration


def test_grounded_times_rejects_an_empty_list_of_times():
    with pytest.raises(InputError, match="no times"):
        grounded_times(_info(), at=[])


@pytest.mark.parametrize(
    "options",
    [{"fps": 2.0, "at": [1.0]}, {"fps": 2.0, "every_frame": True}, {"fps": 0.0}, {"fps": -1.0}],
)
def test_grounded_times_rejects_conflicting_or_bad_settings(options):
    with pytest.raises(SettingsError):
        grounded_times(_info(), **options)


# --------------------------------------------------------------------------- clips

VIDEO_CLIP = {"frames_per_clip": 8, "target_index": 4, "step": 0.25}


@pytest.mark.parametrize(
    ("target_time", "expected"),
    [
        (2.0, [10, 12, 15, 17, 20, 22, 25, 27]),
        (0.3, [0, 0, 0, 0, 3, 5, 8, 10]),
        (3.9, [29, 31, 34, 36, 39, 39, 39, 39]),
    ],
    ids=["middle", "start-clamped", "end-clamped"],
)
def test_clip_frame_indices_around_the_target(target_time, expected):
    assert clip_frame_indices(_info(), target_time, **VIDEO_CLIP) == expected


def test_clip_frame_indices_image_mode_repeats_the_target():
    assert clip_frame_indices(_info(), 2.0, **VIDEO_CLIP, image_mode=True) == [20] * 8


def test_clip_frame_indices_single_frame_is_the_target():
    indices = clip_frame_indices(_info(), 2.05, frames_per_clip=1, target_index=0, step=0.25)

    assert indices == [20]


@pytest.mark.parametrize(
    "options",
    [
        {"frames_per_clip": 0, "target_index": 0, "step": 0.25},
        {"frames_per_clip": 8, "target_index": 8, "step": 0.25},
        {"frames_per_clip": 8, "target_index": 4, "step": 0.0},
    ],
)
def test_clip_frame_indices_rejects_bad_clip_settings(options):
    with pytest.raises(SettingsError):
        clip_frame_indices(_info(), 1.0, **options)


# --------------------------------------------------------------------------- decoding


def test_iter_frames_yields_exactly_the_requested_frames_in_order(landscape):
    decoded = list(iter_frames(landscape, [15, 3, 7, 3, 0, 39], None))

    assert [index for index, _ in decoded] == [0, 3, 7, 15, 39]
    assert [frame_index_from_pixels(frame) for _, frame in decoded] == [0, 3, 7, 15, 39]
    assert all(frame.shape == (90, 160, 3) and frame.dtype == np.uint8 for _, frame in decoded)


@pytest.mark.parametrize("inline_limit", [16_000, 0], ids=["inline-filter", "filter-file"])
def test_iter_frames_picks_scattered_frames(landscape, monkeypatch, inline_limit):
    monkeypatch.setattr(vgem.video.decode, "_LONGEST_INLINE_FILTER", inline_limit)
    wanted = [1, 2, 3, 5, 8, 13, 14, 21, 30, 34, 35, 36]

    decoded = list(iter_frames(landscape, wanted, (32, 24)))

    assert [index for index, _ in decoded] == wanted
    assert [frame_index_from_pixels(frame) for _, frame in decoded] == wanted


def test_iter_frames_decodes_rgb_in_the_right_channel_order(landscape):
    _, frame = next(iter(iter_frames(landscape, [1], None)))  # bit 0 set: top-left cell

    assert frame[10, 10] == pytest.approx((255, 96, 0), abs=6)
    assert frame[80, 150] == pytest.approx((0, 0, 96), abs=6)


@pytest.mark.parametrize(
    ("source_size", "model_size"),
    [((160, 90), (32, 24)), ((90, 160), (40, 30)), ((101, 57), (224, 224))],
)
def test_iter_frames_scales_to_the_model_size(media, source_size, model_size):
    info = probe_video(media[source_size])

    decoded = list(iter_frames(info, [2, 33], model_size))

    assert all(frame.shape == (model_size[1], model_size[0], 3) for _, frame in decoded)
    assert [frame_index_from_pixels(frame) for _, frame in decoded] == [2, 33]


def test_ffmpeg_scaling_matches_pil_bicubic(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, size=(3, 48, 64, 3), dtype=np.uint8)
    info = probe_video(write_video(tmp_path / "noise.mkv", list(noise), size=(64, 48)))
    _, scaled = next(iter(iter_frames(info, [1], (24, 20))))
    _, full = next(iter(iter_frames(info, [1], None)))

    expected = np.asarray(Image.fromarray(full).resize((24, 20), Image.BICUBIC), dtype=float)
    nearest = np.asarray(Image.fromarray(full).resize((24, 20), Image.NEAREST), dtype=float)

    assert np.abs(scaled - expected).mean() < 3.0
    assert np.abs(nearest - expected).mean() > 10.0  # the check can tell kernels apart


def test_folder_frames_are_resized_with_pil_bicubic(tmp_path):
    write_frame_folder(tmp_path, 2, size=(64, 48))
    info = probe_video(tmp_path)

    _, scaled = next(iter(iter_frames(info, [1], (20, 30))))

    original = Image.open(tmp_path / "frame_2.png").convert("RGB")
    assert np.array_equal(scaled, np.asarray(original.resize((20, 30), Image.BICUBIC)))


def test_closing_iter_frames_early_ends_ffmpeg_and_the_decode_thread(landscape):
    frames = iter_frames(landscape, range(FRAME_COUNT), None, read_ahead=2)
    first_index, _ = next(frames)
    assert ffmpeg_child_pids()  # ffmpeg is still decoding the rest

    frames.close()

    assert first_index == 0
    assert ffmpeg_child_pids() == []
    assert not _decode_thread_alive()


def test_iter_frames_rejects_indices_outside_the_video(landscape):
    with pytest.raises(ValueError, match="frame indices"):
        iter_frames(landscape, [0, FRAME_COUNT], None)


def test_iter_full_frames_yields_every_frame_at_source_size(media):
    info = probe_video(media[(101, 57)])

    decoded = list(iter_full_frames(info))

    assert [index for index, _ in decoded] == list(range(FRAME_COUNT))
    assert [frame_index_from_pixels(frame) for _, frame in decoded] == list(range(FRAME_COUNT))
    assert {frame.shape for _, frame in decoded} == {(57, 101, 3)}


# --------------------------------------------------------------------------- clips from video


class _DecodeSpy:
    """Wraps iter_frames to count each frame handed out and watch which are still alive."""

    def __init__(self) -> None:
        self.pulled: list[int] = []
        self.alive: list[weakref.ref] = []
        self.real_iter_frames = vgem.video.iter_frames

    def __call__(self, *args, **kwargs):
        for index, frame in self.real_iter_frames(*args, **kwargs):
            self.pulled.append(index)
            self.alive.append(weakref.ref(frame))
            yield index, frame

    def frames_alive(self) -> int:
        return sum(reference() is not None for reference in self.alive)


@pytest.fixture
def decode_spy(monkeypatch) -> _DecodeSpy:
    spy = _DecodeSpy()
    monkeypatch.setattr(vgem.video.decode, "iter_frames", spy)
    return spy


def test_iter_clips_decodes_shared_frames_once_and_keeps_a_small_cache(landscape, decode_spy):
    targets = grounded_times(landscape, every_frame=True)
    clip_settings = {"frames_per_clip": 8, "target_index": 4, "step": 0.1}
    most_frames_alive = 0

    for position, clip in iter_clips(landscape, targets, size=(32, 24), **clip_settings):
        most_frames_alive = max(most_frames_alive, decode_spy.frames_alive())
        expected = clip_frame_indices(landscape, targets[position], **clip_settings)
        assert [frame_index_from_pixels(frame) for frame in clip] == expected

    assert decode_spy.pulled == list(range(FRAME_COUNT))  # each frame once, in order
    assert most_frames_alive <= 8  # only frames later clips still need


def test_iter_clips_orders_by_time_and_reports_positions(landscape):
    targets = [3.0, 0.5, 2.0]

    clips = list(iter_clips(landscape, targets, size=(32, 24), **VIDEO_CLIP))

    assert [position for position, _ in clips] == [1, 2, 0]
    for position, clip in clips:
        assert clip.shape == (8, 24, 32, 3)
        assert frame_index_from_pixels(clip[4]) == frame_index_at(landscape, targets[position])


def test_iter_clips_image_mode_decodes_only_targets(landscape, decode_spy):
    clips = list(iter_clips(landscape, [1.0, 2.0], size=None, **VIDEO_CLIP, image_mode=True))

    assert decode_spy.pulled == [10, 20]
    assert [[frame_index_from_pixels(frame) for frame in clip] for _, clip in clips] == [
        [10] * 8,
        [20] * 8,
    ]


def test_iter_clips_past_end_stop_ends_before_the_clips_a_truncated_file_lacks(truncated):
    claims_all = dataclasses.replace(truncated, frame_count=FRAME_COUNT)
    targets = [0.0, 0.5, 3.5]

    clips = list(iter_clips(claims_all, targets, size=(32, 24), **VIDEO_CLIP, past_end="stop"))

    assert [position for position, _ in clips] == [0, 1]
    with pytest.raises(InputError, match="cannot be decoded"):
        list(iter_clips(claims_all, targets, size=(32, 24), **VIDEO_CLIP))


def test_clip_to_tensor_normalizes_channels_first():
    clip = np.zeros((2, 3, 4, 3), dtype=np.uint8)
    clip[..., 0] = 255  # pure red

    tensor = clip_to_tensor(clip, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))

    assert tuple(tensor.shape) == (2, 3, 3, 4)
    assert tensor[:, 0].unique().tolist() == [1.0]
    assert tensor[:, 1].unique().tolist() == [-1.0]
    assert tensor[:, 2].unique().tolist() == [0.0]
