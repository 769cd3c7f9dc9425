"""The ``stanza`` extractor: candidate verbs and objects of a free sentence.

The paper (docs/method.md §5) lets an NLP tagger list every verb and noun of the
query and keeps, per clip, the candidate whose prompt matches the clip best.
Extra candidates are therefore cheap, but each one should read well in its
template, which is what the rules below are about.

The rules live in :func:`extract_from_document`, a pure function of a stanza
``Document``, so they are tested without any model. The pipeline is built on
first use, once per process and model directory, and never downloads: models
come from ``vgem fetch`` (NLP models) so that grounding works offline.

stanza (and torch behind it) is imported only when a pipeline is built, so
importing this module is free.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from vgem.errors import VgemError
from vgem.extractors.base import Extraction, has_words, normalize_sentence

#: The processors the extractor needs; ``vgem fetch`` downloads these with the NLP models.
PROCESSORS = "tokenize,pos,lemma,depparse"
LANGUAGE = "en"

ENABLE_HINT = (
    "install it with `pip install 'vgem[nlp]'` and fetch its models with `vgem fetch` "
    "(its NLP models)"
)

# A verb particle turns "pick" into "pick up": the phrasal verb is the action.
_PARTICLE_RELATIONS = frozenset({"compound:prt"})
# Dependents that belong to an object's name: "red onion", "cutting board".
_OBJECT_MODIFIER_RELATIONS = frozenset({"amod", "compound"})
# A proper noun that is the subject names the actor ("John cuts..."), not a thing.
_SUBJECT_RELATIONS = frozenset({"nsubj", "nsubj:pass", "csubj", "csubj:pass"})

DocumentParser = Callable[[str], Any]
"""A built stanza ``Pipeline``, or anything that maps text to a ``Document``."""


class NlpUnavailable(VgemError):
    """stanza or its English models are missing; the message says how to fix it."""


def _unique(candidates: Iterable[str]) -> tuple[str, ...]:
    """First spelling of each candidate, ignoring case.

    CLIP's tokenizer lowercases, so "Cut" and "cut" would make the same prompt
    twice; the first spelling is kept so the output still shows the user's.
    """
    seen: set[str] = set()
    kept = []
    for candidate in candidates:
        key = candidate.casefold()
        if key not in seen:
            seen.add(key)
            kept.append(candidate)
    return tuple(kept)


def _children_by_head(words: Sequence[Any]) -> dict[int, list[Any]]:
    children: dict[int, list[Any]] = {}
    for word in words:
        children.setdefault(word.head, []).append(word)
    return children


def _phrase(head: Any, children: dict[int, list[Any]], relations: frozenset[str]) -> str:
    """The head with its dependents (and theirs) through ``relations``, in text order."""
    members = [head]
    pending = [head]
    while pending:
        word = pending.pop()
        for child in children.get(word.id, ()):
            if child.deprel in relations and has_words(child.text):
                members.append(child)
                pending.append(child)
    return " ".join(word.text for word in sorted(members, key=lambda word: word.id))


def _is_object_head(word: Any) -> bool:
    if not has_words(word.text) or word.deprel in _OBJECT_MODIFIER_RELATIONS:
        return False
    if word.upos == "NOUN":
        return True
    return word.upos == "PROPN" and word.deprel not in _SUBJECT_RELATIONS


def _is_verb(word: Any) -> bool:
    # Every VERB counts, a participle used as an adjective ("the chopped onion")
    # included, as in the authors' extraction: it is one more candidate, and
    # the per-clip choice keeps it only where it matches the clip best.
    return word.upos == "VERB" and has_words(word.text)


def extract_from_document(document: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Candidate verbs and objects of a parsed query, in text order, without repeats.

    Verbs are words tagged VERB as written (the authors used the surface form,
    not the lemma), with their particle so "pick up" stays one verb. Objects
    are nouns named the way a person would say them: with their adjective and
    compound modifiers ("chopped red onion", "cutting board"); a compound part
    is not a candidate of its own. Proper nouns count as objects ("iPhone")
    unless they are the subject, which is the actor rather than a thing.
    """
    verbs: list[str] = []
    objects: list[str] = []
    for sentence in document.sentences:
        children = _children_by_head(sentence.words)
        for word in sentence.words:
            if _is_verb(word):
                verbs.append(_phrase(word, children, _PARTICLE_RELATIONS))
            elif _is_object_head(word):
                objects.append(_phrase(word, children, _OBJECT_MODIFIER_RELATIONS))
    return _unique(verbs), _unique(objects)


def resolve_model_dir(
    model_dir: str | Path | None = None, cache_dir: str | Path | None = None
) -> Path | None:
    """Where stanza's models are read from; ``None`` means stanza's own default.

    ``model_dir`` is stanza's folder itself; ``cache_dir`` is vgem's model
    cache (the folder ``vgem fetch`` fills), whose ``stanza`` subfolder holds
    them; without either, the ``VGEM_CACHE`` environment variable names that
    cache. Resolved at use rather than at construction, so a variable set
    after an extractor was made still applies.
    """
    if model_dir is not None:
        return Path(model_dir).expanduser()
    cache = cache_dir if cache_dir is not None else os.environ.get("VGEM_CACHE")
    if cache:
        return Path(cache).expanduser() / "stanza"
    return None


def build_pipeline(model_dir: Path | None) -> DocumentParser:
    """An English stanza pipeline from local files only.

    It runs on the CPU: a query is one sentence, and the GPU is the backbone's.
    """
    try:
        import stanza
    except ImportError as error:
        raise NlpUnavailable(
            f"The stanza extractor needs the stanza package ({error}); {ENABLE_HINT}."
        ) from error
    location = str(model_dir) if model_dir is not None else "stanza's default directory"
    options: dict[str, Any] = {} if model_dir is None else {"dir": str(model_dir)}
    try:
        return stanza.Pipeline(
            LANGUAGE,
            processors=PROCESSORS,
            download_method=None,
            device="cpu",
            logging_level="ERROR",
            **options,
        )
    except FileNotFoundError as error:
        raise NlpUnavailable(
            f"stanza's English models are not in {location}; fetch them with "
            "`vgem fetch` (its NLP models), or point the model cache (`cache_dir`, or "
            "VGEM_CACHE) at a copy.",
            settings=["cache_dir"],
        ) from error


_pipelines: dict[Path | None, DocumentParser] = {}


def pipeline_for(model_dir: Path | None) -> DocumentParser:
    """The process-wide pipeline for ``model_dir``; loading models takes seconds."""
    if model_dir not in _pipelines:
        _pipelines[model_dir] = build_pipeline(model_dir)
    return _pipelines[model_dir]


def forget_pipelines() -> None:
    """Drop the cached pipelines, e.g. after fetching the models in the same process."""
    _pipelines.clear()


class StanzaExtractor:
    """Verbs and objects of a free sentence, from stanza's dependency parse."""

    name = "stanza"

    def __init__(
        self, model_dir: str | Path | None = None, cache_dir: str | Path | None = None
    ) -> None:
        self._model_dir = model_dir
        self._cache_dir = cache_dir

    @property
    def model_dir(self) -> Path | None:
        return resolve_model_dir(self._model_dir, self._cache_dir)

    def extract(self, query: str) -> Extraction:
        action = normalize_sentence(query)
        document = pipeline_for(self.model_dir)(action)
        verbs, objects = extract_from_document(document)
        return Extraction(action=action, verbs=verbs, objects=objects, extractor=self.name)
