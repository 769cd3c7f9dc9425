"""Each adapter on a tiny release written in its benchmark's own format."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from vgem.errors import DatasetError
from vgem.eval.datasets import DatasetAdapter
from vgem.eval.datasets.daly import DALY
from vgem.eval.datasets.gyt import GROUNDING_YOUTUBE
from vgem.eval.datasets.vhico import VHICO
from vgem.eval.datasets.yc import YOUCOOK_INTERACTIONS, YouCookInteractions
from vgem.eval.manifest import ManifestProblem, Sample, load_manifest, write_manifest
from vgem.eval.samples import DataNote

from .py2_pickle import dumps_py2


def _split(items) -> tuple[list[Sample], list[ManifestProblem]]:
    items = [item for item in items if not isinstance(item, DataNote)]
    samples = [item for item in items if isinstance(item, Sample)]
    problems = [item for item in items if isinstance(item, ManifestProblem)]
    assert len(samples) + len(problems) == len(items)
    return samples, problems


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("adapter", "name"),
    [(GROUNDING_YOUTUBE, "gyt"), (YOUCOOK_INTERACTIONS, "yc"), (DALY, "daly"), (VHICO, "vhico")],
)
def test_adapters_have_the_plugin_shape(adapter, name):
    assert isinstance(adapter, DatasetAdapter)
    assert adapter.name == name
    assert adapter.description


@pytest.mark.parametrize("adapter", [GROUNDING_YOUTUBE, YOUCOOK_INTERACTIONS, DALY, VHICO])
def test_a_root_without_the_annotation_file_is_a_dataset_error(tmp_path, adapter):
    with pytest.raises(DatasetError, match="looked for"):
        adapter.read(tmp_path)
    with pytest.raises(DatasetError, match="not a folder"):
        adapter.read(tmp_path / "absent")


# GroundingYouTube ------------------------------------------------------------


def test_gyt_yields_one_sample_per_annotated_second(tmp_path):
    release = {
        "-1okAudsnAc": [
            {"second": 81, "box": [218, 110, 421, 335], "step_name": "crack eggs"},
            {"second": 86, "box": [224, 7, 432, 218], "step_name": "pour egg whites"},
            {"second": 86, "box": [1, 2, 3, 4], "step_name": "pour egg whites"},
        ],
        "zzz": [
            {"second": 5, "box": [30, 2, 10, 4], "step_name": "stir it"},
            {"box": [0, 0, 1, 1], "step_name": "stir it"},
        ],
        "broken": "not a list",
    }
    _write(tmp_path / "annotations" / "box_anno.json", json.dumps(release))

    samples, problems = _split(GROUNDING_YOUTUBE.read(tmp_path))

    assert [sample.id for sample in samples] == [
        "-1okAudsnAc/81",
        "-1okAudsnAc/86",
        "-1okAudsnAc/86#2",
        "zzz/5",  # an inverted box is kept as published (a miss), like the authors'
    ]
    first = samples[0]
    assert first.video == "mining_resized_video/-1okAudsnAc.mp4"
    assert (first.time, first.frame) == (81.0, None)
    assert first.boxes == ((218.0, 110.0, 421.0, 335.0),)
    assert (first.query, first.class_name, first.dataset) == ("crack eggs", "crack eggs", "gyt")
    assert first.frame_size is None
    reasons = [problem.reason for problem in problems]
    assert len(reasons) == 2
    assert "video 'zzz' entry 1: missing second" in reasons[0]
    assert "video 'broken'" in reasons[1]


# YouCook-Interactions ----------------------------------------------------------


def _youcook_release(root: Path, segments=None) -> None:
    boxes = {
        "vidA": {10: (100, 50, 300, 200), 11: (110, 60, 310, 210), 13: (0, 0, 5, 5)},
        "vidB": {4: (1, 2, 3, 4)},
    }
    segments = segments or [("vidA", 10, 12), ("vidB", 3, 5), ("vidC", 0, 2)]
    database = {
        "database": {
            "vidA": {
                "recipe_type": "113",
                "annotations": [
                    {"segment": [2, 9], "id": 0, "sentence": "wash the onion"},
                    {"segment": [10, 12], "id": 1, "sentence": "cut the onion into pieces"},
                ],
            },
            "vidB": {
                "recipe_type": "201",
                "annotations": [{"segment": [3, 5], "id": 0, "sentence": "add salt"}],
            },
        }
    }
    folder = root / "annotation" / "YouCook2-Interactions"
    _write(folder / "final_dataset_annotations.pkl", pickle.dumps(boxes))
    _write(folder / "final_dataset_segments.pkl", pickle.dumps(segments))
    _write(root / "annotation" / "youcookii_annotations_trainval.json", json.dumps(database))


def test_yc_yields_boxed_seconds_of_each_segment_with_its_sentence(tmp_path):
    _youcook_release(tmp_path)
    _write(tmp_path / "raw_videos" / "validation" / "201" / "vidB.webm", b"")

    samples, problems = _split(YOUCOOK_INTERACTIONS.read(tmp_path))

    assert [sample.id for sample in samples] == ["vidA/10", "vidA/11", "vidB/4"]
    assert [sample.time for sample in samples] == [9.0, 10.0, 3.0]
    assert samples[0].query == "cut the onion into pieces"
    assert samples[0].class_name is None and samples[0].class_key == samples[0].query
    assert samples[0].boxes == ((100.0, 50.0, 300.0, 200.0),)
    assert samples[0].frame_size == (640.0, 360.0)
    assert samples[0].video == "validation/vidA.mp4"  # the documented default: none present
    assert samples[2].video == "raw_videos/validation/201/vidB.webm"
    assert samples[2].dataset == "yc"
    assert len(problems) == 1
    assert "no YouCook2 sentence for 'vidC'" in problems[0].reason


def test_yc_video_sizes_apply_the_authors_canvas_rule(tmp_path):
    _youcook_release(tmp_path)
    _write(tmp_path / "video_sizes.json", json.dumps({"vidA": [1280, 720], "vidB": [480, 360]}))

    samples, _ = _split(YOUCOOK_INTERACTIONS.read(tmp_path))

    sizes = {sample.id: sample.frame_size for sample in samples}
    assert sizes["vidA/10"] == (640.0, 360.0)  # larger in both dimensions: drawn at 640 x 360
    assert sizes["vidB/4"] == (480.0, 360.0)  # not larger: drawn on the video's own frames


def test_yc_exclude_drops_videos(tmp_path):
    _youcook_release(tmp_path)
    samples, _ = _split(YouCookInteractions(exclude={"vidA"}).read(tmp_path))
    assert [sample.id for sample in samples] == ["vidB/4"]


def test_yc_reads_its_pickles_only_through_the_safe_unpickler(tmp_path):
    marker = tmp_path / "marker"

    class Hostile:
        def __reduce__(self):
            return exec, (f"open({str(marker)!r}, 'w').close()",)

    _youcook_release(tmp_path, segments=[("vidA", 10, 12), Hostile()])

    with pytest.raises(DatasetError, match=r"Refused to unpickle builtins\.exec"):
        YOUCOOK_INTERACTIONS.read(tmp_path)
    assert not marker.exists()


# DALY ------------------------------------------------------------------------------


def _keyframe(box, frame_number, objects=None):
    return {
        "boundingBox": np.array([box]),
        "objects": np.array(objects if objects is not None else np.zeros((0, 7))),
        "frameNumber": frame_number,
        "time": frame_number / 25.0,
        "pose": np.zeros((0, 4)),
    }


def _instance(*keyframes):
    flags = {"isReflection": False, "isAmbiguous": False}
    return {"beginTime": 0.0, "endTime": 9.0, "flags": flags, "keyframes": list(keyframes)}


def _daly_release(root: Path) -> None:
    release = {
        "labels": ["BrushingTeeth", "Drinking"],
        "splits": {0: ["vidA.mp4", "vidGone.mp4"], 1: ["trainVid.mp4"]},
        "metadata": {"vidA.mp4": {"fps": 25.0, "duration": 10.0, "nbframes_ffmpeg": 250}},
        "annot": {
            "vidA.mp4": {
                "suggestedClass": "BrushingTeeth",
                "annot": {
                    "BrushingTeeth": [
                        _instance(
                            _keyframe([0.25, 0.5, 0.75, 1.0], 41, [[0.1, 0.2, 0.3, 0.4, 3, 0, 0]]),
                            _keyframe([0.5, 0.5, 0.4, 0.9], 60),
                        )
                    ],
                    "Drinking": [_instance(_keyframe([0.1, 0.1, 0.2, 0.2], 1))],
                },
            },
            "trainVid.mp4": {
                "suggestedClass": "Drinking",
                "annot": {"Drinking": [_instance(_keyframe([0, 0, 1, 1], 5))]},
            },
        },
    }
    _write(root / "annotations" / "daly1.1.0.pkl", dumps_py2(release))


def test_daly_reads_the_python2_pickle_and_keeps_the_test_split(tmp_path):
    _daly_release(tmp_path)
    _write(tmp_path / "vidA.mp4", b"")

    samples, problems = _split(DALY.read(tmp_path))

    assert [sample.id for sample in samples] == [
        "vidA/BrushingTeeth/0/41",
        "vidA/BrushingTeeth/0/60",  # its inverted box is kept (a miss) and counted
        "vidA/Drinking/0/1",
    ]
    brushing, _, drinking = samples
    assert (brushing.frame, brushing.time) == (None, 41 / 25.0)  # the annotated time
    assert drinking.time == 1 / 25.0
    assert brushing.boxes == ((0.25, 0.5, 0.75, 1.0),)
    assert brushing.human_boxes == brushing.boxes
    assert brushing.object_boxes == ((0.1, 0.2, 0.3, 0.4),)
    assert brushing.frame_size == (1.0, 1.0)
    assert (brushing.query, brushing.class_name, brushing.dataset) == (
        "BrushingTeeth",
        "BrushingTeeth",
        "daly",
    )
    assert brushing.video == "vidA.mp4"  # no videos/ folder here; the file at the root is used
    reasons = [problem.reason for problem in problems]
    assert len(reasons) == 1
    assert "test video 'vidGone.mp4' has no annotation" in reasons[0]


# V-HICO ---------------------------------------------------------------------------


def test_vhico_unions_human_and_object_boxes(tmp_path):
    release = {
        "annos": {
            "cut": {
                "vid1": [
                    {
                        "path": "cut/vid1/000123.jpg",
                        "label": "cut onion",
                        "human": [[10, 20, 50, 80]],
                        "object": np.array([[40, 60, 90, 100]]),
                        "height": 360,
                        "width": 640,
                    },
                    {
                        "path": "cut/vid1/frame.jpg",
                        "label": "cut onion",
                        "human": [[1, 1, 2, 2]],
                        "object": [],
                        "height": 360,
                        "width": 640,
                    },
                    {
                        "path": "cut/vid1/000130.jpg",
                        "label": "cut onion",
                        "human": [],
                        "object": [],
                        "height": 360,
                        "width": 640,
                    },
                ]
            },
            "pour": {
                "vid2": [
                    {
                        "path": "pour/vid2/7.jpg",
                        "label": "pour milk",
                        "human": [[0, 0, 10, 10], [5, 5, 20, 30]],
                        "object": [[15, 2, 25, 12]],
                        "height": 100,
                        "width": 200,
                    }
                ]
            },
        }
    }
    _write(tmp_path / "data" / "gt_annotations" / "gt_bbox_test.json", pickle.dumps(release))

    samples, problems = _split(VHICO.read(tmp_path))

    assert [sample.id for sample in samples] == ["cut/vid1/123", "pour/vid2/7"]
    cut, pour = samples
    assert cut.video == "VHICO-Keyframes/cut/vid1/000123.jpg"
    assert cut.frame == 0
    assert cut.boxes == ((10.0, 20.0, 90.0, 100.0),)
    assert cut.human_boxes == ((10.0, 20.0, 50.0, 80.0),)
    assert cut.object_boxes == ((40.0, 60.0, 90.0, 100.0),)
    assert cut.frame_size == (640.0, 360.0)
    assert (cut.query, cut.class_name, cut.dataset) == ("cut onion", "cut onion", "vhico")
    assert pour.boxes == ((0.0, 0.0, 25.0, 30.0),)
    assert pour.frame_size == (200.0, 100.0)
    reasons = [problem.reason for problem in problems]
    assert len(reasons) == 2
    assert "keyframe 1: no frame number in path" in reasons[0]
    assert "keyframe 2: no human or object box" in reasons[1]


def test_adapter_samples_survive_a_manifest_round_trip(tmp_path):
    _daly_release(tmp_path)
    samples, _ = _split(DALY.read(tmp_path))
    path = tmp_path / "daly.jsonl"

    write_manifest(samples, path)
    read_back, problems = load_manifest(path)

    assert read_back == samples
    assert problems == []


@pytest.mark.parametrize("dtype", ["int64", "float32", "float64"])
def test_vhico_boxes_scale_in_the_number_type_of_their_rows(tmp_path, dtype):
    """As the authors' torch code: a tensor made from the rows keeps a float64 array's
    type, and integers or float32 become float32; randomized boxes, halves included."""
    torch = pytest.importorskip("torch")
    from vgem.eval.tasks import score_point

    generator = np.random.default_rng(1)
    keyframes, rows = [], []
    for index in range(200):
        if index % 2:  # random boxes on random frames
            width, height = (int(value) for value in generator.integers(100, 2000, size=2))
            values = generator.integers(0, 16000, size=(1, 4)) / 8
        else:  # exact halves once scaled to 224 (x 0.35, y 0.7): where float32 and float64 part
            width, height = 640, 320
            odd = 2 * generator.integers(0, 30, size=(1, 4)) + 1
            values = odd * np.array([10, 5, 10, 5])
        row = values.astype(np.int64 if dtype == "int64" else dtype)
        rows.append((row, width, height))
        keyframes.append(
            {
                "path": f"cut/vid1/{index}.jpg",
                "label": "cut onion",
                "human": row,
                "object": [],
                "height": height,
                "width": width,
            }
        )
    release = {"annos": {"cut": {"vid1": keyframes}}}
    _write(tmp_path / "data" / "gt_annotations" / "gt_bbox_test.json", pickle.dumps(release))
    samples, _ = _split(VHICO.read(tmp_path))
    assert len(samples) == len(rows)
    for sample, (row, width, height) in zip(samples, rows, strict=True):
        tensor = torch.tensor(row[0])
        scales = [224 / width, 224 / height, 224 / width, 224 / height]
        authors = [int((tensor[i] * scales[i]).round()) for i in range(4)]
        _, (ours,) = score_point((0, 0), sample, (width, height), 224)
        assert list(ours) == authors, (row, width, height)
