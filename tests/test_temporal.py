"""When: labels and segments on synthetic untrimmed videos with a planted scorer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.planted import PlantedAdapter
from tests.synth import write_video
from vgem.grounder import Grounder
from vgem.results import to_json_dict
from vgem.temporal import TemporalSettings, localize, otsu_threshold, segments_from_labels

REPOSITORY = Path(__file__).resolve().parents[1]
COLOURS = {"red": (235, 0, 0), "green": (0, 235, 0), "dim red": (140, 0, 0), "black": (0, 0, 0)}


class ColourAdapter(PlantedAdapter):
    """The clip embedding is the frame's colour: [R, G, B, 1 − max(R, G, B)], and
    the text "red" / "green" embeds to that colour's axis, so the class-token
    scorer's relevance is planted by the video's pixels."""

    def embed(self, clip):
        tokens = super().embed(clip)
        colour = clip[:, self.preprocessing.target_index].mean(dim=(-1, -2))  # [B, 3]
        background = 1 - colour.max(dim=-1, keepdim=True).values
        tokens[:, 0] = torch.cat([colour, background], dim=-1)
        return tokens

    def encode_text(self, texts):
        axes = {"red": 0, "green": 1}
        rows = torch.zeros(len(texts), 4)
        for row, text in enumerate(texts):
            axis = next((axes[word] for word in axes if word in text.lower()), 3)
            rows[row, axis] = 1.0
        return rows


def _video(tmp_path, spans, duration=30, fps=2):
    """A video that is black except for ``spans``: (colour, start s, end s)."""
    frames = []
    for index in range(duration * fps):
        time = index / fps
        colour = next((c for c, start, end in spans if start <= time < end), "black")
        frames.append(np.full((48, 64, 3), COLOURS[colour], dtype=np.uint8))
    return write_video(tmp_path / "untrimmed.mp4", frames, size=(64, 48), fps=fps)


def _ground(video, **temporal):
    grounder = Grounder(adapter=ColourAdapter(), depth=4, extractor="label")
    settings = TemporalSettings(**{"min_segment": 1.0, "max_gap": 1.0, **temporal})
    return grounder.ground(video, ["red", "green"], fps=1, temporal=settings)


def _segments(result):
    return [(s.query, s.start, s.end) for s in result.timeline.segments]


def test_segments_are_recovered_exactly(tmp_path):
    video = _video(tmp_path, [("red", 5, 12), ("green", 20, 26)])
    result = _ground(video)
    assert _segments(result) == [("red", 5.0, 12.0), ("green", 20.0, 26.0)]
    labels = result.timeline.labels
    assert labels[4] is None and labels[5] == 0 and labels[11] == 0 and labels[12] is None
    document = to_json_dict(result)
    assert document["segments"][0] == {"query": "red", "start": 5.0, "end": 12.0, "score": 1.0}
    assert document["timeline"][20]["label"] == "green"
    assert document["timeline"][0]["label"] is None
    assert document["temporal"]["scorer"] == "class-token"
    json.dumps(document)


def test_max_gap_bridges_short_background(tmp_path):
    video = _video(tmp_path, [("red", 5, 8), ("red", 9, 12)])
    assert _segments(_ground(video, max_gap=1.0)) == [("red", 5.0, 12.0)]
    assert _segments(_ground(video, max_gap=0.0)) == [("red", 5.0, 8.0), ("red", 9.0, 12.0)]


def test_min_segment_drops_blips(tmp_path):
    video = _video(tmp_path, [("green", 15, 16), ("red", 20, 24)])
    assert _segments(_ground(video, min_segment=2.0)) == [("red", 20.0, 24.0)]
    assert _segments(_ground(video, min_segment=1.0)) == [
        ("green", 15.0, 16.0),
        ("red", 20.0, 24.0),
    ]


def test_labels_dropped_for_being_short_are_counted(tmp_path):
    video = _video(tmp_path, [("green", 15, 16), ("red", 20, 24)])
    dropped = to_json_dict(_ground(video, min_segment=2.0))["dropped"]
    assert dropped == {"red": {"segments": 0, "times": 0}, "green": {"segments": 1, "times": 1}}
    kept = to_json_dict(_ground(video, min_segment=1.0))["dropped"]
    assert kept["green"] == {"segments": 0, "times": 0}


def test_a_query_that_never_happens_is_said_to_stand_out_nowhere(tmp_path):
    """Min-max normalization makes "green" reach 1 somewhere even in a video with no
    green; its contrast, from the raw scores, says that nothing stands out."""
    video = _video(tmp_path, [("red", 5, 12)])
    result = _ground(video)
    document = to_json_dict(result)
    red, green = (document["contrast"][name]["contrast"] for name in ("red", "green"))
    low = document["temporal"]["low_contrast_below"]
    assert red > low > green
    (red_query, green_query) = document["queries"]
    assert not any("stands out" in warning for warning in red_query["warnings"])
    assert any("no time stands out" in warning for warning in green_query["warnings"])


def test_the_command_line_names_the_query_that_stands_out_nowhere(tmp_path, capsys):
    from vgem.cli.ground import _warn_about_contrast

    _warn_about_contrast(_ground(_video(tmp_path, [("red", 5, 12)])))
    said = capsys.readouterr().err
    assert "'green': no time stands out" in said and "'red'" not in said


def test_contrast_tells_noise_from_a_step():
    from vgem.temporal.segments import LOW_CONTRAST, timeline_contrast

    generator = np.random.default_rng(0)
    times = np.arange(300.0)
    noise = generator.normal(0, 0.01, size=(300, 1))
    step = noise + np.where((times >= 100) & (times < 140), 0.1, 0.0)[:, None]
    shuffled = generator.permutation(300)  # times given in any order: sorted before use
    contrast = timeline_contrast(times[shuffled], np.hstack([noise, step])[shuffled])
    assert contrast[0] < LOW_CONTRAST < contrast[1]
    assert np.isnan(timeline_contrast(times[:2], noise[:2])).all()  # too few times to say


def test_threshold_decides_what_is_background(tmp_path):
    # dim red: cos([.55, 0, 0, .45], red) = 0.77, normalized against red frames and black
    video = _video(tmp_path, [("red", 2, 6), ("dim red", 10, 14), ("green", 20, 25)])
    assert _segments(_ground(video, threshold=0.5)) == [
        ("red", 2.0, 6.0),
        ("red", 10.0, 14.0),
        ("green", 20.0, 25.0),
    ]
    assert _segments(_ground(video, threshold=0.9)) == [("red", 2.0, 6.0), ("green", 20.0, 25.0)]


def test_auto_threshold_finds_the_valley_of_a_bimodal_distribution():
    generator = np.random.default_rng(0)
    background = generator.normal(0.2, 0.04, 300)
    action = generator.normal(0.75, 0.04, 100)
    cut = otsu_threshold(np.concatenate([background, action]))
    assert 0.35 < cut < 0.6
    times = np.arange(400.0)
    relevance = np.concatenate([background, action])[:, None]
    timeline = localize(times, relevance, ["q"], TemporalSettings(threshold="auto", min_segment=0))
    labelled = [label is not None for label in timeline.labels]
    assert labelled == [False] * 300 + [True] * 100


@pytest.mark.parametrize(
    ("labels", "min_segment", "max_gap", "expected"),
    [
        ([None, 0, 0, None, None, 0, 1, 1], 0, 0, [(0, 1, 3), (0, 5, 6), (1, 6, 8)]),
        ([0, None, 0, None, None, 0], 0, 1, [(0, 0, 3), (0, 5, 6)]),
        ([0, None, 0, None, None, 0], 0, 2, [(0, 0, 6)]),
        ([0, 1, 0], 0, 5, [(0, 0, 1), (1, 1, 2), (0, 2, 3)]),  # another label is no gap
        ([0, 0, None, 1], 3, 0, []),
        ([None, None], 0, 0, []),
    ],
)
def test_segments_from_labels_by_hand(labels, min_segment, max_gap, expected):
    times = np.arange(len(labels), dtype=float)
    scores = np.ones((len(labels), 2))
    segments = segments_from_labels(
        times, labels, scores, ["a", "b"], min_segment=min_segment, max_gap=max_gap, step=1.0
    )
    assert [(s.query_index, s.start, s.end) for s in segments] == expected


def test_start_end_scorer_runs_and_keeps_segments_ordered(tmp_path):
    video = _video(tmp_path, [("red", 5, 12), ("green", 20, 26)])
    result = _ground(video, scorer="start-end", boundary_window=1.0)
    for segment in result.timeline.segments:
        assert segment.start < segment.end
    assert [s.query for s in result.timeline.segments] == ["red", "green"]


LONG_INPUT = """
import resource, sys
import numpy as np
import torch
torch.set_num_threads(1)  # tiny tensors: thread hand-offs would cost more than the work
sys.path.insert(0, {repository!r})
import vgem.video as video_io
from tests.test_temporal import ColourAdapter
from vgem.grounder import Grounder
from vgem.temporal import TemporalSettings

minutes = float(sys.argv[1])
info = video_io.VideoInfo("synthetic", 1.0, int(minutes * 60), 64, 48, minutes * 60, False)

def clips(info, targets, **options):  # frames made on demand, never stored
    for position, time in enumerate(targets):
        value = 235 if (time // 60) % 2 else 0
        yield position, np.full((1, 64, 64, 3), value, dtype=np.uint8)

video_io.iter_clips = clips
adapter = ColourAdapter(layers=1)
grounder = Grounder(adapter=adapter, depth=1, weighting="none", extractor="label")
result = grounder.ground(info, ["red", "green"], fps=1, temporal=TemporalSettings())
print(len(result.times), len(result.timeline.segments),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_memory_stays_flat_on_a_30_minute_source():
    script = LONG_INPUT.format(repository=str(REPOSITORY))

    def run(minutes):
        output = subprocess.run(
            [sys.executable, "-c", script, str(minutes)],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout.split()
        return [int(value) for value in output[-3:]]

    short_times, short_segments, short_rss = run(3)
    long_times, long_segments, long_rss = run(30)
    assert (short_times, long_times) == (180, 1800)
    assert (short_segments, long_segments) == (1, 15)  # red every other minute
    assert long_rss < short_rss * 1.1 + 16_000  # KiB: a 10× longer input, flat memory


def test_annotated_video_shows_label_and_timeline(tmp_path):
    import imageio_ffmpeg

    from vgem.annotate import write_annotated_video
    from vgem.render import POINT_COLOURS

    frames = []
    for index in range(40):  # 20 s at 2 fps: red from 4 s to 12 s
        colour = COLOURS["red"] if 8 <= index < 24 else COLOURS["black"]
        frames.append(np.full((96, 160, 3), colour, dtype=np.uint8))
    video = write_video(tmp_path / "red.mp4", frames, size=(160, 96), fps=2)
    grounder = Grounder(adapter=ColourAdapter(), depth=4, extractor="label")
    result = grounder.ground(video, ["red", "green"], fps=1, temporal=TemporalSettings())
    assert _segments(result) == [("red", 4.0, 12.0)]
    output = tmp_path / "annotated.mp4"
    write_annotated_video(result, output)
    reader = imageio_ffmpeg.read_frames(str(output))
    meta = next(reader)
    width, height = meta["size"]
    decoded = [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]
    assert len(decoded) == 40
    late = decoded[36].astype(int)  # 18 s: after the segment, the cursor near the right end
    strip = late[-2]  # a row of the timeline strip
    segment_colour = np.array(POINT_COLOURS[0])  # the colour of query 0, "red"
    inside = strip[int(width * 8 / 20)]  # 8 s: inside the red segment's span
    outside = strip[int(width * 15 / 20)]  # 15 s: background
    assert np.abs(inside - segment_colour).max() < 60
    assert outside.max() < 80
    cursor = round(18 / 20 * (width - 1))
    assert strip[cursor - 1 : cursor + 2].min(axis=1).max() > 180  # a white cursor at 18 s


@pytest.mark.parametrize("threshold", [0.5, "auto"])
def test_every_label_is_rederived_from_the_json_alone(tmp_path, threshold):
    import json

    from vgem.results import json_text, to_json_dict

    video = _video(tmp_path, [("red", 5, 12), ("green", 20, 26), ("dim red", 14, 17)])
    document = json.loads(json_text(to_json_dict(_ground(video, threshold=threshold))))
    cut = document["temporal"]["threshold_used"]
    assert "label_rule" in document["temporal"]
    queries = [query["query"] for query in document["queries"]]
    for entry in document["timeline"]:
        normalized = entry["normalized"]
        assert list(normalized) == queries == list(entry["scores"])
        best = max(queries, key=lambda query: (normalized[query], -queries.index(query)))
        assert entry["label"] == (best if normalized[best] >= cut else None)
    # and the normalized scores are the raw ones, min-max per query over the video
    for query in queries:
        raw = np.array([entry["scores"][query] for entry in document["timeline"]])
        normalized = np.array([entry["normalized"][query] for entry in document["timeline"]])
        span = raw.max() - raw.min()
        np.testing.assert_allclose(normalized, (raw - raw.min()) / span, atol=2e-5 / span)
