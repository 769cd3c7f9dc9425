"""Routing, fallback and robustness of the default ``auto`` extractor."""

from __future__ import annotations

import itertools
import random
import re
import sys

import pytest

from vgem.errors import InputError
from vgem.extractors import stanza as stanza_extractor
from vgem.extractors.auto import AutoExtractor, is_label_shaped
from vgem.extractors.base import Extraction, Extractor

VERBS = {"take", "slice", "pick", "cut", "stir", "pour", "sauté", "washing", "opens"}
NOUNS = {"knife", "tomatoes", "onion", "board", "soup", "water", "jalapeño", "man", "fridge"}
ADJECTIVES = {"red", "sharp", "hot", "wooden"}
DETERMINERS = {"the", "a", "an"}


class RuleTagger:
    """Stands in for stanza's pipeline: tags from word lists, attaches to the first verb."""

    def __init__(self):
        self.texts: list[str] = []

    def __call__(self, text):
        from stanza.models.common.doc import Document

        self.texts.append(text)
        tokens = re.findall(r"\w+|[^\w\s]", text)
        tags = [self._tag(token) for token in tokens]
        root = next((i for i, tag in enumerate(tags, 1) if tag == "VERB"), 1)
        rows = []
        for index, (token, tag) in enumerate(zip(tokens, tags, strict=True), start=1):
            head, deprel = (0, "root") if index == root else (root, "dep")
            if tag == "NOUN" and index != root:
                deprel = "obj"
            elif tag in {"ADJ", "DET"}:
                next_noun = next(
                    (j for j in range(index + 1, len(tags) + 1) if tags[j - 1] == "NOUN"), None
                )
                if next_noun is not None:
                    head, deprel = next_noun, "amod" if tag == "ADJ" else "det"
            rows.append(
                {"id": index, "text": token, "lemma": token.lower(), "upos": tag}
                | {"head": head, "deprel": deprel}
            )
        return Document([rows] if rows else [])

    @staticmethod
    def _tag(token):
        word = token.lower()
        if not any(character.isalnum() for character in token):
            return "PUNCT"
        for tag, vocabulary in (
            ("VERB", VERBS),
            ("NOUN", NOUNS),
            ("ADJ", ADJECTIVES),
            ("DET", DETERMINERS),
        ):
            if word in vocabulary:
                return tag
        return "X"


@pytest.fixture
def tagger(monkeypatch):
    """A simulated stanza pipeline, built fresh for each test."""
    pytest.importorskip("stanza")
    rule_tagger = RuleTagger()
    stanza_extractor.forget_pipelines()
    monkeypatch.setattr(stanza_extractor, "build_pipeline", lambda model_dir: rule_tagger)
    yield rule_tagger
    stanza_extractor.forget_pipelines()


@pytest.fixture
def no_cached_pipelines():
    stanza_extractor.forget_pipelines()
    yield
    stanza_extractor.forget_pipelines()


@pytest.mark.parametrize(
    ("query", "label_shaped"),
    [
        ("cut_onion", True),
        ("BrushingTeeth", True),
        ("slicing", True),
        ("cut onion", True),
        ("cut red onion", True),
        ("stir-fry vegetables", True),
        ("take_the_knife_and_slice_the_tomatoes", True),
        ("  cut   onion ", True),
        ("cut the onion", False),
        ("the onion", False),
        ("a man cooking", False),
        ("cut onion.", False),
        ("cut_onion!", False),
        ("cut up red onion", False),
        ("take the knife and slice the tomatoes", False),
        ("¿cortar cebolla?", False),
        ("", False),
    ],
)
def test_label_shape(query, label_shaped):
    assert is_label_shaped(query) is label_shaped


@pytest.mark.parametrize(
    ("label", "action", "verbs", "objects"),
    [
        ("cut_onion", "cut onion", ("cut",), ("onion",)),
        ("BrushingTeeth", "Brushing Teeth", ("Brushing",), ("Teeth",)),
        ("cut red onion", "cut red onion", ("cut",), ("red onion",)),
        ("slicing", "slicing", ("slicing",), ()),
    ],
)
def test_labels_go_to_the_label_extractor(tagger, label, action, verbs, objects):
    extraction = AutoExtractor().extract(label)
    assert extraction == Extraction(action, verbs, objects, extractor="label")
    assert tagger.texts == []


def test_sentences_go_to_stanza(tagger):
    extraction = AutoExtractor().extract("Take the sharp knife and slice the tomatoes.")
    assert tagger.texts == ["Take the sharp knife and slice the tomatoes"]
    assert extraction.extractor == "stanza"
    assert extraction.verbs == ("Take", "slice")
    assert extraction.objects == ("sharp knife", "tomatoes")
    assert extraction.warnings == ()


def assert_label_fallback(extraction, hint):
    assert extraction.extractor == "label"
    assert extraction.action == "take the knife and slice the tomatoes"
    assert extraction.verbs == ("take",)
    (warning,) = extraction.warnings
    assert "\n" not in warning
    assert hint in warning


def test_falls_back_to_label_when_models_are_missing(no_cached_pipelines, tmp_path):
    pytest.importorskip("stanza")
    extraction = AutoExtractor(model_dir=tmp_path).extract("take the knife and slice the tomatoes.")
    assert_label_fallback(extraction, "`vgem fetch` (its NLP models)")


def test_falls_back_to_label_when_stanza_is_not_installed(
    no_cached_pipelines, monkeypatch, tmp_path
):
    monkeypatch.setitem(sys.modules, "stanza", None)  # makes `import stanza` fail
    extraction = AutoExtractor(model_dir=tmp_path).extract("take the knife and slice the tomatoes")
    assert_label_fallback(extraction, "pip install 'vgem[nlp]'")


@pytest.mark.parametrize("query", ["", "   ", "\n\t", "...", "?!", "—", "___", "- _ -", "¿?"])
def test_queries_without_words_are_input_errors(tagger, query):
    with pytest.raises(InputError) as raised:
        AutoExtractor().extract(query)
    assert "\n" not in str(raised.value)
    assert tagger.texts == []


VOCABULARY = [
    *VERBS, *NOUNS, *ADJECTIVES, *DETERMINERS,
    "quickly", "then", "and", "it", "up", "Onion", "KNIFE", "naïve", "日本", "2",
    ",", ".", "!", "?", "—", "(", ")", "'s", "cut_onion", "BrushingTeeth", "🔪",
]  # fmt: skip


def random_query(word_count, seed):
    generator = random.Random(seed)
    return " ".join(generator.choice(VOCABULARY) for _ in range(word_count))


@pytest.mark.parametrize("word_count", [1, 10, 200])
@pytest.mark.parametrize("seed", range(20))
def test_any_query_gives_an_extraction_or_an_input_error(tagger, word_count, seed):
    query = random_query(word_count, seed)
    try:
        extraction = AutoExtractor().extract(query)
    except InputError:
        assert not any(character.isalnum() for character in query)
        return
    assert extraction.action
    assert all(candidate.strip() for candidate in (*extraction.verbs, *extraction.objects))


@pytest.mark.parametrize("word_count", [1, 10, 200])
def test_long_queries_fall_back_without_stanza(no_cached_pipelines, monkeypatch, word_count):
    monkeypatch.setitem(sys.modules, "stanza", None)
    words = itertools.islice(itertools.cycle(["slice", "the", "red", "onion"]), word_count)
    query = " ".join(words) + "."
    extraction = AutoExtractor().extract(query)
    assert extraction.action == query.rstrip(".")
    assert len(extraction.warnings) == 1


def test_is_an_extractor():
    assert isinstance(AutoExtractor(), Extractor)
    assert AutoExtractor.name == "auto"
