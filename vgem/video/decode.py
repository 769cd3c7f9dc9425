"""Streaming decode at model resolution: frames and clips, never the whole video.

Frames are decoded in one forward pass, resized by ffmpeg while decoding to the
size a model wants, and only the frames still needed are kept.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from vgem.errors import InputError, first_line
from vgem.video.probe import VideoInfo, ffmpeg_input, list_frame_files, silence_resize_warning
from vgem.video.read_ahead import run_ahead
from vgem.video.times import clip_frame_indices

if TYPE_CHECKING:
    import torch

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


def iter_frames(
    info: VideoInfo,
    indices: Iterable[int],
    size: tuple[int, int] | None,
    *,
    past_end: PastEnd = "error",
    read_ahead: int = DEFAULT_READ_AHEAD,
) -> Generator[tuple[int, np.ndarray], None, None]:
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

    return run_ahead(produce, max(1, read_ahead))


def _no_frames() -> Generator[tuple[int, np.ndarray], None, None]:
    yield from ()


def iter_full_frames(
    info: VideoInfo, *, past_end: PastEnd = "error"
) -> Generator[tuple[int, np.ndarray], None, None]:
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
) -> Generator[tuple[int, np.ndarray], None, None]:
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
) -> Generator[tuple[int, np.ndarray], None, None]:
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

    silence_resize_warning()
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
        reader = imageio_ffmpeg.read_frames(ffmpeg_input(info.path), output_params=output_params)
        cleanup.callback(reader.close)
        try:
            metadata = next(reader)
        except (OSError, IndexError, AttributeError) as error:
            raise InputError(
                f"{info.path}: cannot be read any more ({first_line(error)})"
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
    frame_files = list_frame_files(Path(info.path))
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
        raise InputError(f"{image_path}: cannot decode the image ({first_line(error)})") from error
    if rgb_image.size != (info.width, info.height):
        raise InputError(
            f"{image_path}: the image is {rgb_image.size[0]}x{rgb_image.size[1]}, but the "
            f"folder's frames are {info.width}x{info.height}; all frames must be one size"
        )
    if size is not None and tuple(size) != rgb_image.size:
        # Pillow sets its filter constants with setattr, so its stubs lack them.
        rgb_image = rgb_image.resize(size, Image.BICUBIC)  # type: ignore[attr-defined]
    return np.asarray(rgb_image, dtype=np.uint8).copy()
