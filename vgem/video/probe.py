"""Probing: what a video file or frame folder holds, refusing what cannot be decoded.

Time model (used everywhere in vgem): frame ``i`` is shown during
``[i / fps, (i + 1) / fps)`` and ``duration = frame_count / fps``. Files are
decoded frame for frame as stored, so the frame count found here and the frames
the decoder yields agree. A variable-frame-rate file (frames shown for
different lengths of time) keeps each frame's own start time
(``VideoInfo.frame_times``), and times map to frames through those: frame
``i`` is shown from ``frame_times[i]`` until the next frame starts; ``fps`` is
then the mean rate, which keeps ``duration`` right.
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import tempfile
from array import array
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from vgem.errors import InputError, SettingsError, first_line

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

# Header frame rates are printed with two decimals (23.98 for 24000/1001).
_HEADER_FPS_ROUNDING = 0.006


@dataclass(frozen=True)
class VideoInfo:
    """What vgem knows about a video before decoding it.

    ``width`` and ``height`` are the displayed size (after any rotation in the
    file's metadata), which is the size coordinates are reported in.
    """

    path: str
    fps: float
    frame_count: int
    width: int
    height: int
    duration: float
    is_frame_folder: bool

    @property
    def frame_times(self) -> tuple[float, ...] | None:
        """Each frame's start (seconds from the first frame) for a variable-frame-rate
        file, in frame order; None where frame ``i`` starts at ``i / fps``.

        Kept beside the fields rather than as one, so that the video's description
        in results stays small and equality compares what the fields say.
        """
        return self.__dict__.get("_frame_times")

    def with_frame_times(self, frame_times: tuple[float, ...]) -> VideoInfo:
        """A copy that maps times to frames through ``frame_times`` (one per frame)."""
        if len(frame_times) != self.frame_count:
            raise ValueError(f"{len(frame_times)} frame times for {self.frame_count} frames")
        info = replace(self)
        object.__setattr__(info, "_frame_times", tuple(frame_times))
        return info


def probe_video(
    path: str | os.PathLike[str], source_fps: float = 1.0, *, allow_truncated: bool = False
) -> VideoInfo:
    """Read a video's size, rate and frame count without decoding it all.

    For a file, frames are counted by demuxing the video stream without
    decoding (``ffmpeg -c copy``: a few seconds per GB, I/O bound), which is
    exact for a normal file, needs no trust in header estimates, and counts
    only what a truncated file still holds; the first frame is decoded so that
    a file ffmpeg cannot decode fails here rather than halfway through
    grounding. Should a damaged file still hold fewer decodable frames than
    counted, see ``past_end`` in :func:`iter_frames`.

    A file cut off mid-frame (an interrupted download or copy) is refused
    unless ``allow_truncated``: grounding it would silently miss the rest of
    the video. Allowed, it counts only the frames that are complete.

    A folder's images are its frames, in natural name order (``frame2`` before
    ``frame10``), shown at ``source_fps`` frames per second.
    """
    location = Path(path)
    shown = str(path)
    if not location.exists():
        raise InputError(f"{shown}: no such file or directory")
    if location.is_dir():
        return _probe_frame_folder(location, shown, source_fps)
    if not location.is_file():
        raise InputError(f"{shown}: not a regular file or a folder of frames")
    return _probe_video_file(shown, allow_truncated)


def _probe_video_file(path: str, allow_truncated: bool) -> VideoInfo:
    packets = _scan_video_packets(path)
    if packets.cut_off and not allow_truncated:
        raise InputError(
            f"{path} is truncated (it ends in the middle of a frame); re-download it, or "
            f"remux what is left with `ffmpeg -i {path} -c copy fixed.mp4` and ground that"
        )
    if packets.cut_off:
        logger.warning("%s is truncated: its last %d frame(s) are cut off", path, packets.cut_off)
    if packets.count == 0:
        raise InputError(f"{path}: the video has no frames")
    header_fps, width, height = _read_header_and_first_frame(path)
    fps = _choose_fps(path, header_fps, packets.count, packets.span_seconds)
    info = VideoInfo(
        path=path,
        fps=fps,
        frame_count=packets.count,
        width=width,
        height=height,
        duration=packets.count / fps,
        is_frame_folder=False,
    )
    frame_times = _variable_frame_times(packets, fps)
    return info if frame_times is None else info.with_frame_times(frame_times)


@dataclass(frozen=True)
class _PacketScan:
    count: int
    span_seconds: Fraction | None  # first frame's start to last frame's end, if timestamped
    cut_off: int = 0  # trailing frames the end of the file cut short
    # the counted frames' start times in time-base units, in display order (None if any lacks one)
    starts: array[int] | None = None
    time_base: Fraction = Fraction(0)


# A frame whose start is off the constant-rate grid by more than this share of a
# frame's length makes a file variable-rate (timestamps are rounded to the time base).
_VARIABLE_RATE_TOLERANCE = 0.5


def _variable_frame_times(packets: _PacketScan, fps: float) -> tuple[float, ...] | None:
    """Each frame's start in seconds when the file's frames do not follow ``i / fps``."""
    starts = packets.starts
    if starts is None or len(starts) != packets.count or not packets.time_base or fps <= 0:
        return None
    first = starts[0]
    seconds = [float((start - first) * packets.time_base) for start in starts]
    if all(
        abs(time * fps - index) <= _VARIABLE_RATE_TOLERANCE for index, time in enumerate(seconds)
    ):
        return None
    return tuple(seconds)


_NO_TIMESTAMP = -(2**63)
_CORRUPT_PACKET_FLAG = 0x2  # a packet cut short by the end of the file
_DISCARD_PACKET_FLAG = 0x4  # decoded only as a reference, never shown (before an edit list's start)


def _scan_video_packets(path: str) -> _PacketScan:
    """Count the first video stream's frames and time span by demuxing, not decoding.

    ffmpeg's ``framecrc`` muxer lists every packet with its timestamps and flags
    (a summary line's time would be off by the B-frame reordering delay).
    Packets the decoder will not output are not counted: those an edit list
    hides (a file trimmed without re-encoding starts mid-GOP) and a truncated
    file's cut-off last packet. The listing is read line by line, so an hour of
    video costs kilobytes of memory.
    """
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-v", "error"]
    command += ["-i", ffmpeg_input(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"]
    time_base = Fraction(0)
    count = 0
    trailing_corrupt = 0
    first_start: int | None = None
    last_end: int | None = None
    starts: array[int] | None = array("q")  # 8 bytes a frame: 2 MB for 10 hours at 30 fps
    with tempfile.TemporaryFile() as error_log:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=error_log, text=True, errors="replace"
        ) as process:
            for line in process.stdout or ():
                if line.startswith("#tb 0:"):
                    numerator, denominator = line.split(":", 1)[1].split("/")
                    time_base = Fraction(int(numerator), int(denominator))
                    continue
                if line.startswith("#") or not line.strip():
                    continue
                packet = _parse_packet_line(line)
                if packet is None or packet[3] & _DISCARD_PACKET_FLAG:
                    continue
                decode_time, presentation_time, packet_duration, flags = packet
                count += 1
                is_corrupt = bool(flags & _CORRUPT_PACKET_FLAG)
                trailing_corrupt = trailing_corrupt + 1 if is_corrupt else 0
                start = presentation_time if presentation_time != _NO_TIMESTAMP else decode_time
                if starts is not None:
                    if start == _NO_TIMESTAMP:
                        starts = None
                    else:
                        starts.append(start)
                if start != _NO_TIMESTAMP and not is_corrupt:
                    first_start = start if first_start is None else min(first_start, start)
                    end = start + max(packet_duration, 0)
                    last_end = end if last_end is None else max(last_end, end)
        error_log.seek(0)
        errors = error_log.read().decode(errors="replace")
    if process.returncode != 0:
        raise InputError(f"{path}: {_ffmpeg_failure_reason(errors)}")
    span_seconds = None
    if first_start is not None and last_end is not None and last_end > first_start:
        span_seconds = (last_end - first_start) * time_base or None
    kept = count - trailing_corrupt
    if starts is not None:
        # Display order is timestamp order (B-frames arrive out of it); a cut-off last
        # packet is never shown.
        starts = array("q", sorted(starts[:kept]))
    return _PacketScan(kept, span_seconds, trailing_corrupt, starts, time_base)


def _parse_packet_line(line: str) -> tuple[int, int, int, int] | None:
    """(dts, pts, duration, flags) from ``stream, dts, pts, duration, size, crc[, F=flags]…``.

    framecrc writes ``F=`` only when the flags differ from "keyframe" (0x1).
    """
    fields = [field.strip() for field in line.split(",")]
    try:
        decode_time, presentation_time, packet_duration = (int(field) for field in fields[1:4])
        flag_fields = [field for field in fields[6:] if field.startswith("F=")]
        flags = int(flag_fields[0][2:], 16) if flag_fields else 0x1
    except ValueError:
        return None
    return decode_time, presentation_time, packet_duration, flags


def _ffmpeg_failure_reason(stderr: str) -> str:
    """Turn ffmpeg's error output into one line a user can act on."""
    if "matches no streams" in stderr or "does not contain any stream" in stderr:
        return "the file has no video stream"
    if "Invalid data found when processing input" in stderr or "moov atom not found" in stderr:
        return "not a video ffmpeg can read (unknown format, or a damaged or truncated file)"
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return f"ffmpeg cannot read it ({lines[-1]})" if lines else "ffmpeg cannot read it"


def ffmpeg_input(path: str | os.PathLike[str]) -> str:
    """``path`` as ffmpeg must be given it: ``file:`` and the absolute path, so a
    name with a colon (``take:2.mp4``) is never taken for a protocol."""
    return "file:" + str(Path(path).absolute())


def _read_header_and_first_frame(path: str) -> tuple[float, int, int]:
    """Return the header's frame rate and the displayed size; decode frame 0."""
    import imageio_ffmpeg

    silence_resize_warning()  # rotated videos decode at their displayed size
    reader = imageio_ffmpeg.read_frames(ffmpeg_input(path), output_params=["-map", "0:v:0"])
    try:
        try:
            metadata = next(reader)
        except (OSError, IndexError, AttributeError) as error:
            raise InputError(
                f"{path}: not a video ffmpeg can read ({first_line(error)})"
            ) from error
        try:
            next(reader)
        except StopIteration:
            raise InputError(f"{path}: the video has no frame that can be decoded") from None
        except RuntimeError as error:
            raise InputError(f"{path}: the first frame cannot be decoded") from error
    finally:
        reader.close()
    width, height = metadata["size"]
    return float(metadata.get("fps") or 0.0), int(width), int(height)


def _choose_fps(
    path: str, header_fps: float, packet_count: int, stream_seconds: Fraction | None
) -> float:
    """Pick the rate that maps frame ``i`` to time ``i / fps`` best.

    The measured rate (packets per second of stream) is exact for constant-rate
    files, where the header's two printed decimals are not (23.98 for
    24000/1001 drifts by 14 frames an hour); the header wins when it alone
    explains the count (an odd last-frame duration skews the measurement); for
    variable-rate files the measured mean rate keeps ``duration`` right.
    """
    # Exact rational arithmetic: 12 frames over 12/5 s is 5.0 fps, not 4.999….
    measured_fps = float(packet_count / stream_seconds) if stream_seconds else 0.0
    if header_fps > 0 and measured_fps > 0:
        assert stream_seconds is not None  # a measured rate needs the stream's length
        if abs(measured_fps - header_fps) <= _HEADER_FPS_ROUNDING:
            return measured_fps
        if abs(stream_seconds * header_fps - packet_count) <= 1.0:
            return header_fps
        logger.info("%s: variable frame rate; using the mean rate %.3f fps", path, measured_fps)
        return measured_fps
    if header_fps > 0:
        return header_fps
    if measured_fps > 0:
        return measured_fps
    raise InputError(f"{path}: the video's frame rate is unknown")


def _probe_frame_folder(folder: Path, shown: str, source_fps: float) -> VideoInfo:
    if not (math.isfinite(source_fps) and source_fps > 0):
        raise SettingsError(f"the frame rate of a frame folder must be positive, not {source_fps}")
    frame_files = list_frame_files(folder)
    if not frame_files:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise InputError(f"{shown}: the folder holds no image frames ({extensions})")
    width, height = _image_size(frame_files[0])
    return VideoInfo(
        path=shown,
        fps=float(source_fps),
        frame_count=len(frame_files),
        width=width,
        height=height,
        duration=len(frame_files) / source_fps,
        is_frame_folder=True,
    )


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    """Sort key that orders digit runs by value: frame2 < frame10."""
    return [
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in re.split(r"(\d+)", name)
        if part
    ]


def list_frame_files(folder: Path) -> list[Path]:
    files = [
        entry
        for entry in folder.iterdir()
        if entry.suffix.lower() in IMAGE_EXTENSIONS and entry.is_file()
    ]
    return sorted(files, key=lambda entry: _natural_key(entry.name))


def _image_size(image_path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(image_path) as image:
            image.load()
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"{image_path}: cannot decode the image ({first_line(error)})") from error


class _ResizeWarningFilter(logging.Filter):
    """imageio-ffmpeg warns whenever output size differs from source: that is our intent."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "frame size for reading" not in record.getMessage()


_resize_warning_filter = _ResizeWarningFilter()


def silence_resize_warning() -> None:
    imageio_logger = logging.getLogger("imageio_ffmpeg")
    if _resize_warning_filter not in imageio_logger.filters:
        imageio_logger.addFilter(_resize_warning_filter)
