"""A region per query and grounded time: the box (and mask) around the chosen point.

The paper answers "where" with a point; people also want the extent of what
was found. The region is read off the query's combined heatmap (the map whose
mix decides the point: the verb, object and action maps 1 : 1 : 3 when the
prompts are decomposed, else the one prompt's map), in the S x S model input:

- the pixels whose heat is at least ``threshold`` times the map's maximum
  (0.5 by default: the mask threshold of the evaluation's spatial mAP);
- of those, the connected part (8-neighbourhood) that holds the point, or,
  when the point itself lies below the threshold (the position average of the
  prompts' points can fall between their regions), the part nearest to it;
- its bounding box, widened where needed to hold the point: the box always
  contains its point, and never changes it.

``score`` is the mean heat inside the region (in [0, 1]). Boxes are given in
the original video's pixels as [x1, y1, x2, y2] with pixel *edges* (COCO's
convention: the frame is [0, width] x [0, height]), where points give pixel
centres; a region's mask stays in the model input, as its heatmaps do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vgem.prompts import PROMPT_ROLES

#: The fraction of the map's maximum a region keeps (the evaluation's mask threshold).
DEFAULT_REGION_THRESHOLD = 0.5
#: How the verb, object and action maps mix into a query's map when decomposed.
DECOMPOSED_WEIGHTS = (1.0, 1.0, 3.0)


@dataclass(frozen=True)
class Region:
    """A region in the S x S model input: its mask, its inclusive pixel box
    ``(x1, y1, x2, y2)`` and its mean heat."""

    mask: np.ndarray
    box: tuple[int, int, int, int]
    score: float


def combined_heatmap(heatmaps: np.ndarray, prompts_mode: str) -> np.ndarray:
    """A query's map ``[..., H, W]`` in [0, 1] from its three normalized heatmaps
    ``[..., 3, H, W]`` (verb, object, action): the one prompt's map, or the 1 : 1 : 3
    mix. The same mix decides the region, the annotated video's and the viewer's maps."""
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if prompts_mode in PROMPT_ROLES:
        return heatmaps[..., PROMPT_ROLES.index(prompts_mode), :, :]
    weights = np.asarray(DECOMPOSED_WEIGHTS, dtype=np.float32).reshape(3, 1, 1)
    return (heatmaps * weights).sum(axis=-3) / weights.sum()


def region_around(
    heatmap: np.ndarray, point: tuple[int, int], threshold: float = DEFAULT_REGION_THRESHOLD
) -> Region:
    """The region of ``heatmap`` ``[S, S]`` around ``point`` (x, y) in model pixels."""
    from scipy import ndimage

    heatmap = np.asarray(heatmap, dtype=np.float32)
    height, width = heatmap.shape
    x = min(max(int(point[0]), 0), width - 1)
    y = min(max(int(point[1]), 0), height - 1)
    peak = float(heatmap.max())
    above = heatmap >= threshold * peak if peak > 0 else np.zeros_like(heatmap, dtype=bool)
    labels, count = ndimage.label(above, structure=np.ones((3, 3), dtype=bool))
    mask = np.zeros_like(above)
    if count:
        label = labels[y, x]
        if label == 0:  # the point lies below the threshold: the nearest part
            _, (rows, columns) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
            label = labels[rows[y, x], columns[y, x]]
        mask = labels == label
    mask[y, x] = True  # the region holds its point
    rows_in, columns_in = np.nonzero(mask)
    box = (int(columns_in.min()), int(rows_in.min()), int(columns_in.max()), int(rows_in.max()))
    return Region(mask, box, float(heatmap[mask].mean()))


def box_in_original_pixels(
    box: tuple[int, int, int, int],
    input_size: int,
    frame_size: tuple[int, int],
    point: tuple[float, float] | None = None,
) -> tuple[float, float, float, float]:
    """An inclusive model-pixel box as [x1, y1, x2, y2] pixel edges of the original
    frame (the model input is the whole frame, stretched), widened to hold ``point``
    (original pixels; on a frame smaller than the model input a point can sit up to
    half a pixel outside its model pixel's edges), and kept inside [0, W] x [0, H]."""
    width, height = frame_size
    x_scale, y_scale = width / input_size, height / input_size
    x1, y1, x2, y2 = (
        x_scale * box[0],
        y_scale * box[1],
        x_scale * (box[2] + 1),
        y_scale * (box[3] + 1),
    )
    if point is not None:
        x1, y1 = min(x1, point[0]), min(y1, point[1])
        x2, y2 = max(x2, point[0]), max(y2, point[1])
    return (
        min(max(x1, 0.0), width),
        min(max(y1, 0.0), height),
        min(max(x2, 0.0), width),
        min(max(y2, 0.0), height),
    )


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """Boolean masks ``[..., S, S]`` bit-packed along their last two axes: uint8
    ``[..., ceil(S * S / 8)]`` (row-major, big-endian bits, as ``np.packbits``)."""
    masks = np.asarray(masks, dtype=bool)
    flat = masks.reshape(*masks.shape[:-2], masks.shape[-2] * masks.shape[-1])
    return np.packbits(flat, axis=-1)


def unpack_masks(packed: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The boolean masks ``[..., H, W]`` of :func:`pack_masks`."""
    height, width = size
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1)[..., : height * width]
    return bits.reshape(*bits.shape[:-1], height, width).astype(bool)
