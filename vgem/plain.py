"""Small conversions every writer of vgem's JSON files needs, kept in one place.

Results, run logs and reports all stamp times, turn settings (tuples,
dataclasses) into JSON values and average figures that may be missing; doing
each once keeps their files consistent with one another.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any


def utc_timestamp() -> str:
    """Now, in UTC, to the second: ``2026-11-27T09:30:00+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def plain_json(value: Any) -> Any:
    """``value`` as JSON would read it back: dataclasses and mappings as dicts with
    string keys, tuples as lists.

    Values compared with what a results file holds must go through this first,
    or ``(0.3, 0.4)`` and ``[0.3, 0.4]`` would differ.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain_json(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): plain_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(item) for item in value]
    return value


def mean_of(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are present; None when none is."""
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None


def fingerprint(value: Any) -> str:
    """A short, stable hash of a JSON-able value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def visible(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``), so that
    text read from a data file (a dataset name, a query, an error) cannot move the
    cursor, recolour or clear the terminal it is printed on."""
    return "".join(
        f"\\x{ord(character):02x}" if unicodedata.category(character) == "Cc" else character
        for character in str(text)
    )
