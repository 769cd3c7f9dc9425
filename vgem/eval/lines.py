"""Prediction lines read back from disk are checked before anything uses them.

A run's ``predictions.jsonl`` is a text file a person may open and edit. A
line whose fields have the wrong types (``"time": "abc"``, a box of three
numbers, ``"iou": "x"``) must not reach the scoring, the report's gallery or
``vgem eval --show`` as an internal error: each task names the problem of
such a line (:meth:`vgem.eval.tasks.Task.line_problem`), the line is counted
as damaged, and its sample is grounded again as if it had no line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]


def is_number(value: Any) -> bool:
    """A finite int or float (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_text(value: Any) -> bool:
    return isinstance(value, str)


def is_flag(value: Any) -> bool:
    return isinstance(value, bool)


def optional(check: Check) -> Check:
    return lambda value: value is None or check(value)


def row_of(*checks: Check) -> Check:
    """A list of exactly ``len(checks)`` items, each passing its check."""
    return lambda value: (
        isinstance(value, list)
        and len(value) == len(checks)
        and all(check(item) for check, item in zip(checks, value, strict=True))
    )


def list_of(check: Check) -> Check:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


def map_of(check: Check) -> Check:
    return lambda value: (
        isinstance(value, Mapping)
        and all(isinstance(key, str) and check(item) for key, item in value.items())
    )


POINT = row_of(is_number, is_number)
MODEL_POINT = row_of(is_whole, is_whole)
BOX = row_of(is_number, is_number, is_number, is_number)

#: Fields every line may have, and what each must be when present.
HEAD_FIELDS: dict[str, Check] = {
    "settings": is_text,
    "sample": is_text,
    "error": is_text,
    "seconds": is_number,
    "at": is_text,
    "video": is_text,
}


def field_problem(line: Mapping[str, Any], fields: Mapping[str, Check]) -> str | None:
    """The first field of ``line`` that is present and fails its check, as a sentence."""
    for name, check in fields.items():
        if name in line and not check(line[name]):
            shown = repr(line[name])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            return f"{name} is {shown}"
    return None


def missing(line: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """The first of ``names`` that ``line`` lacks."""
    for name in names:
        if name not in line:
            return f"{name} is missing"
    return None
