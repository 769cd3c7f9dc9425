"""Report tables, the published figures, and which paper row a run reproduces."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from vgem.eval.manifest import Sample
from vgem.eval.paper import PUBLISHED_ACCURACY, PUBLISHED_AVERAGE, match_paper_row
from vgem.eval.report import RunDescription, build_results, render_tables
from vgem.eval.selection import select_samples
from vgem.plain import plain_json
from vgem.settings import Settings

DEFAULTS = plain_json(Settings().with_defaults().to_dict())  # as results.json records them


def _settings(**changes) -> dict:
    return {**DEFAULTS, **changes}


@pytest.mark.parametrize(
    ("backbone", "changes", "row"),
    [
        ("viclip-b16", {}, "VideoGEM, ViCLIP"),
        ("clip-b16", {}, "VideoGEM, CLIP"),
        ("openclip-b16", {}, "VideoGEM, OpenCLIP"),
        ("openclip:ViT-B-16@laion2b_s34b_b88k", {}, "VideoGEM, OpenCLIP"),
        ("clip-b16", {"weighting": "none", "prompts": "action"}, "GEM, CLIP"),
        ("viclip-b16", {"weighting": "none", "prompts": "action"}, "GEM, ViCLIP"),
        # runtime options do not change what the method computes
        (
            "viclip-b16",
            {"batch_size": 8, "device": "cuda", "precision": "bf16"},
            "VideoGEM, ViCLIP",
        ),
        # no such run in the paper
        ("openclip-b16", {"weighting": "none", "prompts": "action"}, None),
        ("viclip-b16", {"weighting": "static"}, None),
        ("viclip-b16", {"depth": 5}, None),
        ("viclip-b16", {"image_mode": True}, None),
        ("viclip-l14", {}, None),
    ],
)
def test_paper_row(backbone, changes, row):
    match = match_paper_row(backbone, _settings(**changes))
    assert match.row == row
    assert (match.reason is None) == (row is not None)


def test_paper_reason_names_the_changed_option():
    assert "depth" in match_paper_row("viclip-b16", _settings(depth=5)).reason
    assert "viclip-l14" in match_paper_row("viclip-l14", DEFAULTS).reason


def test_published_table_is_the_papers():
    assert PUBLISHED_ACCURACY["VideoGEM, ViCLIP"] == {
        "vhico": 75.75,
        "daly": 78.25,
        "yc": 55.10,
        "gyt": 57.21,
    }
    assert PUBLISHED_ACCURACY["GEM, CLIP"]["gyt"] == 36.92
    for row, figures in PUBLISHED_ACCURACY.items():
        assert sum(figures.values()) / 4 == pytest.approx(PUBLISHED_AVERAGE[row], abs=0.006)


def _document(outcomes: dict[str, list[bool | None]], backbone="viclip-b16", **changes) -> dict:
    """A results document whose samples hit (True), miss (False) or failed (None)."""
    samples, records = [], {}
    for dataset, hits in outcomes.items():
        for index, hit in enumerate(hits):
            sample_id = f"{dataset}/{index}"
            samples.append(
                Sample(
                    id=sample_id,
                    video="v.mp4",
                    time=0,
                    query="cut",
                    boxes=[[0, 0, 1, 1]],
                    dataset=dataset,
                )
            )
            records[sample_id] = (
                {"id": sample_id, "error": "gone"} if hit is None else {"id": sample_id, "hit": hit}
            )
    description = RunDescription(
        dataset=next(iter(outcomes)) if len(outcomes) == 1 else None,
        manifest=None,
        root="/data",
        run_dir="/runs/x",
        backbone=backbone,
        weights=None,
        settings=_settings(**changes),
        settings_hash="abc123",
        identity={},
        metrics=("pointing",),
    )
    return build_results(
        description, select_samples(samples), records, finished_at="now", resumed=0, evaluated=0
    )


def _text(tables) -> str:
    console = Console(file=io.StringIO(), width=200)
    for table in tables:
        console.print(table)
    return console.file.getvalue()


def _row(text: str, first_cell: str) -> list[str]:
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells[0] == first_cell:
            return cells[1:]
    raise AssertionError(f"no row {first_cell!r} in\n{text}")


def test_table_with_average_and_the_paper_beside():
    gyt = _document({"gyt": [True] * 7 + [False] * 3})
    daly = {**_document({"daly": [True, False]}), "run_dir": "/runs/daly"}
    text = _text(render_tables([gyt, daly], compare_paper=True))
    assert "VideoGEM, ViCLIP" in text
    assert _row(text, "x") == ["GYT", "10", "10", "0", "70.00", "70.00", "57.21", "+12.79"]
    assert _row(text, "daly") == ["DALY", "2", "2", "0", "50.00", "50.00", "78.25", "-28.25"]
    # (70 + 50) / 2 against (57.21 + 78.25) / 2 = 67.73
    assert _row(text, "average") == ["", "12", "12", "0", "60.00", "60.00", "67.73", "-7.73"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"weights": "/tmp/random.pt", "weights_sha256": "0" * 64}, "weights file"),
        ({"weights": "/tmp/random.pt", "weights_sha256": None}, "weights file"),
        ({"selection": {"limit": 5, "shuffle_seed": None, "samples": 5}}, "not the whole"),
        ({"manifest": "/data/m.jsonl", "dataset": None}, "manifest"),
    ],
)
def test_no_paper_figure_with_other_weights_or_a_partial_run(change, reason):
    document = {**_document({"gyt": [True] * 7 + [False] * 3}), **change}
    text = " ".join(_text(render_tables([document], compare_paper=True)).split())
    assert "57.21" not in text and "paper %" not in text
    assert "no published figure shown: " in text
    assert reason in text.split("no published figure shown: ")[1].split(";")[0]


def test_no_paper_figure_when_samples_failed_or_are_pending():
    failed = _document({"gyt": [True, False, None]})
    text = " ".join(_text(render_tables([failed], compare_paper=True)).split())
    assert "57.21" not in text and "1 of 3 sample(s) could not be run" in text


def test_table_without_a_published_figure_says_why():
    document = _document({"gyt": [True, False]}, weighting="static")
    text = _text(render_tables([document], compare_paper=True))
    assert "no published figure" in text
    assert "57.21" not in text


def test_runs_with_other_settings_are_not_averaged_together():
    first = _document({"gyt": [True]})
    second = {**_document({"daly": [False]}), "settings_hash": "other"}
    tables = render_tables([first, second], compare_paper=False)
    assert len(tables) == 2
    assert "average" not in _text(tables)
