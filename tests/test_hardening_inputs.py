"""Hostile and faulty inputs (issue 17, part B): each ends in a sensible success or
one clear error line, within a small time and memory bound.

Manifest lines that cannot be used, unbounded sampling rates, variable-frame-rate
videos, a predictions log that cannot be written, and checkpoints whose tensors
are not weights. (Hostile pickles: tests/eval/test_safe_pickle.py.)
"""

from __future__ import annotations

import errno
import json
import math
import time
import tracemalloc

import numpy as np
import pytest
import torch

from tests.eval.test_runner import CountingGrounder, planted_root  # noqa: F401 (a fixture)
from tests.planted import PlantedAdapter
from tests.synth import frame_index_from_pixels, write_video
from vgem.checkpoints import unwrap_state_dict
from vgem.errors import WeightsError
from vgem.eval import run_log
from vgem.eval.engine import evaluate
from vgem.eval.manifest import load_manifest
from vgem.eval.report import build_results
from vgem.eval.run_log import RunError
from vgem.eval.samples import Sample
from vgem.eval.selection import select_samples
from vgem.eval.tasks import RunContext, SpatialTask
from vgem.grounder import Grounder
from vgem.video import (
    VideoInfo,
    frame_index_at,
    grounded_times,
    iter_frames,
    probe_video,
    time_of_frame,
)

# --------------------------------------------------------------------------- manifest lines

GOOD = {"id": "good", "video": "v.mp4", "time": 1, "query": "cut onion", "boxes": [[1, 2, 3, 4]]}


def _line(**changes) -> str:
    return json.dumps({**GOOD, **changes})


BAD_LINES = {
    "nested 100000 deep": '{"id": "deep", "boxes": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a 400-digit coordinate": _line(id="wide", boxes=[[10**400, 0, 10**400 + 1, 1]]),
    "a 5000-digit integer": _line(id="digits").replace('"time": 1', '"time": ' + "9" * 5000),
    "a tiny frame_size": _line(id="tiny", frame_size=[1e-300, 1e-300]),
    "a subnormal frame_size": _line(id="subnormal", frame_size=[5e-324, 1]),
    "a huge frame_size": _line(id="huge", frame_size=[1e300, 1e300]),
    "a coordinate of 1e300": _line(id="far", boxes=[[0, 0, 1e300, 1e300]]),
    "a time of 1e300": _line(id="late", time=1e300),
    "a frame of 10**30": _line(id="frame", frame=10**30).replace('"time": 1, ', ""),
    "a time of 1e400": _line(id="inf").replace('"time": 1', '"time": 1e400'),
    "NaN": _line(id="nan").replace('"time": 1', '"time": NaN'),
}


@pytest.mark.parametrize("name", list(BAD_LINES))
def test_a_bad_manifest_line_is_reported_with_its_number_and_skipped(tmp_path, name):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(f"{_line(id='first')}\n{BAD_LINES[name]}\n{_line(id='last')}\n")

    started = time.process_time()
    samples, problems = load_manifest(manifest)

    assert time.process_time() - started < 2
    assert [sample.id for sample in samples] == ["first", "last"]
    assert [(problem.line, problem.source) for problem in problems] == [(2, "m.jsonl")]
    reason = problems[0].reason
    assert "\n" not in reason and len(reason) < 300, reason


def test_numbers_in_range_are_kept():
    sample = Sample(
        id="edge",
        video="v.mp4",
        frame=10**9,
        query="q",
        boxes=[[-1e6, 0, 1e6, 1]],
        frame_size=[1e-3, 1e6],
    )
    assert sample.frame == 10**9 and sample.frame_size == (1e-3, 1e6)


def _run(selection, root, run_dir, grounder, **options):
    return evaluate(
        selection,
        SpatialTask(("pointing",)),
        context=RunContext(root=root, settings_hash="test-settings"),
        run_dir=run_dir,
        load_grounder=lambda: grounder,
        **options,
    )


def test_a_run_over_bad_lines_finishes_scores_and_resumes(planted_root, tmp_path):  # noqa: F811
    manifest = tmp_path / "m.jsonl"
    good = Sample(id="ok", video="clip.mp4", time=0, query="cut onion", boxes=[[0, 0, 63, 63]])
    from vgem.eval.manifest import sample_to_json

    lines = [sample_to_json(good), *BAD_LINES.values()]
    manifest.write_text("\n".join(lines) + "\n")
    samples, problems = load_manifest(manifest, planted_root)
    selection = select_samples([*samples, *problems])
    assert len(problems) == len(BAD_LINES)

    for _ in range(2):  # the first sitting and a resume
        outcome = _run(selection, planted_root, tmp_path / "run", CountingGrounder())
        document = build_results(
            _description(tmp_path),
            selection,
            outcome.records,
            task=SpatialTask(("pointing",)),
            finished_at="now",
            resumed=outcome.resumed,
            evaluated=outcome.written,
        )
        json.dumps(document, allow_nan=False)
    assert outcome.resumed == 1 and outcome.written == 0


def _description(tmp_path):
    from vgem.eval.report import RunDescription

    return RunDescription(
        dataset=None,
        manifest="m.jsonl",
        root=str(tmp_path),
        run_dir=str(tmp_path / "run"),
        backbone="planted",
        weights=None,
        settings={},
        settings_hash="test-settings",
        identity={},
        metrics=("pointing",),
        limit=None,
        shuffle_seed=None,
        started_at="then",
        label="m",
    )


# --------------------------------------------------------------------------- the predictions log


def _planted_samples():
    return [
        Sample(id=f"s{index}", video="clip.mp4", time=t, query="cut onion", boxes=[[0, 0, 9, 9]])
        for index, t in enumerate([0, 0.5])
    ]


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_a_full_disk_stops_the_run_and_leaves_the_samples_pending(
    planted_root,  # noqa: F811
    tmp_path,
    monkeypatch,
    failing,
):
    selection = select_samples(_planted_samples())

    def disk_full(*arguments):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(run_log.os, failing, disk_full)
        with pytest.raises(RunError) as raised:
            _run(selection, planted_root, tmp_path / "run", CountingGrounder())

    message = str(raised.value)
    assert "No space left on device" in message and "pending" in message
    assert "\n" not in message and "--" not in message
    # nothing half-written, no sample recorded as an error
    assert (tmp_path / "run" / "predictions.jsonl").read_bytes() == b""

    outcome = _run(selection, planted_root, tmp_path / "run", CountingGrounder())
    assert outcome.written == 2
    assert not any("error" in record for record in outcome.records.values())


# --------------------------------------------------------------------------- sampling rates

TWO_SECONDS = VideoInfo("v.mp4", 30.0, 60, 64, 48, 2.0, False)


@pytest.mark.parametrize("fps", [31, 1000, 1e6, 1e12, 1e300])
def test_a_rate_above_the_frame_rate_grounds_each_frame_once(fps):
    tracemalloc.start()
    times = grounded_times(TWO_SECONDS, fps=fps)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert times == [index / 30 for index in range(60)]
    assert peak < 2**20
    assert len(times.warnings) == 1 and "each frame was grounded once" in times.warnings[0]


@pytest.mark.parametrize("fps", [1, 2.5, 30])
def test_a_rate_at_or_below_the_frame_rate_is_kept_without_warnings(fps):
    times = grounded_times(TWO_SECONDS, fps=fps)
    assert len(times) == math.ceil(2 * fps) and times.warnings == ()


def _planted_video(tmp_path, frames=4, fps=2):
    from tests.planted import planted_frame

    pictures = [planted_frame(64, 64, 1 + index % 6, 2) for index in range(frames)]
    return write_video(tmp_path / "p.mp4", pictures, size=(64, 64), fps=fps)


def _counting_grounder():
    adapter = PlantedAdapter()
    passes = []
    original = adapter.embed
    adapter.embed = lambda clip: passes.append(clip.shape[0]) or original(clip)
    return Grounder(adapter=adapter, depth=4, extractor="label"), passes


@pytest.mark.parametrize("fps", [1e6, 1e12])
def test_grounding_far_above_the_frame_rate_costs_one_pass_per_frame(tmp_path, fps):
    video = _planted_video(tmp_path)
    grounder, passes = _counting_grounder()

    started = time.monotonic()
    result = grounder.ground(video, "cut onion", fps=fps)

    assert time.monotonic() - started < 30
    assert sum(passes) == 4 and len(result.queries[0].times) == 4
    assert any("each frame was grounded once" in w for w in result.queries[0].warnings)
    document = json.loads(json.dumps(result.queries[0].warnings))
    assert document == result.queries[0].warnings


def test_times_within_one_frame_share_one_pass_and_keep_their_own_times(tmp_path):
    video = _planted_video(tmp_path)  # frames at 0, 0.5, 1, 1.5 s
    grounder, passes = _counting_grounder()
    times = [0.0, 0.1, 0.2, 0.6, 0.0, 1.2]
    seen = []

    result = grounder.ground(
        video, "cut onion", at=times, on_grounded=lambda position, *_: seen.append(position)
    )

    assert sum(passes) == 3  # frames 0, 1 and 2
    entries = result.queries[0].times
    assert [entry.time for entry in entries] == times
    assert [entry.frame for entry in entries] == [0, 0, 0, 1, 0, 2]
    assert entries[1].point == entries[0].point
    assert sorted(seen) == list(range(6))
    assert any("3 of the 6 grounded times" in w for w in result.queries[0].warnings)


def test_distinct_times_carry_no_sampling_warning(tmp_path):
    grounder, passes = _counting_grounder()
    result = grounder.ground(_planted_video(tmp_path), "cut onion", fps=2)
    assert sum(passes) == 4
    assert not any("grounded" in warning for warning in result.queries[0].warnings)


# --------------------------------------------------------------------------- variable frame rates


def _variable_rate_video(tmp_path):
    """Frames 0-9 two tenths of a second apart, then frames 10-39 a thirtieth apart."""
    timestamps = "setpts='if(lt(N,10),N/5,2+(N-10)/30)/TB'"
    return write_video(
        tmp_path / "vfr.mkv",
        40,
        fps=30,
        output_params=["-vf", timestamps, "-fps_mode", "vfr"],
    )


def test_times_map_to_frames_through_their_own_timestamps(tmp_path):
    info = probe_video(_variable_rate_video(tmp_path))

    assert info.frame_count == 40 and info.duration == pytest.approx(3.0, abs=0.05)
    assert info.frame_times is not None
    # The mean rate (13.3 fps) would put 1.9 s at frame 25, 0.7 s after its time.
    assert frame_index_at(info, 1.9) == 9
    assert frame_index_at(info, 0.45) == 2
    assert frame_index_at(info, 2.5) == 25
    assert time_of_frame(info, 10) == pytest.approx(2.0, abs=1e-3)
    assert all(frame_index_at(info, time_of_frame(info, i)) == i for i in range(40))
    decoded = {
        index: frame_index_from_pixels(frame)
        for index, frame in iter_frames(
            info, [frame_index_at(info, t) for t in (0.45, 1.9, 2.5)], None
        )
    }
    assert decoded == {2: 2, 9: 9, 25: 25}
    every = grounded_times(info, every_frame=True)
    assert every[:3] == pytest.approx([0.0, 0.2, 0.4], abs=1e-3)


def test_a_constant_rate_file_keeps_the_plain_time_model(tmp_path):
    info = probe_video(write_video(tmp_path / "cfr.mkv", 12, fps=6))
    assert info.frame_times is None
    assert frame_index_at(info, 1.0) == 6


def test_the_frame_times_stay_out_of_the_videos_description(tmp_path):
    from dataclasses import asdict

    info = probe_video(_variable_rate_video(tmp_path))
    assert "frame_times" not in asdict(info) and "_frame_times" not in asdict(info)


# --------------------------------------------------------------------------- weights


def _state(**tensors):
    base = {"proj.weight": torch.ones(4, 4), "proj.bias": torch.zeros(4)}
    return {**base, **tensors}


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (_state(**{"proj.weight": torch.full((4, 4), math.nan)}), "NaN or infinite"),
        (_state(**{"proj.bias": torch.tensor([0, math.inf, 0, 0])}), "NaN or infinite"),
        (_state(**{"proj.weight": torch.ones(4, 4, dtype=torch.float16) * math.nan}), "NaN"),
        (_state(**{"proj.weight": torch.ones(4, 4, dtype=torch.int64)}), "int64"),
        (_state(**{"proj.weight": torch.ones(4, 4, dtype=torch.uint8)}), "not floating point"),
        (_state(**{"proj.bias": torch.ones(4, dtype=torch.bool)}), "bool"),
        (_state(**{"proj.bias": torch.ones(4, dtype=torch.complex64)}), "complex64"),
        ({"model": _state(**{"proj.weight": torch.full((4, 4), -math.inf)})}, "proj.weight"),
    ],
)
def test_tensors_that_are_not_weights_are_refused_in_one_line(state, reason):
    with pytest.raises(WeightsError, match=reason) as raised:
        unwrap_state_dict(state, "bad.pt")
    message = str(raised.value)
    assert message.startswith("bad.pt does not hold usable weights") and "\n" not in message


def test_index_buffers_may_be_integers():
    state = _state(
        **{"text.position_ids": torch.arange(4), "bn.num_batches_tracked": torch.tensor(3)}
    )
    assert set(unwrap_state_dict(state, "ok.pt")) == set(state)


def test_a_nan_checkpoint_is_refused_by_a_backbone_loader(tmp_path):
    from safetensors.torch import save_file

    from tests.tiny_models import register_tiny_openclip, tiny_openclip_model
    from vgem.backbones.openclip import load_openclip

    architecture = register_tiny_openclip()
    state = {key: value.clone() for key, value in tiny_openclip_model().state_dict().items()}
    first = next(key for key, value in state.items() if value.is_floating_point())
    state[first] = torch.full_like(state[first], math.nan)
    path = tmp_path / "nan.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsError, match=f"{first}.*NaN"):
        load_openclip(architecture, None, str(path), name=f"openclip:{architecture}")


def test_the_pickle_budget_covers_numpy_arrays_too():
    # Sanity: an array's bytes are data in the file, so a real array loads quickly.
    import pickle

    from vgem.eval.safe_pickle import safe_loads

    array = np.arange(200_000, dtype=np.float32)
    started = time.process_time()
    np.testing.assert_array_equal(safe_loads(pickle.dumps(array, protocol=2)), array)
    assert time.process_time() - started < 2


def test_a_video_whose_name_has_a_colon_is_read_as_a_file(tmp_path, monkeypatch):
    """ffmpeg would take ``take:2.mp4`` for the protocol ``take``; vgem hands it a file."""
    from vgem.video import iter_clips, probe_video

    write_video(tmp_path / "take:2.mp4", 6, fps=3.0, size=(64, 48))
    monkeypatch.chdir(tmp_path)
    info = probe_video("take:2.mp4")
    assert info.frame_count == 6
    clips = list(
        iter_clips(info, [1.0], size=(32, 32), frames_per_clip=1, target_index=0, step=0.25)
    )
    assert len(clips) == 1
