"""The ``auto`` extractor, vgem's default: labels split directly, sentences parsed.

Dataset labels (``cut_onion``, ``BrushingTeeth``, ``cut onion``) carry their
verb first and need no model; running a tagger on them would only add ways to
get them wrong. Sentences need stanza. When stanza cannot run, grounding still
goes ahead with the label split and a warning that says how to do better,
because a rough prompt beats no result.
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from pathlib import Path

from vgem.extractors.base import Extraction, normalize_sentence
from vgem.extractors.label import LabelExtractor
from vgem.extractors.stanza import NlpUnavailable, StanzaExtractor

LABEL_MAX_WORDS = 3
# Labels never contain articles; "the onion" or "a man cooking" is a phrase.
_ARTICLES = frozenset({"a", "an", "the"})
# Punctuation that occurs inside label words: cut_onion, stir-fry, person's.
_LABEL_PUNCTUATION = frozenset("_-'’")


def _has_sentence_punctuation(text: str) -> bool:
    return any(
        unicodedata.category(character).startswith("P") and character not in _LABEL_PUNCTUATION
        for character in text
    )


def is_label_shaped(query: str) -> bool:
    """Whether the query reads as a dataset label rather than a sentence.

    An ``_``-joined or single-word (including CamelCase) query is a label
    whatever its length, since no sentence looks like that; space-separated
    words are a label only up to three of them and without an article.
    """
    words = query.split()
    if not words or _has_sentence_punctuation(query):
        return False
    if "_" in query or len(words) == 1:
        return True
    return len(words) <= LABEL_MAX_WORDS and not any(word.casefold() in _ARTICLES for word in words)


class AutoExtractor:
    """Routes a query to ``label`` or ``stanza`` by its shape."""

    name = "auto"

    def __init__(
        self, model_dir: str | Path | None = None, cache_dir: str | Path | None = None
    ) -> None:
        self._label = LabelExtractor()
        self._stanza = StanzaExtractor(model_dir, cache_dir)

    def extract(self, query: str) -> Extraction:
        action = normalize_sentence(query)  # rejects empty and punctuation-only queries
        if is_label_shaped(query):
            return self._label.extract(query)
        try:
            return self._stanza.extract(query)
        except NlpUnavailable as reason:
            fallback = self._label.extract(action)
            warning = "Split the sentence as a label (first word = verb): " + " ".join(
                str(reason).split()
            )
            return replace(fallback, warnings=(*fallback.warnings, warning))
