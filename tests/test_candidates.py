"""Free-sentence queries: candidate verbs and objects chosen per clip, long queries."""

from __future__ import annotations

import numpy as np

from tests.synth import write_video
from tests.test_temporal import ColourAdapter
from vgem.extractors.base import Extraction
from vgem.grounder import Grounder
from vgem.results import to_json_dict


class FixedExtractor:
    """Stands in for stanza: every query has these candidates."""

    name = "fixed"

    def __init__(self, verbs, objects):
        self.verbs, self.objects = tuple(verbs), tuple(objects)

    def extract(self, query):
        return Extraction(action=query, verbs=self.verbs, objects=self.objects, extractor="fixed")


def _video(tmp_path, colours):
    frames = [np.full((32, 32, 3), colour, dtype=np.uint8) for colour in colours]
    return write_video(tmp_path / "colours.mp4", frames, size=(32, 32), fps=1)


def test_the_candidate_matching_each_clip_best_is_chosen(tmp_path):
    video = _video(tmp_path, [(235, 0, 0), (0, 235, 0)])  # a red second, then a green one
    grounder = Grounder(adapter=ColourAdapter(), depth=4)
    grounder.extractor = FixedExtractor(["paint green", "paint red"], ["green cup", "red cup"])
    result = grounder.ground(video, "paint the cup", every_frame=True)
    red, green = result.queries[0].times
    assert red.chosen == {
        "verb": "A photo of a person paint red something.",
        "object": "A photo of a person using red cup.",
    }
    assert green.chosen["verb"] == "A photo of a person paint green something."
    similarities = {c.text: c.similarity for c in red.candidates["verb"]}
    assert similarities["A photo of a person paint red something."] > 0.99
    assert similarities["A photo of a person paint green something."] < 0.01
    document = to_json_dict(result)
    query = document["queries"][0]
    assert query["candidates"]["verb"] == [
        "A photo of a person paint green something.",
        "A photo of a person paint red something.",
    ]
    assert query["times"][1]["chosen"]["object"] == "A photo of a person using green cup."
    assert len(query["times"][0]["candidates"]["object"]) == 2


def test_single_candidates_add_no_choice_to_the_json(tmp_path):
    video = _video(tmp_path, [(235, 0, 0)])
    result = Grounder(adapter=ColourAdapter(), depth=4).ground(video, "cut_onion", at=[0])
    entry = to_json_dict(result)["queries"][0]["times"][0]
    assert "chosen" not in entry and "candidates" not in entry


def test_an_over_long_query_is_truncated_with_a_warning(tmp_path):
    video = _video(tmp_path, [(235, 0, 0)])
    query = " ".join(["slowly"] * 199 + ["stir"])  # 200 words, over the 77-token context
    result = Grounder(adapter=ColourAdapter(), depth=4).ground(video, query, at=[0])
    warnings = result.queries[0].warnings
    assert any("truncated to 77 tokens" in warning for warning in warnings)
    assert result.queries[0].times[0].point is not None
