"""Which samples a run evaluates: all of them or a (seeded) random subset, with every
problem met while reading them and the data report of what was read.

Apart from :mod:`vgem.eval.samples` (the sample types) because it ties the
samples to their data report (:mod:`vgem.eval.data_report`), which reads
those types too.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from vgem.eval.data_report import DataReport, build_data_report
from vgem.eval.samples import DataNote, ManifestProblem, Sample, VideoSample


@dataclass(frozen=True)
class Selection:
    """The samples a run evaluates, in order, and what could not be read.

    ``problems`` holds every problem the reader reported, in reading order,
    including those that still carry a sample (one that cannot be run): such
    a sample is in ``samples`` as well, with its reason in ``known_errors``,
    so that it is counted as an error rather than silently dropped. ``data``
    is the data report of everything read, before any limit
    (:class:`vgem.eval.data_report.DataReport`).
    """

    samples: list[Any]  # Sample or VideoSample objects, as the source reads them
    problems: list[ManifestProblem]
    known_errors: dict[str, str] = field(default_factory=dict)
    data: DataReport | None = None


def select_samples(
    items: Iterable[Sample | VideoSample | ManifestProblem | DataNote],
    *,
    limit: int | None = None,
    shuffle_seed: int | None = None,
) -> Selection:
    """The samples to run: all of them, or ``limit`` of them in (seeded) random order.

    Shuffling before limiting makes ``limit=200, shuffle_seed=0`` a fair
    random subset rather than the first videos of the file; the same seed
    always gives the same subset, so such a run can be resumed. The data
    report covers every item read, whatever the limit.
    """
    samples: list[Sample | VideoSample] = []
    problems: list[ManifestProblem] = []
    notes: list[DataNote] = []
    known_errors: dict[str, str] = {}
    seen_ids: set[str] = set()
    for item in items:
        if isinstance(item, DataNote):
            notes.append(item)
            continue
        if isinstance(item, ManifestProblem):
            problems.append(item)
            if item.sample is None or item.sample.id in seen_ids:
                continue
            known_errors[item.sample.id] = item.reason
            item = item.sample
        elif item.id in seen_ids:
            source = item.dataset or "samples"
            problems.append(ManifestProblem(source, f"duplicate id {item.id!r}"))
            continue
        seen_ids.add(item.id)
        samples.append(item)
    data = build_data_report(samples, problems, notes)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(samples)
    if limit is not None:
        samples = samples[:limit]
        kept = {sample.id for sample in samples}
        known_errors = {key: reason for key, reason in known_errors.items() if key in kept}
    return Selection(samples, problems, known_errors, data)
