"""Video input and output: probing, time ↔ frame rules, clips, streaming decode, encode.

A video is either a file any ffmpeg reads (through imageio-ffmpeg's bundled
binary) or a folder of image frames. Everything streams: a long video never
sits in memory. The time model is described in :mod:`vgem.video.probe`;
:mod:`vgem.video.encode` writes frames back out as an H.264 MP4.
"""

from vgem.video.decode import (
    DEFAULT_READ_AHEAD,
    PastEnd,
    clip_to_tensor,
    iter_clips,
    iter_frames,
    iter_full_frames,
)
from vgem.video.encode import VideoWriter
from vgem.video.probe import IMAGE_EXTENSIONS, VideoInfo, probe_video
from vgem.video.times import (
    GroundedTimes,
    clip_frame_indices,
    frame_index_at,
    grounded_times,
    time_of_frame,
)

__all__ = [
    "DEFAULT_READ_AHEAD",
    "IMAGE_EXTENSIONS",
    "GroundedTimes",
    "PastEnd",
    "VideoInfo",
    "VideoWriter",
    "clip_frame_indices",
    "clip_to_tensor",
    "frame_index_at",
    "grounded_times",
    "iter_clips",
    "iter_frames",
    "iter_full_frames",
    "probe_video",
    "time_of_frame",
]
