"""How a run was executed over all its sittings.

A resumable run (an evaluation, a many-video batch) may take several
sittings, each with its own executor and workers. Each sitting's account
(what the executor's ``execution()`` says, plus when it ran) is kept, and the
run's ``execution`` covers all of them: the figures a reader wants at the top
(which executor, how many workers ran, how many items, how long) summed over
the sittings, every worker listed with the sitting it belongs to, and the
sittings themselves under ``sittings``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Counts that add up over sittings.
SUMMED = ("seconds", "retried_units", "unscheduled_units")


def combine_sittings(sittings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One ``execution`` for a run made of ``sittings`` (oldest first).

    The settings of the last sitting (executor, address, resources) stand at
    the top; ``workers`` counts every worker that ran in any sitting,
    ``samples`` every line they gave, ``per_worker`` lists them all (each with
    its ``sitting``, counted from 1), and ``sittings`` keeps each account whole.
    """
    kept = [dict(sitting) for sitting in sittings if isinstance(sitting, Mapping)]
    if not kept:
        return {}
    combined: dict[str, Any] = {
        key: value for key, value in kept[-1].items() if key not in ("per_worker", "sittings")
    }
    per_worker = []
    for number, sitting in enumerate(kept, start=1):
        for worker in sitting.get("per_worker") or []:
            if isinstance(worker, Mapping):
                per_worker.append({**worker, "sitting": number})
    executors = sorted({str(sitting.get("executor")) for sitting in kept})
    combined["executor"] = executors[0] if len(executors) == 1 else "+".join(executors)
    combined["workers"] = len(per_worker)
    combined["samples"] = int(sum(_number(worker.get("samples")) for worker in per_worker))
    if "started_at" in kept[0]:  # the run's span: from its first sitting to its last
        combined["started_at"] = kept[0]["started_at"]
    for key in SUMMED:
        if any(key in sitting for sitting in kept):
            total = sum(_number(sitting.get(key)) for sitting in kept)
            combined[key] = int(total) if key != "seconds" else round(total, 3)
    busy = sum(
        _number(worker.get("busy_seconds")) - _number(worker.get("load_seconds"))
        for worker in per_worker
    )
    if "samples_per_second" in combined:  # per second of the run's wall time, all sittings
        seconds = combined.get("seconds") or 0
        rate = combined["samples"] / seconds if combined["samples"] and seconds else None
        combined["samples_per_second"] = None if rate is None else round(rate, 4)
    combined["grounding_seconds"] = round(busy, 3)
    combined["per_worker"] = per_worker
    combined["sittings"] = kept
    return combined


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
