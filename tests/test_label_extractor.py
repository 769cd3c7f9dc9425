"""The label extractor on the label shapes of the four benchmarks."""

from __future__ import annotations

import pytest

from vgem.errors import InputError
from vgem.extractors.label import LabelExtractor, split_camel_case
from vgem.prompts import Templates, build_prompts


@pytest.mark.parametrize(
    ("label", "action", "verbs", "objects"),
    [
        ("cut_onion", "cut onion", ("cut",), ("onion",)),
        ("cut onion", "cut onion", ("cut",), ("onion",)),
        ("put_on_shoe", "put on shoe", ("put",), ("on shoe",)),
        ("  add   salt  and pepper ", "add salt and pepper", ("add",), ("salt and pepper",)),
        ("__stir__soup__", "stir soup", ("stir",), ("soup",)),
        ("BrushingTeeth", "Brushing Teeth", ("Brushing",), ("Teeth",)),
        ("PlayingDiabolo", "Playing Diabolo", ("Playing",), ("Diabolo",)),
        ("UseTV", "Use T V", ("Use",), ("T V",)),
        ("Drinking", "Drinking", ("Drinking",), ()),
        ("whisk", "whisk", ("whisk",), ()),
        ("iPhone", "iPhone", ("iPhone",), ()),
        ("crack_egg2", "crack egg2", ("crack",), ("egg2",)),
        ("sauté_jalapeño", "sauté jalapeño", ("sauté",), ("jalapeño",)),
    ],
)
def test_label_shapes(label, action, verbs, objects):
    extraction = LabelExtractor().extract(label)
    assert (extraction.action, extraction.verbs, extraction.objects) == (action, verbs, objects)


@pytest.mark.parametrize("label", ["", "   ", "___", "\t\n", "...", "?!"])
def test_empty_labels_are_refused(label):
    with pytest.raises(InputError):
        LabelExtractor().extract(label)


def test_camel_case_follows_the_authors_rule():
    assert split_camel_case("TakingPhotoOrVideo") == "Taking Photo Or Video"


def test_templates_and_fallbacks():
    templates = Templates()
    single = build_prompts("Drinking", LabelExtractor().extract("Drinking"), templates)
    assert single.verb_candidates == ("A photo of a person Drinking something.",)
    assert single.object_candidates == ("A photo of a person.",)
    assert single.action == "A photo of a person Drinking."
    full = build_prompts("cut_onion", LabelExtractor().extract("cut_onion"), templates)
    assert full.texts == (
        "A photo of a person cut something.",
        "A photo of a person using onion.",
        "A photo of a person cut onion.",
    )
