"""The ``label`` extractor: dataset-style labels split without any NLP model.

Shapes (docs/method.md §5): ``verb_object`` and ``verb object…`` (the first word
is the verb, the rest the object), CamelCase (``BrushingTeeth`` reads
``Brushing Teeth``), and a single word (a verb without an object). The split
follows the authors' code so the prompts, and hence the heatmaps, match theirs.
"""

from __future__ import annotations

from vgem.errors import InputError
from vgem.extractors.base import Extraction, has_words


def split_camel_case(label: str) -> str:
    """Insert a space before every capital after the first character.

    Deliberately naive (``UseTV`` gives ``Use T V``): it is the authors' rule
    for DALY's class names, and matching it matters more than prettiness.
    """
    pieces = [label[0]]
    for character in label[1:]:
        if character.isupper() and not pieces[-1].endswith(" "):
            pieces.append(" ")
        pieces.append(character)
    return "".join(pieces)


def is_camel_case(text: str) -> bool:
    return (
        " " not in text
        and "_" not in text
        and text[:1].isupper()
        and any(character.isupper() for character in text[1:])
        and any(character.islower() for character in text)
    )


def normalize_label(query: str) -> str:
    """The words of a label-shaped query, space-separated."""
    text = " ".join(query.split())
    if not text:
        raise InputError("The query is empty; give the action to find, e.g. 'cut onion'.")
    if not has_words(text):
        raise InputError(f"The query {query!r} has no words; give the action to find.")
    if "_" in text:
        text = " ".join(part for part in text.replace("_", " ").split())
    elif is_camel_case(text):
        text = split_camel_case(text)
    if not text:
        raise InputError(f"The query {query!r} has no words; give the action to find.")
    return text


class LabelExtractor:
    """Splits labels; the first word is the verb, the rest the object."""

    name = "label"

    def extract(self, query: str) -> Extraction:
        action = normalize_label(query)
        verb, _, rest = action.partition(" ")
        return Extraction(
            action=action,
            verbs=(verb,),
            objects=(rest,) if rest else (),
            extractor=self.name,
        )
