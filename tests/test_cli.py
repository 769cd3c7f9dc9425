"""The ``vgem`` command in a subprocess: outputs, and one clear line for bad input."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.planted import planted_frame
from tests.synth import truncate_file, write_frameless_mp4, write_video
from tests.tiny_models import TINY_ARCH, tiny_openclip_model

REPOSITORY = Path(__file__).resolve().parents[1]

TEST_BACKBONES = {
    "vgem_test_backbones": f"""
        from tests.planted import PLANTED
        from tests.tiny_models import register_tiny_openclip
        from vgem.backbones.base import BackboneSpec


        def _load_tiny(variant, weights):
            from vgem.backbones.openclip import load_openclip

            register_tiny_openclip()
            return load_openclip("{TINY_ARCH}", None, weights, name="tiny", input_size=64)


        TINY = BackboneSpec(summary="tiny open_clip (tests)", load=_load_tiny)
    """
}


@pytest.fixture
def cli(plugin_site, tmp_path):
    plugin_site.install(
        "vgem-test-backbones",
        {
            "vgem.backbones": {
                "planted": "vgem_test_backbones:PLANTED",
                "tiny": "vgem_test_backbones:TINY",
            }
        },
        TEST_BACKBONES,
    )
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugin_site.root), str(REPOSITORY)]),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "COLUMNS": "200",
    }

    def run(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vgem.cli", *map(str, arguments)],
            capture_output=True,
            text=True,
            env=environment,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )

    return run


@pytest.fixture
def video(tmp_path):
    frames = [planted_frame(96, 64, 2, 5), planted_frame(96, 64, 5, 1)] * 2
    return write_video(tmp_path / "clip.mp4", frames, size=(96, 64), fps=2)


PLANTED = ("--backbone", "planted", "--depth", "4", "--quiet")


def _assert_one_line_error(completed, *fragments):
    assert completed.returncode == 2, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in completed.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert completed.stdout == ""


def test_ground_writes_every_output(cli, video, tmp_path):
    completed = cli(
        "ground", video, "cut onion", *PLANTED,
        "--json", "out/result.json", "--heatmaps", "out/maps.npz", "--video-out", "out/ann.mp4",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == ""
    document = json.loads((tmp_path / "out/result.json").read_text())
    assert [entry["frame"] for entry in document["queries"][0]["times"]] == [0, 2]
    assert (tmp_path / "out/maps.npz").stat().st_size > 0
    assert (tmp_path / "out/ann.mp4").stat().st_size > 0
    assert not list((tmp_path / "out").glob(".*part*"))


def test_ground_prints_json_to_stdout(cli, video):
    completed = cli("ground", video, "cut_onion", "stir soup", *PLANTED, "--at", "1.2")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert [query["query"] for query in document["queries"]] == ["cut_onion", "stir soup"]
    assert document["queries"][0]["times"][0]["frame"] == 2


def test_missing_video(cli):
    _assert_one_line_error(cli("ground", "nowhere.mp4", "cut onion", *PLANTED), "nowhere.mp4")


def test_text_file_named_mp4(cli, tmp_path):
    (tmp_path / "notes.mp4").write_text("these are my notes, not a video\n")
    _assert_one_line_error(cli("ground", "notes.mp4", "cut", *PLANTED), "notes.mp4")


def test_truncated_mp4(cli, tmp_path):
    path = write_video(tmp_path / "cut.mp4", 40, size=(64, 48), fps=10)
    truncate_file(path, 0.5)
    _assert_one_line_error(cli("ground", path, "cut", *PLANTED), "truncated")


def test_zero_frame_video(cli, tmp_path):
    path = write_frameless_mp4(tmp_path / "empty.mp4")
    _assert_one_line_error(cli("ground", path, "cut", *PLANTED), "empty.mp4")


@pytest.mark.parametrize("query", ["", "   ", "?!"])
def test_empty_query(cli, video, query):
    _assert_one_line_error(cli("ground", video, query, *PLANTED), "query")


def test_time_beyond_the_end(cli, video):
    _assert_one_line_error(cli("ground", video, "cut", *PLANTED, "--at", "9"), "9")


def test_unknown_backbone_and_aggregator(cli, video):
    _assert_one_line_error(cli("ground", video, "cut", "--backbone", "nope"), "nope")
    _assert_one_line_error(
        cli("ground", video, "cut", *PLANTED, "--aggregator", "position-avg"),
        "position-average",
    )


def test_bad_option_values(cli, video):
    _assert_one_line_error(cli("ground", video, "cut", *PLANTED, "--weighting", "max"), "none")
    _assert_one_line_error(cli("ground", video, "cut", *PLANTED, "--fps", "2", "--at", "1"))


@pytest.fixture
def tiny_weights(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_openclip_model(seed=1).state_dict(), path)
    return path


def test_weights_file_loads(cli, video, tiny_weights):
    completed = cli(
        "ground", video, "cut", "--backbone", "tiny", "--weights", tiny_weights, "--depth", "4"
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["backbone"]["weights"] == str(tiny_weights)


def test_missing_and_corrupt_weights(cli, video, tmp_path):
    tiny = ("--backbone", "tiny", "--depth", "4")
    _assert_one_line_error(
        cli("ground", video, "cut", *tiny, "--weights", "absent.pt"), "absent.pt"
    )
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x04 definitely not a checkpoint")
    _assert_one_line_error(
        cli("ground", video, "cut", *tiny, "--weights", "corrupt.pt"), "corrupt.pt"
    )


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch payload-ran",))


def test_weights_whose_pickle_would_run_code(cli, video, tmp_path):
    with (tmp_path / "evil.pt").open("wb") as handle:
        pickle.dump({"state_dict": {}, "x": _Payload()}, handle)
    completed = cli(
        "ground", video, "cut", "--backbone", "tiny", "--weights", "evil.pt", "--depth", "4"
    )
    _assert_one_line_error(completed, "would run code")
    assert not (tmp_path / "payload-ran").exists()


def test_offline_without_cached_weights(cli, video):
    completed = cli("ground", video, "cut", "--backbone", "openclip-b16")
    _assert_one_line_error(completed, "not in the Hugging Face cache", "vgem fetch", "--weights")


def test_bad_input_never_destroys_earlier_output(cli, video, tmp_path):
    previous = tmp_path / "result.json"
    previous.write_text('{"earlier": true}\n')
    completed = cli("ground", video, "cut", *PLANTED, "--at", "99", "--json", previous)
    assert completed.returncode == 2
    assert previous.read_text() == '{"earlier": true}\n'


def test_verbose_shows_the_traceback(cli):
    completed = cli("ground", "nowhere.mp4", "cut", *PLANTED, "--verbose")
    assert completed.returncode == 2
    assert "Traceback" in completed.stderr


@pytest.mark.parametrize("words", [1, 10, 200])
def test_queries_of_any_length_are_grounded(cli, video, words):
    query = " ".join(
        ["stir"] + ["the soup slowly"] * ((words - 1) // 3) + ["now"] * ((words - 1) % 3)
    )
    assert len(query.split()) == words
    completed = cli("ground", video, query, *PLANTED, "--at", "0")
    assert completed.returncode == 0, completed.stderr
    document = json.loads(completed.stdout)
    assert document["queries"][0]["query"] == query
    warnings = document["queries"][0]["warnings"]
    assert any("truncated" in warning for warning in warnings) == (words == 200)
