"""The adapters on files shaped exactly like the public releases, and the data report.

The fixtures rebuild the real structures (YouCook-Interactions' set of
tuples, GroundingYouTube's inverted and out-of-frame boxes, prefixed V-HICO
paths, DALY keyframes whose frame number and time disagree with a re-encoded
copy's rate); no third-party file is committed.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vgem.errors import DatasetError
from vgem.eval.datasets.base import describe
from vgem.eval.datasets.daly import DALY, TIME_MISMATCH, time_matches_frame
from vgem.eval.datasets.gyt import GROUNDING_YOUTUBE
from vgem.eval.datasets.vhico import VHICO, keyframe_location
from vgem.eval.datasets.yc import YOUCOOK_INTERACTIONS
from vgem.eval.samples import DataNote, ManifestProblem, Sample
from vgem.eval.selection import select_samples

from .py2_pickle import dumps_py2
from .test_dataset_adapters import _write

ADAPTERS = [GROUNDING_YOUTUBE, YOUCOOK_INTERACTIONS, DALY, VHICO]


def _samples(items) -> list[Sample]:
    return [item for item in items if isinstance(item, Sample)]


# YouCook-Interactions: a set of tuples -------------------------------------------------

VIDEOS = [f"vid{index:02d}_{'x' * (index % 5)}" for index in range(40)]


def _yc_release(root: Path) -> None:
    """Forty videos, two segments each sharing their boundary second, as a Python set."""
    folder = root / "annotation" / "YouCook2-Interactions"
    boxes = {}
    segments = set()
    database = {}
    for video in VIDEOS:
        boxes[video] = {second: (100, 50, 200.5, 150) for second in range(10, 21)}
        boxes[video][20] = (100, 50, 700, 150)  # outside the 640 x 360 canvas
        segments |= {(video, 10, 15), (video, 15, 20)}
        database[video] = {
            "recipe_type": "113",
            "annotations": [
                {"id": 0, "segment": [10, 15], "sentence": f"cut {video}"},
                {"id": 1, "segment": [15, 20], "sentence": f"stir {video}"},
            ],
        }
    _write(folder / "final_dataset_annotations.pkl", pickle.dumps(boxes, protocol=2))
    _write(folder / "final_dataset_segments.pkl", pickle.dumps(segments, protocol=2))
    sentences = root / "annotation" / "youcookii_annotations_trainval.json"
    _write(sentences, json.dumps({"database": database}))


def test_yc_reads_the_released_set_of_segments(tmp_path):
    _yc_release(tmp_path)

    selection = select_samples(YOUCOOK_INTERACTIONS.read(tmp_path))

    assert selection.problems == []
    # 6 + 6 boxed seconds per video, second 15 in both segments, as the reference loop counts
    assert len(selection.samples) == 12 * len(VIDEOS)
    ids = [sample.id for sample in selection.samples]
    assert ids[:3] == ["vid00_/10", "vid00_/11", "vid00_/12"]
    assert "vid00_/15#2" in ids and len(set(ids)) == len(ids)
    shared = {s.id: s.query for s in selection.samples if s.id.startswith("vid00_/15")}
    assert shared == {"vid00_/15": "cut vid00_", "vid00_/15#2": "stir vid00_"}
    assert selection.data.boxes.outside_frame == len(VIDEOS)


def test_yc_ids_do_not_depend_on_the_hash_seed(tmp_path):
    _yc_release(tmp_path)
    script = (
        "import pickle, sys\n"
        "from pathlib import Path\n"
        "from vgem.eval.datasets.yc import YOUCOOK_INTERACTIONS as yc\n"
        "root = Path(sys.argv[1])\n"
        "raw = pickle.loads((root / 'annotation/YouCook2-Interactions/"
        "final_dataset_segments.pkl').read_bytes())\n"
        "print(repr(list(raw)[:5]))\n"
        "print('\\n'.join(f'{s.id} {s.query}' for s in yc.read(root) if hasattr(s, 'id')))\n"
    )

    def run(seed: str) -> list[str]:
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)],
            capture_output=True,
            text=True,
            env=environment,
            check=True,
        )
        return done.stdout.splitlines()

    first, second = run("1"), run("2")
    assert first[0] != second[0]  # the set's own order differs between the two processes
    assert first[1:] == second[1:] and len(first) == 1 + 12 * len(VIDEOS)


def test_yc_refuses_segments_that_are_not_a_collection(tmp_path):
    _yc_release(tmp_path)
    folder = tmp_path / "annotation" / "YouCook2-Interactions"
    _write(folder / "final_dataset_segments.pkl", pickle.dumps({"a": 1}))
    with pytest.raises(DatasetError, match="a set or a list"):
        YOUCOOK_INTERACTIONS.read(tmp_path)


def test_yc_reads_segments_from_a_numpy_array_too(tmp_path):
    _yc_release(tmp_path)
    folder = tmp_path / "annotation" / "YouCook2-Interactions"
    rows = np.array([["vid00_", 10, 15]], dtype=object)
    _write(folder / "final_dataset_segments.pkl", pickle.dumps(list(map(tuple, rows.tolist()))))
    assert len(_samples(YOUCOOK_INTERACTIONS.read(tmp_path))) == 6


# GroundingYouTube: inverted and out-of-frame boxes --------------------------------------


def test_gyt_keeps_inverted_boxes_and_counts_boxes_below_the_frame(tmp_path):
    release = {
        "v1": [
            {"second": 3, "box": [186, 244, 388, 452], "step_name": "crack eggs"},
            {"second": 4, "box": [482, 229, 480, 461], "step_name": "crack eggs"},  # inverted
            {"second": 5, "box": [300, 400, 470, 570], "step_name": "crack eggs"},  # y > 480
        ]
    }
    _write(tmp_path / "box_anno.json", json.dumps(release))

    selection = select_samples(GROUNDING_YOUTUBE.read(tmp_path))

    assert [s.id for s in selection.samples] == ["v1/3", "v1/4", "v1/5"]
    assert selection.samples[1].boxes == ((482.0, 229.0, 480.0, 461.0),)
    data = selection.data.to_dict()
    assert data["read"] == 3 and data["skipped"] == 0
    assert data["boxes"]["inverted"] == 1 and data["boxes"]["outside_frame"] == 1
    videos = select_samples(GROUNDING_YOUTUBE.read_videos(tmp_path))
    assert [box.box for box in videos.samples[0].boxes][1] == (482.0, 229.0, 480.0, 461.0)
    assert videos.data.boxes.inverted == 1 and videos.data.boxes.outside_frame == 1
    assert videos.data.skipped == {}  # no ground_seg.json is a remark, nothing skipped
    assert len(videos.data.remarks) == 1


# DALY: the annotated time, not the frame number in a re-encoded copy --------------------


def _daly(root: Path, keyframes: list[dict], flags: dict) -> None:
    release = {
        "labels": ["Drinking"],
        "splits": {0: ["vidA.mp4"]},
        "metadata": {"vidA.mp4": {"fps": 25.0, "duration": 60.0}},
        "annot": {
            "vidA.mp4": {
                "annot": {
                    "Drinking": [
                        {"beginTime": 0.0, "endTime": 50.0, "flags": flags, "keyframes": keyframes}
                    ]
                }
            }
        },
    }
    _write(root / "daly1.1.0.pkl", dumps_py2(release))


def _keyframe(frame_number: int, seconds: float, **extra) -> dict:
    box = np.array([[0.1, 0.2, 0.5, 0.9]])
    return {"boundingBox": box, "objects": np.zeros((0, 7)), "frameNumber": frame_number,
            "time": seconds, **extra}  # fmt: skip


def test_daly_places_keyframes_by_their_time_and_counts_disagreements(tmp_path):
    # frame 1001 at the annotators' 25 fps is 40 s; a 30 fps re-encode would put it at 33.3 s
    _daly(
        tmp_path,
        [_keyframe(1001, 40.0), _keyframe(251, 30.0), _keyframe(26, 1.0, isAmbiguous=True)],
        {"isReflection": True, "isAmbiguous": False},
    )

    selection = select_samples(DALY.read(tmp_path))

    times = [(sample.time, sample.frame) for sample in selection.samples]
    assert times == [(40.0, None), (30.0, None), (1.0, None)]
    assert selection.data.remarks == {TIME_MISMATCH: 1}  # frame 251 is 10 s, not 30 s
    assert selection.data.flagged == {"isAmbiguous": 1, "isReflection": 3}
    assert selection.data.flagged_samples == 3


@pytest.mark.parametrize(
    ("seconds", "frame_number", "fps", "agree"),
    [(40.0, 1001, 25.0, True), (40.04, 1001, 25.0, True), (33.3, 1001, 25.0, False)],
)
def test_daly_time_against_frame_number(seconds, frame_number, fps, agree):
    assert time_matches_frame(seconds, frame_number, fps) is agree


# V-HICO: the official evaluation's three last path components ---------------------------


@pytest.mark.parametrize(
    "path",
    [
        "cut_onion/vid1/000123.jpg",
        "/data1/VHICO-DATA/VHICO-Keyframes/cut_onion/vid1/000123.jpg",
        "VHICO-Keyframes/cut_onion/vid1/000123.jpg",
    ],
)
def test_vhico_keeps_the_last_three_components_of_a_prefixed_path(tmp_path, path):
    keyframe = {"path": path, "label": "cut onion", "human": [[10, 20, 50, 80]],
                "object": np.array([[40, 60, 90, 100]], dtype=np.float32),
                "height": 360, "width": 640}  # fmt: skip
    _write(tmp_path / "gt_bbox_test.json", pickle.dumps({"annos": {"cut": {"vid1": [keyframe]}}}))

    (sample,) = _samples(VHICO.read(tmp_path))

    assert keyframe_location(path) == "cut_onion/vid1/000123.jpg"
    assert sample.video == "VHICO-Keyframes/cut_onion/vid1/000123.jpg"
    assert sample.id == "cut/vid1/123"


# Documentation and missing files ---------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_each_adapter_describes_its_files_videos_and_counts(adapter):
    text = "\n".join(describe(adapter))
    assert text.startswith(f"{adapter.name}: ")
    for item in adapter.guide.files:
        assert item.path in text and item.published in text
    assert "videos:" in text and "expected:" in text


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_missing_annotation_file_says_where_it_looked_and_where_to_get_it(tmp_path, adapter):
    with pytest.raises(DatasetError) as caught:
        list(adapter.read(tmp_path))
    message = str(caught.value)
    assert str(tmp_path / adapter.guide.files[0].path.split("/")[-1]) in message or (
        str(tmp_path) in message and "looked for" in message
    )
    assert "get it from" in message and "--" not in message


def test_the_data_report_counts_skips_per_kind_and_reads_in_words():
    sample = Sample(id="a", video="a.mp4", time=0, query="q", boxes=[[5, 5, 700, 10]],
                    frame_size=(640, 360))  # fmt: skip
    items = [
        sample,
        ManifestProblem("f", "segment 3: no sentence for 'x'", kind="no sentence"),
        ManifestProblem("f", "segment 4: no sentence for 'y'", kind="no sentence"),
        DataNote("f", "a", flags=("isReflection",)),
    ]
    report = select_samples(items).data
    assert report.skipped == {"no sentence": 2} and report.boxes.outside_frame == 1
    lines = report.lines()
    assert lines[0] == "read 1 samples, skipped 2"
    assert any("flagged: 1 samples (isReflection 1)" in line for line in lines)


def test_the_command_prints_the_data_report_and_describes_datasets(tmp_path):
    from typer.testing import CliRunner

    from vgem.cli.app import app

    _yc_release(tmp_path)
    runner = CliRunner()
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app, ["eval", "--dataset", "yc", "--root", str(tmp_path), "--export-manifest", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert f"data: read {12 * len(VIDEOS)} samples, skipped 0" in result.output
    assert f"outside their frame: {len(VIDEOS)}" in result.output
    described = runner.invoke(app, ["eval", "--dataset", "gyt", "--describe"])
    assert described.exit_code == 0 and "box_anno.json" in described.output
    assert "17,316 samples" in described.output
