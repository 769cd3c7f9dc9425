"""Joining a Ray cluster that is already running, as a user's ``ray start`` makes one.

The test backbones are tests/ray_site.py's. A head node is started with
``ray start --head --block`` in its own process
group (stopping that group stops this cluster alone, unlike ``ray stop``,
which would end every Ray process on the machine), with the test backbones on
its PYTHONPATH the way an installed plugin is on a cluster's nodes. ``vgem``
then runs as a separate process, as a user would run it, with
``--ray-address`` naming the head: its work must run on the cluster's workers
and give what a local run gives.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.planted import planted_frame
from tests.ray_site import REPOSITORY
from tests.synth import write_video

pytest.importorskip("ray")

PLANTED = ("--backbone", "planted", "--depth", "4", "--extractor", "label", "--quiet")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(site_root: Path, **extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    return {
        **inherited,
        "PYTHONPATH": os.pathsep.join([str(site_root), str(REPOSITORY)]),
        "RAY_USAGE_STATS_ENABLED": "0",
        **extra,
    }


@pytest.fixture(scope="module")
def cluster(backbone_site):
    """A running one-node Ray cluster (2 CPUs) that asks for a token, as a secured
    cluster does: its ``address`` and the ``auth`` environment that joins it."""
    port = _free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    # Ray's socket paths must stay short: a folder of its own directly under /tmp
    temporary = tempfile.mkdtemp(prefix="vgr", dir="/tmp")
    head = subprocess.Popen(
        [
            sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
            f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
            "--disable-usage-stats", f"--temp-dir={temporary}",
        ],
        env=_environment(backbone_site, **auth),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if head.poll() is not None or time.monotonic() > deadline:
            head.kill()
            pytest.fail(f"the Ray head did not start: {head.stderr.read().decode()[-2000:]}")
        time.sleep(0.5)
    time.sleep(3)  # the head's raylet registers after its GCS port opens
    yield SimpleNamespace(address=f"127.0.0.1:{port}", auth=auth)
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=3)  # `ray start --block` may linger: the group is killed then
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
    shutil.rmtree(temporary, ignore_errors=True)


def _vgem(
    site_root: Path, cwd: Path, *arguments: str, auth: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vgem.cli", *arguments],
        cwd=cwd,
        env=_environment(site_root, **(auth or {})),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_batch_joins_a_running_cluster_and_equals_a_local_batch(
    cluster,
    backbone_site,
    tmp_path,
):
    (tmp_path / "videos").mkdir()
    for name, (row, column) in {"a": (1, 2), "b": (3, 5), "c": (6, 0)}.items():
        frames = [planted_frame(96, 64, row, column), planted_frame(96, 64, column, row)] * 2
        write_video(tmp_path / "videos" / f"{name}.mp4", frames, size=(96, 64), fps=2)
    local = _vgem(
        backbone_site, tmp_path, "ground", "videos", "cut onion", *PLANTED, "--out-dir", "local"
    )
    assert local.returncode == 0, local.stderr
    joined = _vgem(
        backbone_site, tmp_path, "ground", "videos", "cut onion", *PLANTED, "--out-dir", "cluster",
        "--executor", "ray", "--ray-address", cluster.address, "--workers", "2",
        auth=cluster.auth,
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    assert "Traceback" not in joined.stderr

    def answers(folder: str) -> dict[str, list]:
        return {
            path.stem: json.loads(path.read_text())["queries"][0]["times"]
            for path in sorted((tmp_path / folder).glob("?.json"))
        }

    assert answers("cluster") == answers("local") and len(answers("local")) == 3
    record = json.loads((tmp_path / "cluster" / "vgem-batch.json").read_text())
    execution = record["execution"]
    assert execution["executor"] == "ray" and execution["address"] == cluster.address
    assert record["counts"]["succeeded"] == 3
    # two worker processes of the cluster did the work
    assert len({worker["pid"] for worker in execution["per_worker"]}) == 2


def _one_line_error(completed: subprocess.CompletedProcess) -> str:
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, completed.stderr
    return lines[0]


def _one_video(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    frames = [planted_frame(96, 64, 1, 1)] * 2
    write_video(tmp_path / "videos" / "a.mp4", frames, size=(96, 64), fps=2)


def test_an_address_where_no_cluster_runs_is_refused_at_once(backbone_site, tmp_path):
    _one_video(tmp_path)
    started = time.monotonic()
    refused = _vgem(
        backbone_site, tmp_path, "ground", "videos", "cut onion", *PLANTED, "--out-dir", "out",
        "--executor", "ray", "--ray-address", f"127.0.0.1:{_free_port()}",
    )  # fmt: skip
    assert time.monotonic() - started < 60  # Ray alone retries such an address for minutes
    line = _one_line_error(refused)
    assert "--ray-address" in line and "nothing answers" in line


def test_joining_a_cluster_that_asks_for_a_token_without_one_says_how(
    cluster,
    backbone_site,
    tmp_path,
):
    _one_video(tmp_path)
    refused = _vgem(
        backbone_site, tmp_path, "ground", "videos", "cut onion", *PLANTED, "--out-dir", "out",
        "--executor", "ray", "--ray-address", cluster.address,
    )  # fmt: skip
    line = _one_line_error(refused)
    assert "--ray-address" in line and "RAY_AUTH_MODE=token" in line
