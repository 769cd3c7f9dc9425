"""The stanza extractor's rules, on hand-built parses: no stanza models needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vgem.errors import InputError
from vgem.extractors import stanza as stanza_extractor
from vgem.extractors.base import Extractor
from vgem.extractors.stanza import (
    NlpUnavailable,
    StanzaExtractor,
    extract_from_document,
    normalize_sentence,
    resolve_model_dir,
)


def document_type() -> type:
    """stanza's Document; the tests that need it skip where stanza is not installed."""
    return pytest.importorskip("stanza.models.common.doc").Document


def parsed(*sentences: list[tuple[str, str, int, str]]) -> object:
    """A stanza Document from (text, upos, head, deprel) rows, one list per sentence."""
    return document_type()(
        [
            [
                {"id": index, "text": text, "lemma": text.lower(), "upos": upos}
                | {"head": head, "deprel": deprel}
                for index, (text, upos, head, deprel) in enumerate(rows, start=1)
            ]
            for rows in sentences
        ]
    )


# Parses as stanza's English models give them (Universal Dependencies).
PARSES = {
    "several verbs, coordinated imperatives": (
        [
            [
                ("Take", "VERB", 0, "root"),
                ("the", "DET", 3, "det"),
                ("knife", "NOUN", 1, "obj"),
                ("and", "CCONJ", 5, "cc"),
                ("slice", "VERB", 1, "conj"),
                ("the", "DET", 7, "det"),
                ("tomatoes", "NOUN", 5, "obj"),
            ]
        ],
        ("Take", "slice"),
        ("knife", "tomatoes"),
    ),
    "phrasal verb, particle next to the verb": (
        [
            [
                ("pick", "VERB", 0, "root"),
                ("up", "ADP", 1, "compound:prt"),
                ("the", "DET", 4, "det"),
                ("knife", "NOUN", 1, "obj"),
            ]
        ],
        ("pick up",),
        ("knife",),
    ),
    "phrasal verb, particle after the object": (
        [
            [
                ("pick", "VERB", 0, "root"),
                ("the", "DET", 3, "det"),
                ("knife", "NOUN", 1, "obj"),
                ("up", "ADP", 1, "compound:prt"),
            ]
        ],
        ("pick up",),
        ("knife",),
    ),
    "a participle modifier is a verb candidate and part of the object": (
        [
            [
                ("the", "DET", 4, "det"),
                ("chopped", "VERB", 4, "amod"),
                ("red", "ADJ", 4, "amod"),
                ("onion", "NOUN", 0, "root"),
            ]
        ],
        ("chopped",),
        ("chopped red onion",),
    ),
    "compound noun is one object": (
        [
            [
                ("put", "VERB", 0, "root"),
                ("the", "DET", 3, "det"),
                ("onion", "NOUN", 1, "obj"),
                ("on", "ADP", 7, "case"),
                ("the", "DET", 7, "det"),
                ("cutting", "NOUN", 7, "compound"),
                ("board", "NOUN", 1, "obl"),
            ]
        ],
        ("put",),
        ("onion", "cutting board"),
    ),
    "modifier of a modifier": (
        [
            [
                ("wash", "VERB", 0, "root"),
                ("the", "DET", 5, "det"),
                ("stainless", "ADJ", 4, "amod"),
                ("steel", "NOUN", 5, "compound"),
                ("pan", "NOUN", 1, "obj"),
            ]
        ],
        ("wash",),
        ("stainless steel pan",),
    ),
    "imperative with two adjectives": (
        [
            [
                ("Grab", "VERB", 0, "root"),
                ("the", "DET", 5, "det"),
                ("big", "ADJ", 5, "amod"),
                ("wooden", "ADJ", 5, "amod"),
                ("spoon", "NOUN", 1, "obj"),
            ]
        ],
        ("Grab",),
        ("big wooden spoon",),
    ),
    "gerund": (
        [[("slicing", "VERB", 0, "root"), ("tomatoes", "NOUN", 1, "obj")]],
        ("slicing",),
        ("tomatoes",),
    ),
    "gerund modifying a noun": (
        [
            [
                ("person", "NOUN", 0, "root"),
                ("brushing", "VERB", 1, "acl"),
                ("teeth", "NOUN", 2, "obj"),
            ]
        ],
        ("brushing",),
        ("person", "teeth"),
    ),
    "auxiliary is not a verb": (
        [
            [
                ("a", "DET", 2, "det"),
                ("man", "NOUN", 4, "nsubj"),
                ("is", "AUX", 4, "aux"),
                ("cooking", "VERB", 0, "root"),
            ]
        ],
        ("cooking",),
        ("man",),
    ),
    "no verb": (
        [
            [
                ("a", "DET", 2, "det"),
                ("bowl", "NOUN", 0, "root"),
                ("of", "ADP", 4, "case"),
                ("soup", "NOUN", 2, "nmod"),
            ]
        ],
        (),
        ("bowl", "soup"),
    ),
    "no noun": (
        [[("run", "VERB", 0, "root"), ("quickly", "ADV", 1, "advmod")]],
        ("run",),
        (),
    ),
    "unicode": (
        [
            [
                ("sauté", "VERB", 0, "root"),
                ("the", "DET", 3, "det"),
                ("jalapeño", "NOUN", 1, "obj"),
            ]
        ],
        ("sauté",),
        ("jalapeño",),
    ),
    "punctuation and a pronoun object": (
        [
            [
                ("Wash", "VERB", 0, "root"),
                ("the", "DET", 3, "det"),
                ("dishes", "NOUN", 1, "obj"),
                (",", "PUNCT", 6, "punct"),
                ("then", "ADV", 6, "advmod"),
                ("dry", "VERB", 1, "conj"),
                ("them", "PRON", 6, "obj"),
                ("!", "PUNCT", 1, "punct"),
            ]
        ],
        ("Wash", "dry"),
        ("dishes",),
    ),
    "mis-tagged punctuation is ignored": (
        [[("stir", "VERB", 0, "root"), ("--", "NOUN", 1, "obj"), ("-", "VERB", 1, "conj")]],
        ("stir",),
        (),
    ),
    "duplicates differing only in case keep the first spelling": (
        [
            [
                ("Cut", "VERB", 0, "root"),
                ("the", "DET", 3, "det"),
                ("onion", "NOUN", 1, "obj"),
                ("and", "CCONJ", 5, "cc"),
                ("cut", "VERB", 1, "conj"),
                ("the", "DET", 7, "det"),
                ("Onion", "NOUN", 5, "obj"),
            ]
        ],
        ("Cut",),
        ("onion",),
    ),
    "two sentences, text order across them": (
        [
            [("Open", "VERB", 0, "root"), ("the", "DET", 3, "det"), ("fridge", "NOUN", 1, "obj")],
            [
                ("Take", "VERB", 0, "root"),
                ("out", "ADP", 1, "compound:prt"),
                ("the", "DET", 4, "det"),
                ("milk", "NOUN", 1, "obj"),
                ("from", "ADP", 7, "case"),
                ("the", "DET", 7, "det"),
                ("fridge", "NOUN", 1, "obl"),
            ],
        ],
        ("Open", "Take out"),
        ("fridge", "milk"),
    ),
    "proper-noun subject is the actor, not an object": (
        [
            [
                ("John", "PROPN", 2, "nsubj"),
                ("stirs", "VERB", 0, "root"),
                ("the", "DET", 4, "det"),
                ("soup", "NOUN", 2, "obj"),
            ]
        ],
        ("stirs",),
        ("soup",),
    ),
    "proper-noun object is kept": (
        [[("charge", "VERB", 0, "root"), ("the", "DET", 3, "det"), ("iPhone", "PROPN", 1, "obj")]],
        ("charge",),
        ("iPhone",),
    ),
    "proper noun inside a compound": (
        [
            [
                ("open", "VERB", 0, "root"),
                ("the", "DET", 4, "det"),
                ("Coke", "PROPN", 4, "compound"),
                ("bottle", "NOUN", 1, "obj"),
            ]
        ],
        ("open",),
        ("Coke bottle",),
    ),
}


@pytest.mark.parametrize(("sentences", "verbs", "objects"), PARSES.values(), ids=list(PARSES))
def test_extract_from_document(sentences, verbs, objects):
    assert extract_from_document(parsed(*sentences)) == (verbs, objects)


def test_empty_document_has_no_candidates():
    assert extract_from_document(document_type()([])) == ((), ())


def test_hand_built_document_exposes_what_the_rules_read():
    word = (
        parsed([("pick", "VERB", 0, "root"), ("up", "ADP", 1, "compound:prt")])
        .sentences[0]
        .words[1]
    )
    assert (word.id, word.upos, word.head, word.deprel) == (2, "ADP", 1, "compound:prt")


@pytest.mark.parametrize(
    ("query", "action"),
    [
        ("  cut   the\tonion \n", "cut the onion"),
        ("Wash the dishes, then dry them!", "Wash the dishes, then dry them"),
        ("where is the knife?!", "where is the knife"),
        ("sauté the jalapeño…", "sauté the jalapeño"),
        ("...and stir", "...and stir"),
    ],
)
def test_normalize_sentence(query, action):
    assert normalize_sentence(query) == action


@pytest.mark.parametrize("query", ["", "   \n\t", "...", "?!", " — ", "___", "()"])
def test_normalize_sentence_rejects_queries_without_words(query):
    with pytest.raises(InputError) as raised:
        normalize_sentence(query)
    assert "\n" not in str(raised.value)


def test_model_dir_argument_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("VGEM_CACHE", "/elsewhere")
    assert resolve_model_dir(tmp_path) == tmp_path
    assert resolve_model_dir(str(tmp_path)) == tmp_path


def test_model_dir_under_vgem_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("VGEM_CACHE", str(tmp_path))
    assert resolve_model_dir() == tmp_path / "stanza"


def test_model_dir_defaults_to_stanzas_own(monkeypatch):
    monkeypatch.delenv("VGEM_CACHE", raising=False)
    assert resolve_model_dir() is None


@pytest.fixture(autouse=True)
def no_cached_pipelines():
    stanza_extractor.forget_pipelines()
    yield
    stanza_extractor.forget_pipelines()


def test_missing_stanza_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "stanza", None)  # makes `import stanza` fail
    with pytest.raises(NlpUnavailable) as raised:
        StanzaExtractor(model_dir=tmp_path).extract("pick up the knife")
    message = str(raised.value)
    assert "pip install 'vgem[nlp]'" in message
    assert "`vgem fetch` (its NLP models)" in message
    assert "\n" not in message


def test_missing_models_say_how_to_fetch(tmp_path):
    pytest.importorskip("stanza")
    with pytest.raises(NlpUnavailable) as raised:
        StanzaExtractor(model_dir=tmp_path).extract("pick up the knife")
    message = str(raised.value)
    assert "`vgem fetch` (its NLP models)" in message
    assert str(tmp_path) in message
    assert "\n" not in message
    assert not any(tmp_path.iterdir()), "nothing may be downloaded at run time"


class RecordingPipeline:
    def __init__(self, document):
        self.document = document
        self.texts: list[str] = []

    def __call__(self, text):
        self.texts.append(text)
        return self.document


def test_extractor_parses_the_normalized_query(monkeypatch, tmp_path):
    pipeline = RecordingPipeline(
        parsed(
            [("Slice", "VERB", 0, "root"), ("bread", "NOUN", 1, "obj"), ("!", "PUNCT", 1, "punct")]
        )
    )
    monkeypatch.setattr(stanza_extractor, "build_pipeline", lambda model_dir: pipeline)
    extraction = StanzaExtractor(model_dir=tmp_path).extract("  Slice   bread! ")
    assert pipeline.texts == ["Slice bread"]
    assert extraction.action == "Slice bread"
    assert (extraction.verbs, extraction.objects) == (("Slice",), ("bread",))
    assert extraction.extractor == "stanza"
    assert extraction.warnings == ()


def test_pipeline_is_built_once_per_model_dir(monkeypatch, tmp_path):
    built: list[Path | None] = []

    def build(model_dir):
        built.append(model_dir)
        return RecordingPipeline(document_type()([]))

    monkeypatch.setattr(stanza_extractor, "build_pipeline", build)
    extractor = StanzaExtractor(model_dir=tmp_path)
    for query in ("cut the onion", "peel the garlic", "stir the soup"):
        extractor.extract(query)
    StanzaExtractor(model_dir=tmp_path / "other").extract("stir the soup")
    assert built == [tmp_path, tmp_path / "other"]


def test_is_an_extractor():
    assert isinstance(StanzaExtractor(), Extractor)
    assert StanzaExtractor.name == "stanza"


def test_importing_the_extractors_imports_neither_stanza_nor_torch():
    code = (
        "import sys, vgem.extractors.stanza, vgem.extractors.auto\n"
        "loaded = {'stanza', 'torch'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
