"""Time ↔ frame rules: which times are grounded and which frames make each clip."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

from vgem.errors import InputError, SettingsError
from vgem.video.probe import VideoInfo


def frame_index_at(info: VideoInfo, time: float) -> int:
    """The frame shown at ``time`` seconds, clamped to the video's frames."""
    if not math.isfinite(time):
        raise ValueError(f"time must be finite, not {time}")
    frame_times = info.frame_times
    if frame_times is not None:  # a variable-rate file: the frames' own start times
        index = bisect.bisect_right(frame_times, time + 1e-6) - 1
    else:
        # The small tolerance makes frame_index_at(time_of_frame(i)) == i despite
        # rounding in i / fps * fps.
        index = math.floor(time * info.fps + 1e-6)
    return min(max(index, 0), info.frame_count - 1)


def time_of_frame(info: VideoInfo, index: int) -> float:
    """The time at which frame ``index`` starts, the index clamped to the video's frames."""
    clamped_index = min(max(int(index), 0), info.frame_count - 1)
    frame_times = info.frame_times
    if frame_times is not None:
        return frame_times[clamped_index]
    return clamped_index / info.fps


class GroundedTimes(list[float]):
    """The times to ground at, with ``warnings`` on how they were chosen (e.g. a
    sampling rate above the video's frame rate, grounded at every frame instead).

    A list, so it goes wherever times go; the Grounder reports the warnings of
    times handed to it as ``at`` in the result's ``warnings``.
    """

    def __init__(self, times: Iterable[float] = (), warnings: Iterable[str] = ()) -> None:
        super().__init__(times)
        self.warnings: tuple[str, ...] = tuple(warnings)


def grounded_times(
    info: VideoInfo,
    *,
    fps: float | None = None,
    at: list[float] | None = None,
    every_frame: bool = False,
) -> GroundedTimes:
    """The times (seconds) vgem grounds the query at, for exactly one sampling mode.

    ``at``: the given times in the given order (each within [0, duration]);
    ``every_frame``: the start of every frame; otherwise every ``1 / fps``
    seconds from 0 while before the end (``fps`` defaults to 1).

    A rate that would ground more often than the video has frames (``fps``
    above its frame rate) grounds every frame once instead and says so in the
    returned list's ``warnings``: grounding one frame twice repeats the same
    work for the same answer, and a rate of 10^12 would not fit in memory.
    """
    modes_given = sum([fps is not None, at is not None, every_frame])
    if modes_given > 1:
        raise SettingsError("choose only one of: a sampling rate, explicit times, every frame")
    if at is not None:
        if not at:
            raise InputError("no times were given to ground at")
        return GroundedTimes(_checked_time(info, time) for time in at)
    if every_frame:
        return GroundedTimes(time_of_frame(info, index) for index in range(info.frame_count))
    sampling_fps = 1.0 if fps is None else float(fps)
    if not (math.isfinite(sampling_fps) and sampling_fps > 0):
        raise SettingsError(
            f"`fps` (the sampling rate) must be a positive number, not {fps}", settings=["fps"]
        )
    time_count = max(1, math.ceil(info.duration * sampling_fps - 1e-9))
    if time_count > info.frame_count:
        warning = (
            f"`fps` {sampling_fps:g} asks for more times than the video has frames "
            f"({info.frame_count} at {info.fps:g} fps); each frame was grounded once instead"
        )
        every = (time_of_frame(info, index) for index in range(info.frame_count))
        return GroundedTimes(every, warnings=[warning])
    return GroundedTimes(step / sampling_fps for step in range(time_count))


def _checked_time(info: VideoInfo, time: float) -> float:
    value = float(time)
    if not math.isfinite(value) or value < 0 or value > info.duration:
        raise InputError(
            f"time {time} s is outside the video {info.path} "
            f"(duration {info.duration:.3f} s, times must be in [0, {info.duration:.3f}])"
        )
    return value


def clip_frame_indices(
    info: VideoInfo,
    target_time: float,
    *,
    frames_per_clip: int,
    target_index: int,
    step: float,
    image_mode: bool = False,
) -> list[int]:
    """The frames of the clip a backbone sees for one target time.

    Clip position ``i`` shows the frame at ``target_time + (i - target_index) *
    step`` seconds, clamped to the first / last frame near the ends (docs/method.md
    §6); ``image_mode`` repeats the target frame instead (paper Table 5).
    """
    if frames_per_clip < 1:
        raise SettingsError(f"a clip needs at least one frame, not {frames_per_clip}")
    if not 0 <= target_index < frames_per_clip:
        raise SettingsError(
            f"the target's position in the clip ({target_index}) must be in "
            f"[0, {frames_per_clip - 1}]"
        )
    if frames_per_clip > 1 and not image_mode and not (math.isfinite(step) and step > 0):
        raise SettingsError(f"the clip step must be a positive number of seconds, not {step}")
    target_frame = frame_index_at(info, target_time)
    if image_mode or frames_per_clip == 1:
        return [target_frame] * frames_per_clip
    return [
        frame_index_at(info, target_time + (position - target_index) * step)
        for position in range(frames_per_clip)
    ]
