"""A grounding in the shapes other tools load: a CSV table, COCO-style JSON, masks.

- **CSV** (:func:`write_csv`): one row per query and grounded time, for pandas
  or a spreadsheet: ``time, frame, query, x, y, x1, y1, x2, y2, box_score,
  score`` and, when ``--temporal`` ran, ``label`` (the query the timeline puts
  at that time, empty for none). Points are pixel centres, boxes pixel edges,
  both in the original video's pixels.
- **COCO** (:func:`coco_document`): images are the grounded frames (each with
  its ``time``, ``frame_index`` and the ``video`` it comes from; ``file_name``
  names the frame as it would be extracted: ``<video stem>/<frame, 6 digits>.jpg``),
  categories are the queries, annotations are the boxes as ``[x, y, w, h]``
  with ``score`` (the box's mean heat), the ``point`` and the clip-text
  ``clip_score``. FiftyOne and CVAT import this as detections.
- **Masks** (:func:`write_masks`): each query's region at each time, bit-packed
  in the model input (``masks`` uint8 ``[T, Q, ceil(S*S/8)]``, ``mask_size``
  ``[S, S]``), with ``times``, ``frames``, ``queries``, ``boxes``, ``model_boxes``
  and ``video_size``: ``np.unpackbits(masks[t, q])[: S * S].reshape(S, S)``
  is one mask; stretched to the video's size it covers the frame.

Every file goes through vgem's staging (whole or absent).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vgem.errors import InputError
from vgem.results import GroundingResult, json_text
from vgem.staging import Destination, atomic_write
from vgem.version import __version__

CSV_COLUMNS = ("time", "frame", "query", "x", "y", "x1", "y1", "x2", "y2", "box_score", "score")
COCO_FRAME_DIGITS = 6


def csv_rows(result: GroundingResult) -> Iterator[dict[str, Any]]:
    """The rows of :func:`write_csv`, in time order, queries in their order."""
    labels = None
    if result.timeline is not None:
        names = [query.query for query in result.queries]
        labels = ["" if label is None else names[label] for label in result.timeline.labels]
    for position in range(len(result.times)):
        for query in result.queries:
            entry = query.times[position]
            box = entry.box or (None, None, None, None)
            row: dict[str, Any] = {
                "time": entry.time,
                "frame": entry.frame,
                "query": query.query,
                "x": round(entry.point[0], 3),
                "y": round(entry.point[1], 3),
                **{
                    name: None if value is None else round(value, 3)
                    for name, value in zip(("x1", "y1", "x2", "y2"), box, strict=True)
                },
                "box_score": None if entry.box_score is None else round(entry.box_score, 6),
                "score": round(entry.score, 6),
            }
            if labels is not None:
                row["label"] = labels[position]
            yield row


def csv_text(result: GroundingResult) -> str:
    """The CSV table of a grounding (a header, then one row per query and time)."""
    columns = [*CSV_COLUMNS, *(["label"] if result.timeline is not None else [])]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(result):
        writer.writerow(row)
    return buffer.getvalue()


def write_csv(result: GroundingResult, destination: Destination) -> Path:
    text = csv_text(result)
    return atomic_write(destination, lambda temporary: temporary.write_text(text, "utf-8"))


def coco_document(result: GroundingResult) -> dict[str, Any]:
    """The COCO-style document of a grounding (see the module's docstring)."""
    video = result.video
    stem = Path(video.path).stem if not video.is_frame_folder else Path(video.path).name
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for position in range(len(result.times)):
        frame = int(result.frames[position])
        image_id = position + 1
        images.append(
            {
                "id": image_id,
                "file_name": f"{stem}/{frame:0{COCO_FRAME_DIGITS}d}.jpg",
                "width": video.width,
                "height": video.height,
                "frame_index": frame,
                "time": float(result.times[position]),
                "video": str(video.path),
            }
        )
        for category, query in enumerate(result.queries, start=1):
            entry = query.times[position]
            if entry.box is None:
                continue
            x1, y1, x2, y2 = entry.box
            width, height = x2 - x1, y2 - y1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [round(x1, 3), round(y1, 3), round(width, 3), round(height, 3)],
                    "area": round(width * height, 3),
                    "iscrowd": 0,
                    "score": None if entry.box_score is None else round(entry.box_score, 6),
                    "point": [round(entry.point[0], 3), round(entry.point[1], 3)],
                    "clip_score": round(entry.score, 6),
                }
            )
    return {
        "info": {
            "description": f"vgem grounding of {video.path}",
            "version": __version__,
            "backbone": result.backbone,
        },
        "licenses": [],
        "images": images,
        "categories": [
            {"id": category, "name": query.query, "supercategory": "action"}
            for category, query in enumerate(result.queries, start=1)
        ],
        "annotations": annotations,
    }


def write_coco(result: GroundingResult, destination: Destination) -> Path:
    text = json_text(coco_document(result))
    return atomic_write(destination, lambda temporary: temporary.write_text(text, "utf-8"))


def write_masks(result: GroundingResult, destination: Destination) -> Path:
    """The regions of a grounding made with ``masks=True`` as a compressed ``.npz``."""
    packed = result.masks
    if packed is None:
        raise InputError(
            "This grounding kept no masks: ground with `masks` on to write them.",
            settings=("masks",),
        )
    entries = [[query.times[t] for query in result.queries] for t in range(len(result.times))]

    def boxes(field: str) -> np.ndarray:
        return np.array(
            [[getattr(entry, field) or (0, 0, 0, 0) for entry in row] for row in entries],
            dtype=np.float64 if field == "box" else np.int64,
        ).reshape(len(result.times), len(result.queries), 4)

    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            np.savez_compressed(
                handle,
                masks=packed,
                mask_size=np.array([result.input_size, result.input_size], dtype=np.int64),
                times=np.asarray(result.times, dtype=np.float64),
                frames=np.asarray(result.frames, dtype=np.int64),
                queries=np.array([query.query for query in result.queries]),
                boxes=boxes("box"),
                model_boxes=boxes("model_box"),
                video_size=np.array([result.video.width, result.video.height], dtype=np.int64),
            )

    return atomic_write(destination, write)
