"""``vgem eval`` on Ray: the same figures as a local run, a worker killed mid-video, a
driver interrupted and resumed, and Ray kept out of the local path.

One small local Ray instance serves the module (2 CPUs, no dashboard, a small
object store); it and the test backbones, which die on request, are the
fixtures of tests/ray_site.py. Tests that need Ray are skipped when it is not
installed; the two that check the local path and the missing extra always run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import vgem.eval
from tests.eval.test_eval_command import _planted_dataset, _write_manifest
from tests.eval.test_spatiotemporal import (
    PERFECT_BOXES,
    PERFECT_SEGMENTS,
    TEMPORAL,
    _gyt_release,
    _planted_video,
)
from tests.ray_site import REPOSITORY
from vgem.cli import app
from vgem.settings import Settings

FIGURES = ("complete", "overall", "datasets", "errors", "problems", "selection")
PLANTED_SETTINGS = Settings(depth=4, extractor="label")


@pytest.fixture
def spatial_case(tmp_path):
    """Four planted videos of two samples each, and a sample whose video is missing."""
    records = _planted_dataset(tmp_path / "frames", videos=4)
    records.append({**records[0], "id": "gone", "video": "gone.mp4"})
    manifest = _write_manifest(tmp_path / "frames" / "manifest.jsonl", records)
    return SimpleNamespace(
        source=vgem.eval.open_manifest(manifest),
        options={"backbone": "planted", "settings": PLANTED_SETTINGS},
        total=len(records),
        manifest=manifest,
    )


@pytest.fixture
def video_case(tmp_path):
    """Three whole videos and one whose video is missing, for the spatiotemporal task."""
    videos = ("one", "two", "three", "gone")
    planted = _planted_video(tmp_path / "video" / "planted.mp4")
    root = _gyt_release(
        tmp_path / "gyt",
        {video: PERFECT_SEGMENTS["planted"] for video in videos},
        {video: PERFECT_BOXES["planted"] for video in videos},
        videos=videos,
    )
    (root / "mining_resized_video").mkdir()
    for video in videos[:-1]:
        (root / "mining_resized_video" / f"{video}.mp4").symlink_to(planted)
    return SimpleNamespace(
        source=vgem.eval.open_dataset("gyt", root, whole_videos=True),
        options={
            "backbone": "colours",
            "settings": PLANTED_SETTINGS,
            "task": vgem.eval.WholeVideoTask("spatiotemporal", TEMPORAL),
        },
        total=len(videos),
    )


def _run(case, run_dir, executor=None):
    return vgem.eval.run(case.source, run_dir=run_dir, executor=executor, **case.options)


def _figures(document: dict) -> dict:
    return {key: document[key] for key in FIGURES}


def _ids(run_dir: Path) -> list[str]:
    lines = (run_dir / "predictions.jsonl").read_text().splitlines()
    return [json.loads(line)["id"] for line in lines]


def _ray(**options):
    from vgem.eval.ray_executor import RayExecutor

    return RayExecutor(**options)


# --------------------------------------------------------------------------- the same figures


@pytest.mark.parametrize("case", ["spatial_case", "video_case"])
def test_a_ray_run_gives_the_figures_of_a_local_run(case, request, ray_instance, tmp_path):
    chosen = request.getfixturevalue(case)
    local = _run(chosen, tmp_path / "local")
    on_ray = _run(chosen, tmp_path / "ray", _ray(workers=2))
    assert _figures(on_ray.document) == _figures(local.document)
    assert on_ray.document["settings_hash"] == local.document["settings_hash"]
    ids = _ids(tmp_path / "ray")
    assert len(ids) == len(set(ids)) == chosen.total
    assert set(ids) == set(_ids(tmp_path / "local"))

    execution = on_ray.document["execution"]
    assert (execution["executor"], execution["workers"]) == ("ray", 2)
    assert len(execution["per_worker"]) == 2
    assert sum(worker["samples"] for worker in execution["per_worker"]) == chosen.total
    assert all(worker["pid"] != os.getpid() for worker in execution["per_worker"])
    assert all(worker["load_seconds"] > 0 for worker in execution["per_worker"])
    assert local.document["execution"]["executor"] == "local"
    assert local.document["execution"]["per_worker"][0]["samples"] == chosen.total


# --------------------------------------------------------------------------- faults


def test_a_worker_killed_mid_video_loses_and_repeats_nothing(spatial_case, deaths, tmp_path):
    (deaths / "once").touch()
    local = _run(spatial_case, tmp_path / "local")
    on_ray = _run(spatial_case, tmp_path / "ray", _ray(workers=2))
    assert (deaths / "died").exists()  # a worker did die, on the second clip of its video
    assert _figures(on_ray.document) == _figures(local.document)
    ids = _ids(tmp_path / "ray")
    assert sorted(ids) == sorted(set(ids)) and len(ids) == spatial_case.total
    execution = on_ray.document["execution"]
    assert execution["retried_units"] == 1
    (dead,) = [worker for worker in execution["per_worker"] if "died" in worker]
    assert "ActorDiedError" in dead["died"]
    # the two workers, and a replacement if Ray had room for one by the time it looked
    assert len(execution["per_worker"]) in (2, 3)
    assert execution["workers"] == len(execution["per_worker"])
    for worker in execution["per_worker"]:
        assert worker["node_id"] and worker["host"] and worker["pid"]  # where it ran


def test_a_video_whose_workers_keep_dying_ends_as_error_lines(ray_instance, deaths, tmp_path):
    (deaths / "always").touch()
    records = _planted_dataset(tmp_path / "frames", videos=1)
    manifest = _write_manifest(tmp_path / "frames" / "manifest.jsonl", records)
    result = vgem.eval.run(
        vgem.eval.open_manifest(manifest),
        backbone="planted",
        settings=PLANTED_SETTINGS,
        run_dir=tmp_path / "run",
        executor=_ray(workers=1, max_retries=1),
    )
    document = result.document
    assert document["complete"] and document["overall"]["counts"]["errors"] == 2
    assert [error["id"] for error in document["errors"]] == ["v0/0", "v0/1"]
    assert all("died 2 time(s)" in error["error"] for error in document["errors"])
    assert sorted(_ids(tmp_path / "run")) == ["v0/0", "v0/1"]


class InterruptedRay:
    """The Ray executor, with a Ctrl-C in the driver once ``after`` lines are written."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.executor = _ray(workers=2)

    def execute(self, job, units, emit):
        written = []

        def counting(line):
            emit(line)
            written.append(line)
            if len(written) == self.after:
                raise KeyboardInterrupt

        self.executor.execute(job, units, counting)


def test_an_interrupted_driver_stops_its_workers_and_resumes(spatial_case, ray_instance, tmp_path):
    ray = ray_instance.ray
    local = _run(spatial_case, tmp_path / "local")
    stopped = _run(spatial_case, tmp_path / "ray", InterruptedRay(after=3))
    assert stopped.interrupted and not stopped.document["complete"]
    assert len(_ids(tmp_path / "ray")) == 3
    deadline = time.monotonic() + 20
    while ray.available_resources().get("CPU", 0) < 2:  # the workers are gone
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.2)

    resumed = _run(spatial_case, tmp_path / "ray", _ray(workers=2))
    assert resumed.document["this_sitting"] == {"resumed": 3, "evaluated": spatial_case.total - 3}
    assert _figures(resumed.document) == _figures(local.document)
    ids = _ids(tmp_path / "ray")
    assert len(ids) == len(set(ids)) == spatial_case.total


# --------------------------------------------------------------------------- the command


def test_the_command_runs_on_ray(spatial_case, ray_instance, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = [
        "eval", "--manifest", str(spatial_case.manifest), "--backbone", "planted",
        "--depth", "4", "--extractor", "label", "--quiet", "--run-dir", "run",
    ]  # fmt: skip
    result = CliRunner().invoke(app, [*arguments, "--executor", "ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert document["execution"]["workers"] == 2
    assert document["overall"]["counts"]["scored"] == spatial_case.total - 1

    refused = CliRunner().invoke(app, [*arguments, "--workers", "2"])
    assert refused.exit_code == 2
    assert "--workers applies to --executor ray" in refused.output


# --------------------------------------------------------------------------- without Ray


def test_without_ray_the_ray_executor_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    monkeypatch.chdir(tmp_path)
    manifest = _write_manifest(tmp_path / "manifest.jsonl", [])
    result = CliRunner().invoke(app, ["eval", "--manifest", str(manifest), "--executor", "ray"])
    assert result.exit_code == 2
    assert 'pip install "vgem[ray]"' in result.output
    assert "--executor ray" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_local_path_does_not_import_ray(backbone_site, tmp_path):
    records = _planted_dataset(tmp_path / "frames", videos=1)
    manifest = _write_manifest(tmp_path / "frames" / "manifest.jsonl", records)
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from vgem.cli import app\n"
        "result = CliRunner().invoke(app, ['eval', '--manifest', sys.argv[1], '--backbone',\n"
        "    'planted', '--depth', '4', '--extractor', 'label', '--quiet', '--run-dir', 'run'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print('ray' in sys.modules)\n"
    )
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(backbone_site), str(REPOSITORY)]),
        "HF_HUB_OFFLINE": "1",
    }
    output = subprocess.run(
        [sys.executable, "-c", code, str(manifest)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=environment,
    ).stdout
    assert output.split() == ["False"]
    assert (tmp_path / "run" / "results.json").exists()


# --------------------------------------------------------------------------- no waiting forever


def test_units_no_worker_can_take_end_as_errors_in_one_line(spatial_case, ray_instance, tmp_path):
    """Workers that need more than any node has are never placed: the run does not wait
    for them; the units become error lines, the results are written, one error says why."""
    from vgem.execution import RayExecutor, WorkersUnavailable

    started = time.monotonic()
    with pytest.raises(WorkersUnavailable) as raised:
        _run(spatial_case, tmp_path / "ray", RayExecutor(workers=1, cpus_per_worker=64))
    assert time.monotonic() - started < 60
    assert "no live node of the Ray cluster has 64 CPU(s)" in str(raised.value)
    document = json.loads((tmp_path / "ray" / "results.json").read_text())
    assert document["overall"]["counts"]["errors"] == spatial_case.total
    assert document["execution"]["unscheduled_units"] == 5  # every video, the missing one too
    assert document["execution"]["workers"] == 0  # none ran


# --------------------------------------------------------------------------- signals


def test_sigterm_under_ray_ends_like_ctrl_c_and_keeps_what_finished(
    ray_instance, deaths, backbone_site, tmp_path
):
    """A real `vgem eval --executor ray` process (joining this module's Ray instance by
    address, as a user's driver joins a cluster) is terminated mid-run: exit 143, its
    workers stopped, the results and report of what finished written, no foreign output."""
    (deaths / "slow").touch()
    records = _planted_dataset(tmp_path / "data", videos=8)
    manifest = _write_manifest(tmp_path / "data" / "manifest.jsonl", records)
    address = ray_instance.ray.get_runtime_context().gcs_address
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(backbone_site), str(REPOSITORY)]),
        "HF_HUB_OFFLINE": "1",
        "RAY_AUTH_MODE": "token",  # the instance asks for its token (~/.ray/auth_token)
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "vgem.cli", "eval", "--manifest", str(manifest),
         "--backbone", "planted", "--depth", "4", "--extractor", "label", "--quiet",
         "--run-dir", "run", "--executor", "ray", "--ray-address", address, "--workers", "2"],
        cwd=tmp_path, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    predictions = tmp_path / "run" / "predictions.jsonl"
    deadline = time.monotonic() + 120
    while not (predictions.exists() and predictions.read_text().count("\n") >= 2):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert stdout == ""
    assert stderr.strip().splitlines()[-1] == "terminated", stderr
    assert "Traceback" not in stderr and "*** SIG" not in stderr and "(raylet)" not in stderr
    document = json.loads((tmp_path / "run" / "results.json").read_text())
    assert not document["complete"] and document["execution"]["sittings"][0]["interrupted"]
    assert document["execution"]["workers"] == 2
    assert (tmp_path / "run" / "report.html").is_file()
    # its workers were stopped: the instance's CPUs are all free again
    deadline = time.monotonic() + 30
    while ray_instance.ray.available_resources().get("CPU", 0) < 2:
        assert time.monotonic() < deadline, "the terminated run's workers still hold CPUs"
        time.sleep(0.2)
