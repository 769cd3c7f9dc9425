"""What an extractor plugin returns.

An extractor turns a query into candidate verbs and objects; the prompt
templates (vgem.prompts) turn those into text prompts. Several candidates are
allowed: the grounder keeps, per clip, the one whose prompt matches the clip
best (docs/method.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from vgem.errors import InputError

# Characters that end a sentence; the action template adds its own full stop.
_TRAILING_PUNCTUATION = ".!?;:,…。"


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


def has_words(text: str) -> bool:
    """Whether any letter or digit is present; punctuation alone is no query."""
    return any(character.isalnum() for character in text)


def normalize_sentence(query: str) -> str:
    """The query as the action prompt should read it.

    Whitespace is collapsed and sentence-final punctuation dropped, because the
    action template ends with its own full stop ("... the onion..").
    """
    text = " ".join(query.split())
    if not text:
        raise InputError("The query is empty; give the action to find, e.g. 'cut onion'.")
    if not has_words(text):
        raise InputError(f"The query {query!r} has no words; give the action to find.")
    return text.rstrip(_TRAILING_PUNCTUATION + " ")
