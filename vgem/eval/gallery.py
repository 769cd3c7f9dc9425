"""The report's gallery: which samples it shows, and their small pictures.

The predictions file holds each sample's point, boxes and (since this module)
its action heatmap as a tiny quantized map (:func:`pack_map`, about 300 bytes
a line), but no frames: a frame is decoded again when the report is written,
for the few samples the gallery shows only (:data:`GALLERY_LIMIT`), with one
fast-seeking ffmpeg call each, in parallel. Pictures are JPEGs of at most
:data:`THUMBNAIL_WIDTH` pixels across, kept in the ``report/`` folder beside
``report.html`` and reused while the sample's line is unchanged, so writing
the report again (``vgem eval --show``) decodes nothing new. A video that is
gone draws the heatmap, boxes and point on grey.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vgem.eval.lines import is_number

if TYPE_CHECKING:
    from vgem.outputs import OwnedFolder

GALLERY_LIMIT = 60  # pictures in a report at most (about 10 KB each)
PER_CLASS = 4  # of one class at most: misses first, then hits
THUMBNAIL_WIDTH = 224
DECODERS = 8  # ffmpeg processes at once
BOX_COLOUR = (0, 255, 0)
PREDICTED_BOX_COLOUR = (0, 220, 255)  # cyan: the region vgem found around its point
POINT_COLOURS = {True: (255, 255, 255), False: (255, 0, 255)}  # hit, miss


# --------------------------------------------------------------------------- heatmaps in lines


def pack_map(similarity_map: np.ndarray) -> dict[str, Any]:
    """A raw ``[h, w]`` map as JSON: min-max scaled to 0..255, row-major, base64.

    The display normalizes the map anyway (min-max), so only the quantization
    (1/255 of its range) is lost.
    """
    values = np.nan_to_num(np.asarray(similarity_map, dtype=np.float64), nan=0.0)
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    levels = np.round(scaled * 255).astype(np.uint8)
    return {
        "shape": list(levels.shape),
        "uint8": base64.b64encode(levels.tobytes()).decode("ascii"),
    }


def unpack_map(packed: Any) -> np.ndarray | None:
    """The ``[h, w]`` map in [0, 1] of :func:`pack_map`; None when absent or damaged."""
    if not isinstance(packed, Mapping):
        return None
    try:
        height, width = (int(size) for size in packed["shape"])
        raw = base64.b64decode(str(packed["uint8"]), validate=True)
        return np.frombuffer(raw, dtype=np.uint8).reshape(height, width).astype(np.float32) / 255
    except (KeyError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- choosing


def choose_samples(
    lines: Sequence[Mapping[str, Any]],
    class_order: Sequence[str],
    *,
    limit: int = GALLERY_LIMIT,
    per_class: int = PER_CLASS,
) -> list[Mapping[str, Any]]:
    """Up to ``per_class`` scored lines of each class in ``class_order`` (worst first),
    misses before hits but both when a class has both, until ``limit``."""
    by_class: dict[str, list[Mapping[str, Any]]] = {}
    for line in lines:
        if "hit" in line:
            by_class.setdefault(str(line.get("class")), []).append(line)
    chosen: list[Mapping[str, Any]] = []
    for name in class_order:
        members = by_class.get(name, [])
        misses = [line for line in members if not line["hit"]]
        hits = [line for line in members if line["hit"]]
        half = per_class // 2
        take_misses = min(len(misses), max(half, per_class - len(hits)))
        picked = misses[:take_misses] + hits[: per_class - take_misses]
        chosen += picked[: max(0, limit - len(chosen))]
        if len(chosen) >= limit:
            break
    return chosen


# --------------------------------------------------------------------------- pictures


@dataclass(frozen=True)
class Picture:
    """A gallery picture: its file name in the report folder, and whether a frame is in it."""

    name: str
    has_frame: bool


def picture_name(line: Mapping[str, Any]) -> str:
    """A file name that changes whenever what the picture shows changes."""
    keys: tuple[str, ...] = ("id", "settings", "sample", "time", "frame", "model_point")
    keys = (*keys, "model_boxes", "hit", "predicted_box")
    text = repr([line.get(key) for key in keys]) + repr(line.get("action_map"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20] + ".jpg"


def write_pictures(
    lines: Sequence[Mapping[str, Any]], root: Path, folder: OwnedFolder, subfolder: str
) -> dict[str, Picture]:
    """A picture per line (by id) in ``subfolder`` of the run folder ``folder``: decoded,
    drawn and written, or reused.

    A picture's name is a hash of what it shows, so one already there is reused
    as it is. Pictures of earlier reports that this one does not show are
    removed, but only those vgem wrote (and nobody has changed since).
    """
    pictures = folder.make_folder(subfolder)
    wanted = {str(line["id"]): picture_name(line) for line in lines}
    to_draw = [line for line in lines if not (pictures / wanted[str(line["id"])]).exists()]

    def draw(line: Mapping[str, Any]) -> tuple[str, bool]:
        frame = grab_frame(root / str(line.get("video", "")), _number(line.get("time")))
        image = card_image(line, frame)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        data = buffer.getvalue()
        folder.write(f"{subfolder}/{wanted[str(line['id'])]}", lambda path: path.write_bytes(data))
        return str(line["id"]), frame is not None

    drawn: dict[str, bool] = {}
    if to_draw:
        with ThreadPoolExecutor(max_workers=min(DECODERS, len(to_draw))) as pool:
            drawn = dict(pool.map(draw, to_draw))
    shown = set(wanted.values())
    for stale in pictures.glob("*.jpg"):
        if stale.name not in shown:
            folder.remove(stale)  # only vgem's own pictures go
    return {
        sample_id: Picture(name, drawn.get(sample_id, True)) for sample_id, name in wanted.items()
    }


def _number(value: Any) -> float:
    """A line's number as a float (0 when it is not one: a damaged line draws nothing)."""
    return float(value) if is_number(value) else 0.0


def grab_frame(video: Path, time: float, width: int = THUMBNAIL_WIDTH) -> np.ndarray | None:
    """The frame at ``time`` seconds, ``width`` pixels across (aspect kept); None if the
    video cannot be read. A frame folder's frame is the image at that index (1 fps)."""
    from PIL import Image

    try:
        if video.is_dir():
            from vgem.video.probe import list_frame_files

            files = list_frame_files(video)
            if not files:
                return None
            with Image.open(files[min(len(files) - 1, max(0, round(time)))]) as opened:
                image = opened.convert("RGB")
        elif video.is_file():
            image = _ffmpeg_frame(video, time)
            if image is None:
                return None
        else:
            return None
        height = max(1, round(width * image.height / max(1, image.width)))
        resized = image.resize((width, height), Image.BILINEAR)  # type: ignore[attr-defined]
        return np.asarray(resized, dtype=np.uint8).copy()
    except (OSError, ValueError):
        return None


def _ffmpeg_frame(video: Path, time: float) -> Any:
    """One frame with a fast (keyframe) seek, as a PIL image; None on failure."""
    import imageio_ffmpeg
    from PIL import Image

    from vgem.video.probe import ffmpeg_input

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-v", "error", "-nostdin"]
    command += ["-ss", f"{max(0.0, time):.6f}", "-i", ffmpeg_input(video)]
    command += ["-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "pipe:1"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or not done.stdout:
        return None
    return Image.open(io.BytesIO(done.stdout)).convert("RGB")


def card_image(line: Mapping[str, Any], frame: np.ndarray | None) -> Any:
    """The picture of a line: its frame (grey when gone) under the action heatmap, the
    ground-truth boxes and the predicted point, scaled from the S x S model input."""
    from PIL import Image, ImageDraw

    from vgem.render import blend, draw_point

    input_size = max(1, int(line.get("input_size") or THUMBNAIL_WIDTH))
    if frame is None:
        frame = np.full((THUMBNAIL_WIDTH, THUMBNAIL_WIDTH, 3), 96, dtype=np.uint8)
    height, width = frame.shape[:2]
    heatmap = unpack_map(line.get("action_map"))
    if heatmap is not None:
        frame = blend(frame, heatmap, 0.45)  # stretched over the frame, bilinear
    x_scale, y_scale = width / input_size, height / input_size
    image = Image.fromarray(frame)
    pen = ImageDraw.Draw(image)
    for box in line.get("model_boxes") or []:
        x1, y1, x2, y2 = (float(value) for value in box)
        # an inverted box (x2 < x1, kept from the release: a miss for any point) is drawn too
        left, right = sorted((x1 * x_scale, x2 * x_scale))
        top, bottom = sorted((y1 * y_scale, y2 * y_scale))
        pen.rectangle([left, top, right, bottom], outline=BOX_COLOUR, width=2)
    predicted = line.get("predicted_box")
    if predicted is not None:  # beside the ground truth: vgem's box around its point
        x1, y1, x2, y2 = (float(value) for value in predicted)
        pen.rectangle(
            [x1 * x_scale, y1 * y_scale, (x2 + 1) * x_scale - 1, (y2 + 1) * y_scale - 1],
            outline=PREDICTED_BOX_COLOUR,
            width=1,
        )
    point = line.get("model_point")
    if point is not None:
        centre = ((point[0] + 0.5) * x_scale - 0.5, (point[1] + 0.5) * y_scale - 0.5)
        colour = POINT_COLOURS[bool(line.get("hit"))]
        return Image.fromarray(draw_point(np.asarray(image), centre, colour, radius=4))
    return image


def current_lines(
    records: Iterable[Mapping[str, Any]], settings_hash: str
) -> dict[str, Mapping[str, Any]]:
    """The latest line of each sample made with these settings (what the figures used)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record.get("settings") == settings_hash:
            latest[str(record["id"])] = record
    return latest
