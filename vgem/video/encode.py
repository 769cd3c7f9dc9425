"""Video output: an H.264 MP4 sink that writes whole files or none.

The counterpart of :mod:`vgem.video.decode`: RGB frames in, one file out,
through imageio-ffmpeg's bundled ffmpeg. The file appears at its final path
only once it is complete and has been read back (the project's rule for
every output: a temporary name, then a rename).
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import sys
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from vgem.errors import InputError, VgemError, first_line
from vgem.video.probe import probe_video

__all__ = ["VideoWriter"]


class VideoWriter:
    """Write RGB frames to an H.264 MP4 that appears at ``path`` only when complete.

    Frames go to a hidden temporary file beside ``path`` (same filesystem, so
    the final rename is atomic); leaving the ``with`` block normally checks
    the file and renames it onto ``path``, leaving it by an exception deletes
    it and keeps whatever was at ``path`` before. The size is kept exactly:
    odd sizes are stored as 4:4:4, which some players cannot show.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        size: tuple[int, int],
        fps: float,
        *,
        crf: int = 18,
    ) -> None:
        width, height = size
        if width < 1 or height < 1:
            raise ValueError(f"size must be positive (width, height), not {size}")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, not {fps}")
        self.path = Path(path)
        self.size = (int(width), int(height))
        self.fps = fps
        self.crf = crf
        self.frames_written = 0
        self._temporary_path: Path | None = None
        self._encoder: Any = None  # imageio-ffmpeg's frame generator, while open

    def __enter__(self) -> VideoWriter:
        import imageio_ffmpeg

        folder = self.path.parent
        if not folder.is_dir():
            raise InputError(f"{self.path}: the folder {folder} does not exist")
        # ffmpeg creates the file, so it gets the usual permissions (mkstemp's
        # would be owner-only); the random part keeps parallel runs apart.
        self._temporary_path = folder / f".{self.path.name}.part-{secrets.token_hex(4)}.mp4"
        width, height = self.size
        # 4:2:0 halves the chroma resolution, so H.264 needs even sizes for it.
        pixel_format = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        self._encoder = imageio_ffmpeg.write_frames(
            str(self._temporary_path),
            self.size,
            fps=Fraction(self.fps).limit_denominator(1_000_000),
            codec="libx264",
            pix_fmt_out=pixel_format,
            quality=None,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=[
                *("-crf", str(self.crf), "-preset", "veryfast"),
                *("-movflags", "+faststart", "-f", "mp4"),  # playable while downloading
            ],
        )
        try:
            self._encoder.send(None)  # starts ffmpeg
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one H×W×3 uint8 RGB frame of the writer's size."""
        if self._encoder is None:
            raise RuntimeError(f"{type(self).__name__}.write() used outside its `with` block")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 uint8 frame, got {frame.dtype} {frame.shape}")
        width, height = self.size
        if frame.shape[:2] != (height, width):
            raise ValueError(
                f"frame is {frame.shape[1]}x{frame.shape[0]}, the video is {width}x{height}"
            )
        try:
            self._encoder.send(np.ascontiguousarray(frame))
        except OSError as error:
            raise VgemError(
                f"{self.path}: writing the video failed ({first_line(error)})"
            ) from error
        self.frames_written += 1

    def __exit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        encoder, self._encoder = self._encoder, None
        temporary_path, self._temporary_path = self._temporary_path, None
        try:
            if exception_type is not None:
                # The block's exception is the one to report, not ffmpeg's
                # reaction to a half-written file.
                with contextlib.suppress(Exception):
                    if encoder is not None:
                        encoder.close()
                return
            if encoder is not None:
                encoder.close()  # waits for ffmpeg to finish the file
            if temporary_path is not None:
                self._check_complete(temporary_path)
                os.replace(temporary_path, self.path)
                temporary_path = None
        finally:
            if temporary_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    temporary_path.unlink()

    def _check_complete(self, temporary_path: Path) -> None:
        """imageio-ffmpeg does not report ffmpeg's exit status, so read the result back."""
        if self.frames_written == 0:
            raise VgemError(f"{self.path}: no frames were written, so no video was made")
        try:
            written = probe_video(temporary_path)
        except InputError as error:
            raise VgemError(f"{self.path}: the written video is unreadable ({error})") from error
        if written.frame_count != self.frames_written:
            raise VgemError(
                f"{self.path}: ffmpeg stored {written.frame_count} of "
                f"{self.frames_written} frames (disk full?)"
            )
