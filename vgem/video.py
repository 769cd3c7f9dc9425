"""Video input: probing, time ↔ frame rules, clips, and streaming decode.

A video is either a file any ffmpeg reads (through imageio-ffmpeg's bundled
binary) or a folder of image frames. Everything here streams: frames are
decoded in one forward pass, resized while decoding to the size a model wants,
and only the frames still needed are kept, so a long video never sits in memory.

Time model (used by every function here and by the rest of vgem): frame ``i``
is shown during ``[i / fps, (i + 1) / fps)`` and ``duration = frame_count / fps``.
Files are decoded frame for frame as stored (``-fps_mode passthrough``: no frame
is duplicated or dropped to force a constant rate), so the frame count found by
:func:`probe_video` and the frames the decoder yields agree; for
variable-frame-rate files ``fps`` is the mean rate and times are approximate.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np

from vgem.errors import InputError, SettingsError

if TYPE_CHECKING:
    import torch

__all__ = [
    "IMAGE_EXTENSIONS",
    "PastEnd",
    "VideoInfo",
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

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

PastEnd = Literal["error", "stop"]
"""What to do when a video ends before a requested frame (a truncated file).

``"error"`` raises :class:`InputError` naming the frame and the video;
``"stop"`` ends the iteration quietly after the last frame that could be
decoded, so the caller can use what exists and report what is missing.
"""

DEFAULT_READ_AHEAD = 16

# swscale's bicubic with B=0, C=0.5 is the Keys kernel (a = -0.5) that PIL's
# BICUBIC uses, which is what CLIP-style preprocessing (torchvision Resize on a
# PIL image) applies; swscale widens the kernel when shrinking, as PIL does.
# full_chroma_int interpolates chroma at full resolution before scaling, which
# brings 4:2:0 video within about 1 grey level of PIL on average (3 without).
_SCALE_FLAGS = "bicubic+full_chroma_int:param0=0:param1=0.5"

# Header frame rates are printed with two decimals (23.98 for 24000/1001).
_HEADER_FPS_ROUNDING = 0.006

_T = TypeVar("_T")


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


# --------------------------------------------------------------------------- probing


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
    return VideoInfo(
        path=path,
        fps=fps,
        frame_count=packets.count,
        width=width,
        height=height,
        duration=packets.count / fps,
        is_frame_folder=False,
    )


@dataclass(frozen=True)
class _PacketScan:
    count: int
    span_seconds: Fraction | None  # first frame's start to last frame's end, if timestamped
    cut_off: int = 0  # trailing frames the end of the file cut short


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
    command += ["-i", path, "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"]
    time_base = Fraction(0)
    count = 0
    trailing_corrupt = 0
    first_start: int | None = None
    last_end: int | None = None
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
    return _PacketScan(count - trailing_corrupt, span_seconds, trailing_corrupt)


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


def _read_header_and_first_frame(path: str) -> tuple[float, int, int]:
    """Return the header's frame rate and the displayed size; decode frame 0."""
    import imageio_ffmpeg

    _silence_resize_warning()  # rotated videos decode at their displayed size
    reader = imageio_ffmpeg.read_frames(path, output_params=["-map", "0:v:0"])
    try:
        try:
            metadata = next(reader)
        except (OSError, IndexError, AttributeError) as error:
            raise InputError(
                f"{path}: not a video ffmpeg can read ({_first_line(error)})"
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
    frame_files = _list_frame_files(folder)
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


def _list_frame_files(folder: Path) -> list[Path]:
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
        raise InputError(f"{image_path}: cannot decode the image ({_first_line(error)})") from error


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --------------------------------------------------------------------------- times


def frame_index_at(info: VideoInfo, time: float) -> int:
    """The frame shown at ``time`` seconds, clamped to the video's frames."""
    if not math.isfinite(time):
        raise ValueError(f"time must be finite, not {time}")
    # The small tolerance makes frame_index_at(time_of_frame(i)) == i despite
    # rounding in i / fps * fps.
    index = math.floor(time * info.fps + 1e-6)
    return min(max(index, 0), info.frame_count - 1)


def time_of_frame(info: VideoInfo, index: int) -> float:
    """The time at which frame ``index`` starts, the index clamped to the video's frames."""
    clamped_index = min(max(int(index), 0), info.frame_count - 1)
    return clamped_index / info.fps


def grounded_times(
    info: VideoInfo,
    *,
    fps: float | None = None,
    at: list[float] | None = None,
    every_frame: bool = False,
) -> list[float]:
    """The times (seconds) vgem grounds the query at, for exactly one sampling mode.

    ``at``: the given times in the given order (each within [0, duration]);
    ``every_frame``: the start of every frame; otherwise every ``1 / fps``
    seconds from 0 while before the end (``fps`` defaults to 1).
    """
    modes_given = sum([fps is not None, at is not None, every_frame])
    if modes_given > 1:
        raise SettingsError("choose only one of: a sampling rate, explicit times, every frame")
    if at is not None:
        if not at:
            raise InputError("no times were given to ground at")
        return [_checked_time(info, time) for time in at]
    if every_frame:
        return [time_of_frame(info, index) for index in range(info.frame_count)]
    sampling_fps = 1.0 if fps is None else float(fps)
    if not (math.isfinite(sampling_fps) and sampling_fps > 0):
        raise SettingsError(f"the sampling rate must be a positive number, not {fps}")
    time_count = max(1, math.ceil(info.duration * sampling_fps - 1e-9))
    return [step / sampling_fps for step in range(time_count)]


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
    step`` seconds, clamped to the first / last frame near the ends (METHOD.md
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


# --------------------------------------------------------------------------- decoding


def iter_frames(
    info: VideoInfo,
    indices: Iterable[int],
    size: tuple[int, int] | None,
    *,
    past_end: PastEnd = "error",
    read_ahead: int = DEFAULT_READ_AHEAD,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, frame)`` for the requested frames, in increasing index order.

    ``frame`` is a writable H×W×3 uint8 RGB array at ``size = (width, height)``,
    or at the source size when ``size`` is None. For files, ffmpeg drops the
    frames not asked for and scales the rest itself, so no full-resolution
    frame reaches Python, and it stops after the last requested frame.
    Duplicate indices are yielded once; an index outside the video is a
    ValueError (clamp with :func:`frame_index_at`). Decoding runs on a
    background thread ``read_ahead`` frames ahead of the consumer; its errors
    surface here, and closing this iterator early stops ffmpeg. ``past_end``
    says what a file that ends before a requested frame does (see PastEnd).
    """
    wanted_indices = sorted(set(indices))
    if not wanted_indices:
        return _no_frames()
    if wanted_indices[0] < 0 or wanted_indices[-1] >= info.frame_count:
        raise ValueError(
            f"frame indices must be in [0, {info.frame_count - 1}] for {info.path}, "
            f"got {wanted_indices[0]}..{wanted_indices[-1]}"
        )
    if size is not None and (size[0] < 1 or size[1] < 1):
        raise ValueError(f"size must be positive (width, height), not {size}")
    if past_end not in ("error", "stop"):
        raise ValueError(f"past_end must be 'error' or 'stop', not {past_end!r}")
    if info.is_frame_folder:

        def produce() -> Iterator[tuple[int, np.ndarray]]:
            return _decode_folder_frames(info, wanted_indices, size)

    else:

        def produce() -> Iterator[tuple[int, np.ndarray]]:
            return _decode_file_frames(info, wanted_indices, size, past_end)

    return _read_ahead(produce, max(1, read_ahead))


def _no_frames() -> Iterator[tuple[int, np.ndarray]]:
    yield from ()


def iter_full_frames(
    info: VideoInfo, *, past_end: PastEnd = "error"
) -> Iterator[tuple[int, np.ndarray]]:
    """Every frame at the source size, streaming (for rendering)."""
    return iter_frames(info, range(info.frame_count), None, past_end=past_end)


def iter_clips(
    info: VideoInfo,
    targets: list[float],
    *,
    size: tuple[int, int] | None,
    frames_per_clip: int,
    target_index: int,
    step: float,
    image_mode: bool = False,
    past_end: PastEnd = "error",
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(position in targets, clip)`` with clip a [T, H, W, 3] uint8 array.

    Clips come in order of target time (ties in the order given; for sorted
    targets that is the order of ``targets``), because the video is decoded
    in one forward pass. Each needed frame is decoded once even when clips
    overlap: frames wait in a cache only until the last clip that uses them,
    so the cache spans a few clips, never the video. With ``past_end="stop"``
    the clips end at the first one a truncated file cannot complete.
    """
    processing_order = sorted(range(len(targets)), key=lambda position: targets[position])
    clip_indices = [
        clip_frame_indices(
            info,
            targets[position],
            frames_per_clip=frames_per_clip,
            target_index=target_index,
            step=step,
            image_mode=image_mode,
        )
        for position in processing_order
    ]
    last_clip_using: dict[int, int] = {}
    for clip_number, indices in enumerate(clip_indices):
        for frame_index in indices:
            last_clip_using[frame_index] = clip_number
    return _assemble_clips(info, processing_order, clip_indices, last_clip_using, size, past_end)


def _assemble_clips(
    info: VideoInfo,
    processing_order: list[int],
    clip_indices: list[list[int]],
    last_clip_using: dict[int, int],
    size: tuple[int, int] | None,
    past_end: PastEnd,
) -> Iterator[tuple[int, np.ndarray]]:
    decoded = iter_frames(info, sorted(last_clip_using), size, past_end=past_end)
    frame_cache: dict[int, np.ndarray] = {}
    try:
        for clip_number, (position, indices) in enumerate(
            zip(processing_order, clip_indices, strict=True)
        ):
            # Frames arrive in increasing order and nothing this clip needs has
            # been evicted, so once its highest frame is here, all of them are.
            highest_index = max(indices)
            while highest_index not in frame_cache:
                try:
                    frame_index, frame = next(decoded)
                except StopIteration:
                    return
                frame_cache[frame_index] = frame
            clip = np.stack([frame_cache[frame_index] for frame_index in indices])
            for frame_index in set(indices):
                if last_clip_using[frame_index] == clip_number:
                    del frame_cache[frame_index]
            yield position, clip
    finally:
        decoded.close()


def clip_to_tensor(clip: np.ndarray, mean: Iterable[float], std: Iterable[float]) -> torch.Tensor:
    """[T, H, W, 3] uint8 → float [T, 3, H, W], ``(x / 255 - mean) / std`` per channel."""
    import torch

    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
        raise ValueError(f"expected a [T, H, W, 3] uint8 clip, got {clip.dtype} {clip.shape}")
    mean_tensor = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1)
    std_tensor = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1)
    pixels = torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2).float()
    return ((pixels / 255.0 - mean_tensor) / std_tensor).contiguous()


def _decode_file_frames(
    info: VideoInfo,
    wanted_indices: list[int],
    size: tuple[int, int] | None,
    past_end: PastEnd,
) -> Iterator[tuple[int, np.ndarray]]:
    """Frames from ffmpeg, which drops unwanted frames and scales the rest itself.

    Every frame up to the last wanted one is decoded (a video cannot be read
    from the middle without seeking), but only the wanted ones are scaled,
    converted to RGB and piped, which halves the cost of sampling at 1 fps.
    """
    import imageio_ffmpeg

    _silence_resize_warning()
    filters = []
    if wanted_indices != list(range(len(wanted_indices))):
        filters.append(f"select='{_select_expression(_runs(wanted_indices))}'")
    if size is not None and tuple(size) != (info.width, info.height):
        filters.append(f"scale={size[0]}:{size[1]}:flags={_SCALE_FLAGS}")
    output_params = ["-map", "0:v:0", "-fps_mode", "passthrough"]
    output_params += ["-frames:v", str(len(wanted_indices))]
    with contextlib.ExitStack() as cleanup:
        filtergraph = ",".join(filters)
        if len(filtergraph) > _LONGEST_INLINE_FILTER:
            script = cleanup.enter_context(_temporary_text_file(filtergraph))
            output_params += ["-/vf", script]  # ffmpeg ≥ 7 reads the option from a file
        elif filtergraph:
            output_params += ["-vf", filtergraph]
        reader = imageio_ffmpeg.read_frames(info.path, output_params=output_params)
        cleanup.callback(reader.close)
        try:
            metadata = next(reader)
        except (OSError, IndexError, AttributeError) as error:
            raise InputError(
                f"{info.path}: cannot be read any more ({_first_line(error)})"
            ) from error
        width, height = metadata["size"]
        frames_received = 0
        for frame_bytes in _frames_or_input_error(reader, info):
            frame = np.frombuffer(frame_bytes, dtype=np.uint8).reshape(height, width, 3)
            yield wanted_indices[frames_received], frame.copy()
            frames_received += 1
            if frames_received == len(wanted_indices):
                return
    if past_end == "error":
        missing_index = wanted_indices[frames_received]
        raise InputError(
            f"{info.path}: frame {missing_index} cannot be decoded: the video ends before it, "
            f"although it reports {info.frame_count} frames (truncated file?)"
        )


# An argument stays far below Linux's 128 KiB limit; longer graphs go in a file.
_LONGEST_INLINE_FILTER = 16_000


def _runs(sorted_indices: list[int]) -> list[tuple[int, int]]:
    """[0, 1, 2, 7, 9, 10] → [(0, 2), (7, 7), (9, 10)]."""
    runs: list[tuple[int, int]] = []
    for index in sorted_indices:
        if runs and index == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


def _select_expression(runs: list[tuple[int, int]]) -> str:
    """An ffmpeg expression true for frame numbers ``n`` inside the runs.

    A balanced tree of ``if(lt(n, pivot), left, right)``: ffmpeg evaluates one
    branch only, so each frame costs log(runs) comparisons, and the nesting
    stays shallow (a flat sum of thousands of terms overflows ffmpeg's parser).
    """
    if len(runs) == 1:
        first, last = runs[0]
        return f"eq(n,{first})" if first == last else f"between(n,{first},{last})"
    middle = len(runs) // 2
    left = _select_expression(runs[:middle])
    right = _select_expression(runs[middle:])
    return f"if(lt(n,{runs[middle][0]}),{left},{right})"


@contextlib.contextmanager
def _temporary_text_file(text: str) -> Iterator[str]:
    descriptor, name = tempfile.mkstemp(prefix="vgem-filter-", suffix=".txt")
    try:
        with os.fdopen(descriptor, "w") as script:
            script.write(text)
        yield name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)


def _frames_or_input_error(reader: Iterator[bytes], info: VideoInfo) -> Iterator[bytes]:
    """imageio-ffmpeg's frames, its multi-line RuntimeError turned into one line."""
    while True:
        try:
            frame_bytes = next(reader)
        except StopIteration:
            return
        except RuntimeError as error:
            reason = str(error).splitlines()[1:2] or ["decoding failed"]
            raise InputError(f"{info.path}: decoding failed ({reason[0].strip()})") from error
        yield frame_bytes


def _decode_folder_frames(
    info: VideoInfo, wanted_indices: list[int], size: tuple[int, int] | None
) -> Iterator[tuple[int, np.ndarray]]:
    frame_files = _list_frame_files(Path(info.path))
    if len(frame_files) != info.frame_count:
        raise InputError(
            f"{info.path}: the folder now holds {len(frame_files)} frames, "
            f"not the {info.frame_count} it held when it was opened"
        )
    for frame_index in wanted_indices:
        yield frame_index, _load_frame_image(frame_files[frame_index], info, size)


def _load_frame_image(
    image_path: Path, info: VideoInfo, size: tuple[int, int] | None
) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(image_path) as image:
            rgb_image = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InputError(f"{image_path}: cannot decode the image ({_first_line(error)})") from error
    if rgb_image.size != (info.width, info.height):
        raise InputError(
            f"{image_path}: the image is {rgb_image.size[0]}x{rgb_image.size[1]}, but the "
            f"folder's frames are {info.width}x{info.height}; all frames must be one size"
        )
    if size is not None and tuple(size) != rgb_image.size:
        rgb_image = rgb_image.resize(tuple(size), Image.BICUBIC)
    return np.asarray(rgb_image, dtype=np.uint8).copy()


class _ResizeWarningFilter(logging.Filter):
    """imageio-ffmpeg warns whenever output size differs from source: that is our intent."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "frame size for reading" not in record.getMessage()


_resize_warning_filter = _ResizeWarningFilter()


def _silence_resize_warning() -> None:
    imageio_logger = logging.getLogger("imageio_ffmpeg")
    if _resize_warning_filter not in imageio_logger.filters:
        imageio_logger.addFilter(_resize_warning_filter)


# --------------------------------------------------------------------------- read-ahead


_STOP_WAIT_SECONDS = 3.0


@dataclass
class _Finished:
    error: BaseException | None = None


def _read_ahead(produce: Callable[[], Iterator[_T]], depth: int) -> Iterator[_T]:
    """Run ``produce()`` on a thread, ``depth`` items ahead of the consumer.

    Decoding (ffmpeg, PIL) releases the GIL, so it overlaps with model work.
    The producer's iterator is created, consumed and closed on its own thread;
    closing the returned iterator tells it to stop, and it closes the decoder
    as soon as its current read returns. That read may wait for a frame far
    ahead (sparse requests), so the consumer waits only briefly and a late
    producer finishes on its own; either way ffmpeg exits.
    """
    items: queue.Queue[_T | _Finished] = queue.Queue(maxsize=depth)
    stop_requested = threading.Event()

    def offer(item: _T | _Finished) -> bool:
        while not stop_requested.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run_producer() -> None:
        try:
            produced = produce()
            try:
                for item in produced:
                    if not offer(item):
                        return
            finally:
                close = getattr(produced, "close", None)
                if close is not None:
                    close()
        except Exception as error:
            offer(_Finished(error))
            return
        offer(_Finished())

    def consume() -> Iterator[_T]:
        producer = threading.Thread(target=run_producer, name="vgem-decode", daemon=True)
        producer.start()
        try:
            while True:
                item = items.get()
                if isinstance(item, _Finished):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            stop_requested.set()
            producer.join(timeout=_STOP_WAIT_SECONDS)

    return consume()
