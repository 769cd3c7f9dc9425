"""Synthetic media for tests: tiny videos and frame folders whose pixels say which frame they are.

Each synthetic frame shows its index in binary as a 2 × 5 grid of large cells
(bit 0 top-left, row-major; a set bit is orange, a clear bit dark blue). Cells
are a fifth of the width and half the height, so the index survives codec
noise, chroma subsampling and resizing down to about 16 × 8 pixels; a decoder
that swapped colour channels, flipped or transposed the frame reads back a
different index or fails the colour check.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

GRID_ROWS = 2
GRID_COLUMNS = 5
MAX_FRAMES = 2 ** (GRID_ROWS * GRID_COLUMNS)
SET_COLOUR = (255, 96, 0)
CLEAR_COLOUR = (0, 0, 96)


def synthetic_frame(index: int, size: tuple[int, int]) -> np.ndarray:
    """An H×W×3 uint8 frame showing ``index`` (0 ≤ index < 1024) as its cell pattern."""
    if not 0 <= index < MAX_FRAMES:
        raise ValueError(f"synthetic frames encode 0..{MAX_FRAMES - 1}, not {index}")
    width, height = size
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = CLEAR_COLOUR
    for bit in range(GRID_ROWS * GRID_COLUMNS):
        if index >> bit & 1:
            rows, columns = _cell_bounds(bit, width, height)
            frame[rows[0] : rows[1], columns[0] : columns[1]] = SET_COLOUR
    return frame


def frame_index_from_pixels(frame: np.ndarray) -> int:
    """Read the index back from a (possibly re-encoded or resized) synthetic frame."""
    height, width = frame.shape[:2]
    index = 0
    for bit in range(GRID_ROWS * GRID_COLUMNS):
        rows, columns = _cell_bounds(bit, width, height)
        # The middle half of the cell keeps away from edges blurred by
        # scaling and chroma subsampling.
        row_margin = (rows[1] - rows[0]) // 4
        column_margin = (columns[1] - columns[0]) // 4
        centre = frame[
            rows[0] + row_margin : rows[1] - row_margin,
            columns[0] + column_margin : columns[1] - column_margin,
        ]
        if centre[..., 0].mean() > 128:
            index |= 1 << bit
    return index


def _cell_bounds(bit: int, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
    row, column = divmod(bit, GRID_COLUMNS)
    rows = (row * height // GRID_ROWS, (row + 1) * height // GRID_ROWS)
    columns = (column * width // GRID_COLUMNS, (column + 1) * width // GRID_COLUMNS)
    return rows, columns


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray] | int,
    *,
    size: tuple[int, int] = (64, 48),
    fps: float = 10.0,
    codec: str | None = None,
    faststart: bool = True,
    output_params: list[str] | None = None,
) -> Path:
    """Write a small, near-lossless test video; ``frames`` may be a frame count.

    The codec follows the suffix: .mp4 → H.264 lossless (qp 0, 4:4:4), .mkv →
    FFV1 (lossless), .avi → MJPEG at high quality. An MP4 is written with its
    index first (``faststart``) so that a truncated copy is still readable, as
    with a video cut off while downloading. Zero frames gives a container
    without a video stream. ``output_params`` go to ffmpeg as they are (e.g.
    a ``setpts`` filter for a variable frame rate).
    """
    video_path = Path(path)
    suffix = video_path.suffix.lower()
    chosen_codec = codec or {".mp4": "libx264", ".mkv": "ffv1", ".avi": "mjpeg"}[suffix]
    codec_params: list[str] = []
    pixel_format = "yuv444p"
    if chosen_codec == "libx264":
        codec_params += ["-qp", "0", "-preset", "ultrafast"]
    elif chosen_codec == "mjpeg":
        pixel_format = "yuvj444p"
        codec_params += ["-q:v", "2"]
    if suffix == ".mp4" and faststart:
        codec_params += ["-movflags", "+faststart"]
    frame_source = (
        (synthetic_frame(index, size) for index in range(frames))
        if isinstance(frames, int)
        else frames
    )
    writer = imageio_ffmpeg.write_frames(
        str(video_path),
        size,
        fps=fps,
        codec=chosen_codec,
        pix_fmt_out=pixel_format,
        quality=None,
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=codec_params + list(output_params or []),
    )
    writer.send(None)
    try:
        for frame in frame_source:
            writer.send(np.ascontiguousarray(frame, dtype=np.uint8))
    finally:
        writer.close()
    return video_path


def write_frameless_mp4(path: str | os.PathLike[str], size: tuple[int, int] = (64, 48)) -> Path:
    """An MP4 whose index lists a video track but whose frame data is gone.

    ffmpeg opens it and finds a video stream with zero readable frames, which
    is what a download that stopped right after the header leaves behind.
    """
    video_path = write_video(path, 5, size=size, faststart=True)
    content = video_path.read_bytes()
    media_data_start = content.index(b"mdat", content.index(b"moov"))
    video_path.write_bytes(content[: media_data_start + 4])
    return video_path


def truncate_file(path: str | os.PathLike[str], keep_fraction: float) -> int:
    """Cut a file to its first ``keep_fraction`` of bytes; return the new size."""
    file_path = Path(path)
    content = file_path.read_bytes()
    kept_size = int(len(content) * keep_fraction)
    file_path.write_bytes(content[:kept_size])
    return kept_size


def write_frame_folder(
    directory: str | os.PathLike[str], n: int, size: tuple[int, int] = (64, 48)
) -> list[Path]:
    """Write frames 0..n-1 as frame_1.png … frame_n.png (a naive sort puts frame_10 second)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(n):
        image_path = folder / f"frame_{index + 1}.png"
        Image.fromarray(synthetic_frame(index, size)).save(image_path)
        written.append(image_path)
    return written


def ffmpeg_child_pids() -> list[int]:
    """Process ids of this process's ffmpeg children, zombies included (Linux /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "stat").read_text()
        except OSError:
            continue
        name = status[status.index("(") + 1 : status.rindex(")")]
        parent_pid = int(status[status.rindex(")") + 2 :].split()[1])
        if parent_pid == os.getpid() and "ffmpeg" in name:
            children.append(int(entry.name))
    return children
