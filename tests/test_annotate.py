"""vgem.annotate: the decode → draw → encode pipeline behind ``--video-out``."""

from __future__ import annotations

import numpy as np
import pytest

import vgem.annotate
from tests.synth import frame_index_from_pixels, write_frame_folder, write_video
from vgem.annotate import annotate_frames
from vgem.render import FrameOverlay, query_colour
from vgem.video import iter_full_frames, probe_video


def _frames_of(path) -> list[np.ndarray]:
    return [frame for _, frame in iter_full_frames(probe_video(path))]


def test_annotate_frames_keeps_the_source_and_draws_overlays(tmp_path):
    source = probe_video(write_video(tmp_path / "source.mp4", 20, size=(64, 48), fps=8))
    out_path = tmp_path / "annotated.mp4"
    progress_calls = []
    point = (15.0, 35.0, "hand")

    def overlay_for_frame(index: int) -> FrameOverlay | None:
        if index != 5:
            return None
        return FrameOverlay(heatmap=np.zeros((2, 2)), points=[point], title="frame 5")

    annotate_frames(source, out_path, overlay_for_frame, progress_calls.append)

    written = probe_video(out_path)
    frames = _frames_of(out_path)
    assert (written.frame_count, written.width, written.height) == (20, 64, 48)
    assert written.fps == pytest.approx(8.0)
    assert progress_calls == list(range(1, 21))
    assert frame_index_from_pixels(frames[4]) == 4  # untouched frames survive
    marker = np.array(query_colour(0))  # the first query's colour
    assert np.abs(frames[5][35, 15].astype(int) - marker).max() < 40
    assert np.abs(frames[4][35, 15].astype(int) - (0, 0, 96)).max() < 40
    assert sorted(path.name for path in tmp_path.iterdir()) == ["annotated.mp4", "source.mp4"]


def test_annotate_frames_leaves_nothing_when_an_overlay_fails(tmp_path):
    source = probe_video(write_video(tmp_path / "source.mp4", 10, size=(32, 24)))

    def failing_overlay(index: int) -> FrameOverlay | None:
        if index == 6:
            raise RuntimeError("heatmap missing")
        return None

    with pytest.raises(RuntimeError, match="heatmap missing"):
        annotate_frames(source, tmp_path / "out.mp4", failing_overlay)

    assert [path.name for path in tmp_path.iterdir()] == ["source.mp4"]


def test_annotate_frames_from_an_odd_sized_frame_folder(tmp_path):
    write_frame_folder(tmp_path / "frames", 6, size=(45, 31))
    source = probe_video(tmp_path / "frames", source_fps=3.0)

    annotate_frames(source, tmp_path / "out.mp4", lambda index: None)

    written = probe_video(tmp_path / "out.mp4")
    assert (written.frame_count, written.width, written.height) == (6, 45, 31)
    assert written.fps == pytest.approx(3.0)


def test_write_annotated_video_reports_progress_against_the_frame_count(monkeypatch, tmp_path):
    video = probe_video(write_video(tmp_path / "source.mp4", 4, size=(32, 24)))
    result = type("Result", (), {"video": video})()
    calls = []

    def fake_annotate_frames(info, out_path, overlay_for_frame, progress):
        assert (info, out_path, overlay_for_frame(0)) == (video, tmp_path / "out.mp4", None)
        for written in range(1, info.frame_count + 1):
            progress(written)

    monkeypatch.setattr(vgem.annotate, "overlay_source", lambda result: lambda index: None)
    monkeypatch.setattr(vgem.annotate, "annotate_frames", fake_annotate_frames)
    vgem.annotate.write_annotated_video(
        result, tmp_path / "out.mp4", lambda *call: calls.append(call)
    )

    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
