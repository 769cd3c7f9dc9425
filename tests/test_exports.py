"""Exports of a grounding (CSV, COCO, masks) and the viewer page, from the command line
as a user runs them, and the page in a real headless browser."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.planted import planted_frame
from tests.synth import write_video
from vgem.cli import app

HOSTILE = "<img src=x onerror=alert(1)> & \"cut\" 'onion'"
PLANTED_OPTIONS = ("--backbone", "planted", "--depth", "4", "--extractor", "label", "--quiet")


@pytest.fixture
def planted_site(plugin_site):
    plugin_site.install(
        "vgem-exports-test", {"vgem.backbones": {"planted": "tests.planted:PLANTED"}}, {}
    )
    return plugin_site


@pytest.fixture
def video(tmp_path):
    frames = [planted_frame(128, 96, row, column) for row, column in [(1, 2), (5, 6), (3, 1)] * 2]
    return write_video(tmp_path / "clip.mp4", frames, size=(128, 96), fps=2)  # 3 s


def _ground(tmp_path, video, *extra, queries=("cut onion", HOSTILE)):
    result = CliRunner().invoke(
        app,
        ["ground", str(video), *queries, *PLANTED_OPTIONS, "--json", str(tmp_path / "r.json"),
         *map(str, extra)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / "r.json").read_text())


def test_csv_has_a_row_per_query_and_time_matching_the_json(planted_site, video, tmp_path):
    document = _ground(tmp_path, video, "--csv", tmp_path / "r.csv", "--temporal")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    queries = document["queries"]
    assert len(rows) == len(queries) * len(queries[0]["times"])
    labels = [entry["label"] for entry in document["timeline"]]
    for row in rows:
        query = next(q for q in queries if q["query"] == row["query"])
        entry = next(e for e in query["times"] if e["time"] == float(row["time"]))
        assert [float(row[k]) for k in ("x", "y")] == entry["point"]
        assert [float(row[k]) for k in ("x1", "y1", "x2", "y2")] == entry["box"]
        assert int(row["frame"]) == entry["frame"]
        assert float(row["score"]) == entry["score"]
        position = [e["time"] for e in query["times"]].index(entry["time"])
        assert row["label"] == (labels[position] or "")


def test_coco_annotations_are_the_json_boxes(planted_site, video, tmp_path):
    document = _ground(tmp_path, video, "--coco", tmp_path / "r.coco.json")
    coco = json.loads((tmp_path / "r.coco.json").read_text())
    assert [c["name"] for c in coco["categories"]] == [q["query"] for q in document["queries"]]
    times = [e["time"] for e in document["queries"][0]["times"]]
    assert [image["time"] for image in coco["images"]] == times
    assert all(image["width"] == 128 and image["height"] == 96 for image in coco["images"])
    assert len(coco["annotations"]) == len(times) * len(document["queries"])
    for annotation in coco["annotations"]:
        query = document["queries"][annotation["category_id"] - 1]
        entry = query["times"][annotation["image_id"] - 1]
        x1, y1, x2, y2 = entry["box"]
        assert annotation["bbox"] == pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-3)
        assert annotation["score"] == entry["box_score"]
        assert annotation["point"] == entry["point"]


def test_masks_hold_each_point_and_match_the_model_boxes(planted_site, video, tmp_path):
    from vgem.regions import unpack_masks

    document = _ground(tmp_path, video, "--masks", tmp_path / "m.npz")
    stored = np.load(tmp_path / "m.npz")
    size = tuple(int(value) for value in stored["mask_size"])
    masks = unpack_masks(stored["masks"], size)
    assert masks.shape == (3, 2, *size)
    assert list(stored["queries"]) == [q["query"] for q in document["queries"]]
    for q, query in enumerate(document["queries"]):
        for t, entry in enumerate(query["times"]):
            x, y = entry["model_point"]
            assert masks[t, q, y, x]
            rows, columns = np.nonzero(masks[t, q])
            box = [columns.min(), rows.min(), columns.max(), rows.max()]
            assert box == list(stored["model_boxes"][t, q])


def test_without_the_new_options_the_json_only_gains_the_box(planted_site, video, tmp_path):
    document = _ground(tmp_path, video)
    assert "smooth" not in document["settings"] and "box_threshold" not in document["settings"]
    smoothed = _ground(tmp_path, video, "--smooth", "1", "--box-threshold", "0.3")
    assert smoothed["settings"]["smooth"] == 1.0
    assert smoothed["settings"]["box_threshold"] == 0.3


def test_a_batch_writes_csv_and_coco_per_video(planted_site, video, tmp_path):
    (tmp_path / "videos").mkdir()
    video.rename(tmp_path / "videos" / "clip.mp4")
    result = CliRunner().invoke(
        app,
        ["ground", str(tmp_path / "videos"), "cut onion", *PLANTED_OPTIONS,
         "--out-dir", str(tmp_path / "out"), "--save-csv", "--save-coco"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").glob("clip*")) == [
        "clip.coco.json",
        "clip.csv",
        "clip.json",
    ]


# --------------------------------------------------------------------------- the viewer page


def test_the_viewer_page_in_a_real_browser(planted_site, video, tmp_path, browser):
    import time

    from PIL import Image

    (tmp_path / "pages").mkdir()
    page = tmp_path / "pages" / "view.html"
    document = _ground(tmp_path, video, "--html", page, "--temporal")
    browser.events.clear()
    browser.open(page.as_uri())
    time.sleep(0.5)
    assert browser.console_errors() == []
    requested = browser.requests()
    assert all(url.startswith(("file://", "data:")) for url in requested), requested
    assert any(url.endswith("/clip.mp4") for url in requested)  # the video, by relative path
    assert browser.evaluate("document.querySelectorAll('video').length") == 1
    # hostile query text is shown as text
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    names = browser.evaluate(
        "Array.from(document.querySelectorAll('.query-name')).map(e => e.textContent)"
    )
    assert names == ["cut onion", HOSTILE]

    def overlay() -> str:
        return browser.evaluate("document.getElementById('overlay').toDataURL()")

    times = [entry["time"] for entry in document["queries"][0]["times"]]
    browser.evaluate(f"window.vgemViewer.seek({times[0]})")
    first = overlay()
    browser.evaluate(f"window.vgemViewer.seek({times[1]})")
    state = browser.evaluate("window.vgemViewer.state")
    assert state["index"] == 1 and state["drawn"] == [0, 1]
    assert overlay() != first  # the overlay follows the seek (the patch moved)
    # the arrow keys step through the grounded times
    browser.evaluate("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight'}))")
    assert browser.evaluate("window.vgemViewer.state.index") == 2
    # a query's toggle hides it
    browser.evaluate(
        "(() => { const box = document.getElementById('toggle-0'); box.checked = false;"
        " box.dispatchEvent(new Event('change')); })()"
    )
    assert browser.evaluate("window.vgemViewer.state.drawn") == [1]
    shot = np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("RGB"), np.float32)
    assert shot.std() > 20  # not blank
    assert browser.console_errors() == []
