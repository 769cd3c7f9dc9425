"""Video output: an H.264 MP4 sink that writes whole files or none.

The counterpart of :mod:`vgem.video.decode`: RGB frames in, one file out,
through imageio-ffmpeg's bundled ffmpeg. The file goes through vgem's one
output-commit mechanism (:class:`vgem.staging.OutputSet`): it appears at its
final path only once it is complete and has been read back. ffmpeg's own
messages never reach the terminal: a failure is one line that gives ffmpeg's
reason.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

import numpy as np

from vgem.errors import InputError, VgemError
from vgem.video.probe import probe_video

if TYPE_CHECKING:
    from vgem.staging import OutputSet, StagedOutput

__all__ = ["VIDEO_FORMATS", "VideoWriter", "video_format"]


@dataclass(frozen=True)
class VideoFormat:
    """How a file extension's video is written: ffmpeg's muxer, and its codec options
    (``{pixel}``: the pixel format, 4:2:0 for even sizes, 4:4:4 for odd ones where
    the codec has it)."""

    muxer: str
    codec: tuple[str, ...]
    description: str


_H264 = ("-c:v", "libx264", "-pix_fmt", "{pixel}", "-crf", "{crf}", "-preset", "veryfast")
_VP9 = ("-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-b:v", "0", "-crf", "{webm_crf}")
_VP9_SPEED = ("-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1")
# GIF: a palette per frame, made as the frames come (256 colours a frame; a palette of
# the whole video would need all of it in memory first).
_GIF = (
    "-vf",
    "split[a][b];[a]palettegen=stats_mode=single[p];[b][p]paletteuse=new=1",
    "-c:v",
    "gif",
    "-loop",
    "0",
)
#: The annotated video's format follows the output's extension.
VIDEO_FORMATS: dict[str, VideoFormat] = {
    ".mp4": VideoFormat("mp4", (*_H264, "-movflags", "+faststart"), "H.264 MP4"),
    ".m4v": VideoFormat("mp4", (*_H264, "-movflags", "+faststart"), "H.264 MP4"),
    ".mov": VideoFormat("mov", _H264, "H.264 QuickTime"),
    ".mkv": VideoFormat("matroska", _H264, "H.264 Matroska"),
    ".webm": VideoFormat("webm", (*_VP9, *_VP9_SPEED), "VP9 WebM"),
    ".gif": VideoFormat("gif", _GIF, "animated GIF"),
}


def video_format(path: str | os.PathLike[str], *, setting: str | None = None) -> VideoFormat:
    """The format an annotated video at ``path`` is written in, by its extension; any
    other extension is refused in one line (before any grounding, by the callers)."""
    suffix = Path(os.fspath(path)).suffix.lower()
    found = VIDEO_FORMATS.get(suffix)
    if found is None:
        named = f"`{setting}` {path}" if setting else str(path)
        known = ", ".join(sorted(VIDEO_FORMATS))
        raise InputError(
            f"{named}: vgem writes annotated videos as {known}; give the file one of these "
            f"extensions (not {suffix or 'none'}).",
            settings=(setting,) if setting else (),
        )
    return found


class VideoWriter:
    """Write RGB frames to a video that appears at ``path`` only when complete, in the
    format its extension names (:data:`VIDEO_FORMATS`: H.264 MP4 by default, VP9 WebM,
    animated GIF).

    ``path`` is a file path (checked and staged like every vgem output: a
    symlink is written through, a folder, device or FIFO refused) or an output
    already staged in a caller's :class:`vgem.staging.OutputSet`, which then
    commits it with the run's other outputs. Frames go to a hidden temporary
    file beside the target; leaving the ``with`` block normally checks the file
    (and, for a plain path, renames it into place), leaving it by an exception
    deletes it and keeps whatever was at ``path`` before. The size is kept
    exactly: odd sizes are stored as 4:4:4, which some players cannot show.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | StagedOutput,
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
        from vgem.staging import StagedOutput

        self._destination = path
        self.path = Path(path.path if isinstance(path, StagedOutput) else os.fspath(path))
        self.size = (int(width), int(height))
        self.fps = fps
        self.crf = crf
        self.frames_written = 0
        self._outputs: OutputSet | None = None  # our own, for a plain path
        self._temporary_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._error_log: IO[bytes] | None = None

    def __enter__(self) -> VideoWriter:
        from vgem.staging import OutputSet, StagedOutput

        destination = self._destination
        if isinstance(destination, StagedOutput):
            staged = destination
        else:
            self._outputs = OutputSet()
            staged = self._outputs.add(destination)
        self._temporary_path = staged.temporary
        try:
            self._start_encoder()
        except BaseException as error:
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def _start_encoder(self) -> None:
        import imageio_ffmpeg

        assert self._temporary_path is not None
        width, height = self.size
        chosen = video_format(self.path)
        # 4:2:0 halves the chroma resolution, so H.264 needs even sizes for it.
        pixel_format = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        rate = Fraction(self.fps).limit_denominator(1_000_000)
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostats", "-v", "error"]
        command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
        command += ["-r", str(rate), "-i", "pipe:0", "-an"]
        values = {"pixel": pixel_format, "crf": str(self.crf), "webm_crf": str(self.crf + 14)}
        command += [part.format(**values) for part in chosen.codec]
        command += ["-f", chosen.muxer, "-y"]
        # "file:" and an absolute path: a name with a colon is not taken for a protocol.
        command.append("file:" + str(Path(self._temporary_path).absolute()))
        self._error_log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in __exit__)
        # Its own session: Ctrl-C at a terminal reaches vgem, which ends ffmpeg itself.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=self._error_log,
            start_new_session=True,
        )

    def write(self, frame: np.ndarray) -> None:
        """Append one H×W×3 uint8 RGB frame of the writer's size."""
        process = self._process
        if process is None or process.stdin is None:
            raise RuntimeError(f"{type(self).__name__}.write() used outside its `with` block")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 uint8 frame, got {frame.dtype} {frame.shape}")
        width, height = self.size
        if frame.shape[:2] != (height, width):
            raise ValueError(
                f"frame is {frame.shape[1]}x{frame.shape[0]}, the video is {width}x{height}"
            )
        try:
            process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except OSError as error:  # ffmpeg has stopped: its own words say why
            process.wait()
            raise VgemError(
                f"{self.path}: writing the video failed ({self._reason(error)})"
            ) from None
        self.frames_written += 1

    def __exit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        process, self._process = self._process, None
        outputs, self._outputs = self._outputs, None
        temporary_path, self._temporary_path = self._temporary_path, None
        try:
            if exception_type is not None or process is None:
                # The block's exception is the one to report, not ffmpeg's
                # reaction to a half-written file.
                if process is not None:
                    _stop(process)
                if outputs is not None:
                    outputs.discard()
                return
            try:
                if process.stdin is not None:
                    process.stdin.close()  # end of input: ffmpeg finishes the file
            except OSError:
                pass
            if process.wait() != 0:
                raise VgemError(f"{self.path}: writing the video failed ({self._reason(None)})")
            assert temporary_path is not None
            self._check_complete(temporary_path)
            if outputs is not None:
                outputs.commit()
        except BaseException:
            if process is not None and process.poll() is None:
                _stop(process)
            if outputs is not None:
                outputs.discard()
            raise
        finally:
            if self._error_log is not None:
                self._error_log.close()
                self._error_log = None

    def _reason(self, error: OSError | None) -> str:
        """ffmpeg's last words on its error output, else the pipe's error."""
        lines: list[str] = []
        if self._error_log is not None:
            with contextlib.suppress(OSError):
                self._error_log.seek(0)
                text = self._error_log.read().decode(errors="replace")
                lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return _without_addresses(lines[-1])
        if error is not None:
            return error.strerror or type(error).__name__
        return "ffmpeg failed"

    def _check_complete(self, temporary_path: Path) -> None:
        """Read the result back: the file must hold every frame written."""
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


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End ffmpeg now (its half-written file is deleted by the caller)."""
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()
    if process.poll() is None:
        process.kill()
    process.wait()


def _without_addresses(line: str) -> str:
    """``[out#0/mp4 @ 0x55…] Error opening output …`` → ``Error opening output …``."""
    if line.startswith("[") and "] " in line:
        return line.split("] ", 1)[1]
    return line
