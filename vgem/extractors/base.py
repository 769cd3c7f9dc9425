"""What an extractor plugin returns.

An extractor turns a query into candidate verbs and objects; the prompt
templates (vgem.prompts) turn those into text prompts. Several candidates are
allowed: the grounder keeps, per clip, the one whose prompt matches the clip
best (../METHOD.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Extraction:
    """Candidate verbs and objects of one query, in a deterministic order.

    ``action`` is the text that fills the action template (the query as the
    user meant it, e.g. ``cut onion`` for the label ``cut_onion``).
    """

    action: str
    verbs: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    extractor: str = ""
    warnings: tuple[str, ...] = ()


@runtime_checkable
class Extractor(Protocol):
    """A ``vgem.extractors`` entry point names a class built with no arguments."""

    name: str

    def extract(self, query: str) -> Extraction: ...
