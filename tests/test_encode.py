"""vgem.video.encode: the H.264 MP4 sink that writes whole files or none."""

from __future__ import annotations

from fractions import Fraction

import imageio_ffmpeg
import numpy as np
import pytest

from tests.synth import frame_index_from_pixels, synthetic_frame
from vgem.errors import InputError, VgemError
from vgem.video import VideoWriter, probe_video


def _read_back(path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    metadata = next(reader)
    width, height = metadata["size"]
    frames = [np.frombuffer(data, np.uint8).reshape(height, width, 3) for data in reader]
    return metadata, frames


@pytest.mark.parametrize("size", [(64, 48), (101, 57)], ids=["even", "odd"])
def test_writer_keeps_frame_count_size_and_fps(tmp_path, size):
    out_path = tmp_path / "out.mp4"

    with VideoWriter(out_path, size, fps=12.5) as writer:
        for index in range(15):
            writer.write(synthetic_frame(index, size))

    metadata, frames = _read_back(out_path)
    assert metadata["size"] == size
    assert metadata["fps"] == pytest.approx(12.5)
    assert [frame_index_from_pixels(frame) for frame in frames] == list(range(15))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.mp4"]


def test_writer_keeps_a_ntsc_rate_exactly(tmp_path):
    out_path = tmp_path / "ntsc.mp4"

    with VideoWriter(out_path, (32, 24), fps=30000 / 1001) as writer:
        for index in range(30):
            writer.write(synthetic_frame(index, (32, 24)))

    info = probe_video(out_path)
    assert Fraction(info.fps).limit_denominator(2000) == Fraction(30000, 1001)


def test_writer_leaves_no_file_when_the_block_fails(tmp_path):
    out_path = tmp_path / "out.mp4"

    with pytest.raises(KeyError), VideoWriter(out_path, (32, 24), fps=10) as writer:
        writer.write(synthetic_frame(1, (32, 24)))
        raise KeyError("model crashed")

    assert list(tmp_path.iterdir()) == []


def test_writer_keeps_an_existing_file_when_the_block_fails(tmp_path):
    out_path = tmp_path / "out.mp4"
    out_path.write_bytes(b"previous result")

    with pytest.raises(RuntimeError), VideoWriter(out_path, (32, 24), fps=10) as writer:
        writer.write(synthetic_frame(1, (32, 24)))
        raise RuntimeError("interrupted")

    assert out_path.read_bytes() == b"previous result"
    assert [path.name for path in tmp_path.iterdir()] == ["out.mp4"]


def test_writer_replaces_an_existing_file_when_complete(tmp_path):
    out_path = tmp_path / "out.mp4"
    out_path.write_bytes(b"previous result")

    with VideoWriter(out_path, (32, 24), fps=10) as writer:
        writer.write(synthetic_frame(3, (32, 24)))

    assert probe_video(out_path).frame_count == 1


def test_writer_output_gets_ordinary_file_permissions(tmp_path):
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("made the usual way")

    with VideoWriter(tmp_path / "out.mp4", (32, 24), fps=10) as writer:
        writer.write(synthetic_frame(3, (32, 24)))

    assert (tmp_path / "out.mp4").stat().st_mode == ordinary.stat().st_mode


def test_writer_without_frames_is_an_error_and_leaves_nothing(tmp_path):
    with (
        pytest.raises(VgemError, match="no frames"),
        VideoWriter(tmp_path / "out.mp4", (32, 24), fps=10),
    ):
        pass

    assert list(tmp_path.iterdir()) == []


def test_writer_creates_a_missing_folder_when_the_video_is_complete(tmp_path):
    with VideoWriter(tmp_path / "new" / "folder" / "out.mp4", (32, 24), fps=10) as writer:
        writer.write(synthetic_frame(1, (32, 24)))

    assert probe_video(tmp_path / "new" / "folder" / "out.mp4").frame_count == 1
    assert [path.name for path in tmp_path.rglob("*")] == ["new", "folder", "out.mp4"]


def test_a_failed_writer_creates_no_folder(tmp_path):
    with (
        pytest.raises(KeyError),
        VideoWriter(tmp_path / "new" / "out.mp4", (32, 24), fps=10) as writer,
    ):
        writer.write(synthetic_frame(1, (32, 24)))
        raise KeyError("stop")

    assert list(tmp_path.iterdir()) == []


def test_writer_under_a_file_is_an_input_error(tmp_path):
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    with pytest.raises(InputError, match="not a folder"):
        VideoWriter(tmp_path / "notes.txt" / "out.mp4", (32, 24), fps=10).__enter__()
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_a_colon_in_the_name_is_not_an_ffmpeg_protocol(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with VideoWriter("take:2.mp4", (32, 24), fps=10) as writer:
        writer.write(synthetic_frame(1, (32, 24)))
    assert probe_video(tmp_path / "take:2.mp4").frame_count == 1


def test_an_ffmpeg_failure_is_one_line_with_its_reason(tmp_path, monkeypatch, capfd):
    """ffmpeg's own lines stay out of the terminal; the error gives the cause."""
    import imageio_ffmpeg

    fake = tmp_path / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\necho '[mp4 @ 0x1234] Could not write header: Invalid argument' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(fake))
    with (
        pytest.raises(VgemError) as raised,
        VideoWriter(tmp_path / "out.mp4", (32, 24), 10) as writer,
    ):
        for index in range(200):
            writer.write(synthetic_frame(index, (32, 24)))
    message = str(raised.value)
    assert "\n" not in message
    assert message.endswith("writing the video failed (Could not write header: Invalid argument)")
    assert capfd.readouterr().err == ""
    assert [path.name for path in tmp_path.iterdir()] == ["ffmpeg"]


def test_writer_rejects_a_frame_of_the_wrong_size(tmp_path):
    with (
        pytest.raises(ValueError, match="32x24"),
        VideoWriter(tmp_path / "out.mp4", (32, 24), fps=10) as writer,
    ):
        writer.write(synthetic_frame(1, (24, 32)))

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("suffix", "magic"),
    [
        (".mp4", b"ftyp"),  # bytes 4..8 of an MP4
        (".webm", b"\x1a\x45\xdf\xa3"),  # the EBML header of Matroska / WebM
        (".gif", b"GIF89a"),
    ],
)
def test_the_format_follows_the_extension(tmp_path, suffix, magic):
    out_path = tmp_path / f"out{suffix}"
    with VideoWriter(out_path, (33, 25), fps=10) as writer:  # odd sizes too
        for index in range(6):
            writer.write(synthetic_frame(index, (33, 25)))
    head = out_path.read_bytes()[:12]
    assert magic in head
    assert probe_video(out_path).frame_count == 6


def test_an_extension_vgem_cannot_write_is_refused_before_anything(tmp_path):
    with pytest.raises(InputError, match=r"\.avi"):
        VideoWriter(tmp_path / "out.avi", (32, 24), fps=10).__enter__()
    assert list(tmp_path.iterdir()) == []
