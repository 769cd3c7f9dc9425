"""When: training-free temporal localization of queries in untrimmed video.

The original path's clip embedding, which every grounded time gets for free,
is compared with each query's prompts (a ``vgem.temporal`` scorer plugin);
times whose best query clears a background threshold take that query's label,
and consecutive labelled times become segments.
"""

from vgem.temporal.segments import (
    Segment,
    TemporalSettings,
    Timeline,
    label_times,
    localize,
    otsu_threshold,
    segments_from_labels,
)

__all__ = [
    "Segment",
    "TemporalSettings",
    "Timeline",
    "label_times",
    "localize",
    "otsu_threshold",
    "segments_from_labels",
]
