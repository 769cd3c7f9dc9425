"""report.html: written by every run, self-contained, and right in a real browser."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import vgem.eval
from tests.eval.test_eval_command import _planted_dataset, _write_manifest
from tests.eval.test_library import video_case  # noqa: F401 (a fixture)
from tests.planted import PlantedAdapter
from vgem.eval.gallery import GALLERY_LIMIT, choose_samples, pack_map, unpack_map
from vgem.eval.html_report import REPORT_FILE, REPORT_FOLDER, write_report
from vgem.grounder import Grounder

SCREENSHOT_COPY = "VGEM_REPORT_SCREENSHOT"  # set it to keep the screenshot for a look


@pytest.fixture
def spatial_run(tmp_path):
    """A finished spatial run of three planted videos, a missing video among them."""
    root = tmp_path / "frames"
    records = _planted_dataset(root, videos=3)
    records.append({**records[0], "id": "gone", "video": "gone.mp4"})
    manifest = _write_manifest(root / "manifest.jsonl", records)
    grounder = Grounder(adapter=PlantedAdapter(), depth=4, extractor="label")
    return vgem.eval.run(
        vgem.eval.open_manifest(manifest),
        run_dir=tmp_path / "run",
        load_grounder=lambda: grounder,
    )


def _value(document: dict, path: str):
    value = document
    for key in path.split("."):
        value = value[key]
    return value


def test_every_run_writes_its_report_beside_the_results(spatial_run):
    page = (spatial_run.run_dir / REPORT_FILE).read_text()
    pictures = list((spatial_run.run_dir / REPORT_FOLDER).glob("*.jpg"))
    assert 0 < len(pictures) <= GALLERY_LIMIT
    assert "cut onion" in page and "stir soup" in page
    assert "gone.mp4" in page and "not found" in page  # the error and its reason
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page
    for picture in pictures:
        assert picture.stat().st_size < 40_000
        assert f'src="{REPORT_FOLDER}/{picture.name}"' in page


def test_show_writes_the_report_again_reusing_its_pictures(spatial_run):
    folder = spatial_run.run_dir / REPORT_FOLDER
    before = {path.name: path.stat().st_mtime_ns for path in folder.glob("*.jpg")}
    (spatial_run.run_dir / REPORT_FILE).unlink()
    write_report(spatial_run.run_dir)
    assert (spatial_run.run_dir / REPORT_FILE).is_file()
    assert {path.name: path.stat().st_mtime_ns for path in folder.glob("*.jpg")} == before


def test_a_whole_video_run_shows_a_timeline_per_video(video_case, tmp_path):  # noqa: F811
    source, task, load_grounder, _ = video_case
    result = vgem.eval.run(source, task=task, run_dir=tmp_path / "v", load_grounder=load_grounder)
    page = (result.run_dir / REPORT_FILE).read_text()
    assert page.count('class="timeline"') == 3
    assert "#888" in page  # the true segments are drawn beside the predicted ones


def test_packed_maps_keep_the_shape_and_order():
    similarity = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    unpacked = unpack_map(pack_map(similarity))
    assert unpacked is not None and unpacked.shape == (3, 4)
    np.testing.assert_allclose(unpacked, (similarity + 5) / 11, atol=1 / 255)
    assert unpack_map({"shape": [2, 2], "uint8": "not base64!"}) is None


def test_the_gallery_takes_the_worst_classes_first_with_misses_and_hits():
    lines = [
        {"id": f"{name}{index}", "class": name, "hit": index % 2 == 0}
        for name in ("good", "bad")
        for index in range(6)
    ]
    chosen = choose_samples(lines, ["bad", "good"], limit=6, per_class=4)
    assert [line["class"] for line in chosen] == ["bad"] * 4 + ["good"] * 2
    assert sorted(line["hit"] for line in chosen[:4]) == [False, False, True, True]


def test_a_run_of_17000_samples_writes_its_report_in_seconds(tmp_path):
    """A large run (its videos elsewhere): the gallery stays bounded, the page is fast."""
    run_dir = tmp_path / "big"
    run_dir.mkdir()
    classes = [f"class {index}" for index in range(170)]
    lines, per_class = [], {}
    packed = pack_map(np.random.default_rng(0).random((14, 14)))
    for index in range(17_000):
        name = classes[index % 170]
        hit = (index * 7919) % 100 < 30 + index % 170 // 3
        per_class.setdefault(name, [0, 0])
        per_class[name][0] += 1
        per_class[name][1] += hit
        lines.append(
            {
                "id": f"s{index}", "settings": "h", "sample": "x", "class": name,
                "video": f"v{index}.mp4", "query": name, "time": 1.0, "frame": 1,
                "input_size": 224, "model_point": [100, 100], "model_boxes": [[80, 80, 150, 150]],
                "hit": hit, "point": [100.0, 100.0], "action_map": packed,
            }
        )  # fmt: skip
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    hits = sum(hit for _, hit in per_class.values())
    pointing = {
        "samples": 17_000, "hits": hits, "errors": 0, "accuracy": hits / 17_000,
        "class_mean_accuracy": 0.5,
        "classes": {
            name: {"samples": n, "hits": h, "errors": 0, "accuracy": h / n}
            for name, (n, h) in per_class.items()
        },
    }  # fmt: skip
    counts = {"selected": 17_000, "scored": 17_000, "errors": 0, "pending": 0}
    scores = {"counts": counts, "pointing": pointing, "map": None}
    document = {
        "schema": "vgem.eval/1", "complete": True, "dataset": "gyt", "manifest": None,
        "root": str(tmp_path / "elsewhere"), "run_dir": str(run_dir), "backbone": "planted",
        "weights": None, "settings": {}, "settings_hash": "h", "metrics": ["pointing"],
        "selection": {"limit": None, "shuffle_seed": None, "samples": 17_000},
        "overall": scores, "datasets": {"gyt": scores}, "errors": [], "problems": [],
        "paper": {"row": None, "reason": "the paper ran no backbone 'planted'", "accuracy": {}},
    }  # fmt: skip
    started = time.perf_counter()
    path = write_report(run_dir, document)
    seconds = time.perf_counter() - started
    pictures = list((run_dir / REPORT_FOLDER).glob("*.jpg"))
    assert seconds < 15, seconds
    assert len(pictures) == GALLERY_LIMIT
    assert sum(picture.stat().st_size for picture in pictures) < GALLERY_LIMIT * 40_000
    assert path.stat().st_size < 2_000_000


# --------------------------------------------------------------------------- in a browser


def test_the_report_in_a_real_browser(spatial_run, browser, tmp_path):
    document = json.loads(spatial_run.results_path.read_text())
    browser.events.clear()
    browser.open((spatial_run.run_dir / REPORT_FILE).resolve().as_uri())

    assert browser.console_errors() == []
    requested = browser.requests()
    assert requested and all(url.startswith(("file://", "data:")) for url in requested), requested

    figures = browser.evaluate(
        "Array.from(document.querySelectorAll('[data-figure]')).map("
        "e => [e.dataset.figure, e.dataset.value, e.textContent.trim()])"
    )
    assert any(path == "overall.pointing.accuracy" for path, _, _ in figures)
    for path, value, text in figures:
        expected = _value(document, path)
        if expected is None:
            assert (value, text) == ("", "—")
        else:
            assert float(value) == pytest.approx(expected, abs=1e-12)
            assert text == f"{100 * expected:.2f}"

    images = browser.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    assert images and all(done and width > 0 for done, width in images)

    visible = "document.querySelectorAll('#gallery .card:not([hidden])').length"
    everything = browser.evaluate(visible)
    chosen = browser.evaluate(
        "(() => { const s = document.getElementById('class-filter');"
        " s.value = s.options[1].value; s.dispatchEvent(new Event('change'));"
        " return s.value; })()"
    )
    filtered = browser.evaluate(visible)
    assert 0 < filtered < everything
    classes = browser.evaluate(
        "Array.from(document.querySelectorAll('#gallery .card:not([hidden])'))"
        ".map(c => c.dataset.class)"
    )
    assert set(classes) == {chosen}
    browser.evaluate(
        "(() => { const s = document.getElementById('hit-filter');"
        " s.value = 'miss'; s.dispatchEvent(new Event('change')); })()"
    )
    assert browser.evaluate(visible) <= filtered

    from PIL import Image

    shot = browser.screenshot()
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=np.float32)
    assert pixels.std() > 20  # not blank
    assert len(np.unique(pixels.reshape(-1, 3)[::37], axis=0)) > 50
    if os.environ.get(SCREENSHOT_COPY):
        Path(os.environ[SCREENSHOT_COPY]).write_bytes(shot)
        shutil.copytree(spatial_run.run_dir, Path(os.environ[SCREENSHOT_COPY]).with_suffix(".run"))


def test_a_gallery_picture_shows_the_predicted_box_beside_the_truth():
    from vgem.eval.gallery import BOX_COLOUR, PREDICTED_BOX_COLOUR, card_image

    line = {
        "input_size": 224,
        "model_boxes": [[20, 20, 100, 100]],
        "predicted_box": [120, 30, 200, 90],
        "model_point": [150, 60],
        "hit": False,
    }
    frame = np.full((224, 224, 3), 96, np.uint8)
    picture = np.asarray(card_image(line, frame))
    assert tuple(picture[30, 160]) == PREDICTED_BOX_COLOUR  # its top edge
    assert tuple(picture[20, 60]) == BOX_COLOUR  # the truth's top edge
    plain = np.asarray(card_image({**line, "predicted_box": None}, frame))
    assert tuple(plain[30, 160]) != PREDICTED_BOX_COLOUR
