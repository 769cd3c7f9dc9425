"""The ``keywords`` extractor: the first word is the verb, the last content word the object.

An extractor is a class built with no arguments, with a ``name`` and
``extract(query) -> Extraction``; vgem fills its prompt templates from the
verbs and objects it returns (several candidates are allowed, the grounder
keeps the best-matching one per clip).
"""

from __future__ import annotations

from vgem.extractors.base import Extraction, normalize_sentence

# Words that never name the object of an action query.
STOP_WORDS = frozenset({"a", "an", "the", "some", "into", "onto", "in", "on", "with", "to", "of"})


class KeywordExtractor:
    """Splits "pour water into the cup" into verb "pour" and object "cup"."""

    name = "keywords"

    def extract(self, query: str) -> Extraction:
        action = normalize_sentence(query)  # raises InputError for an empty query
        words = action.split()
        verb, rest = words[0], [word for word in words[1:] if word.lower() not in STOP_WORDS]
        return Extraction(
            action=action,
            verbs=(verb,),
            objects=(rest[-1],) if rest else (),
            extractor=self.name,
        )
