"""A node lost in the middle of a Ray run: its video goes to the worker that is left.

A two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``: a head
and one more node, one CPU each, so each holds one worker and a replacement
has nowhere to go), two workers, and the second node removed without grace
(its raylet and workers killed) half way through. The run must finish with
the figures of a local run, every sample once, and say which worker died
where; before the execution layer it waited for ever for a replacement
worker that could never be placed.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time

import pytest

import vgem.eval
import vgem.execution
from tests.eval.test_eval_command import _planted_dataset, _write_manifest
from tests.ray_site import DEATHS_VARIABLE, REPOSITORY
from vgem.settings import Settings

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

FIGURES = ("complete", "overall", "datasets", "errors")


def test_a_lost_node_s_video_goes_to_the_worker_that_is_left(backbone_site, tmp_path):
    deaths = tmp_path / "deaths"
    deaths.mkdir()
    # a second per clip: each video takes two, so the worker that is left is busy when the
    # node is lost (a replacement that can never be placed must not get the video)
    (deaths / "slow").write_text("1")
    variables = {
        "PYTHONPATH": os.pathsep.join([str(backbone_site), str(REPOSITORY)]),
        DEATHS_VARIABLE: str(deaths),
    }
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "object_store_memory": 80 * 1024**2,
            "env_vars": variables,
        },
    )
    second = cluster.add_node(num_cpus=1, object_store_memory=80 * 1024**2, env_vars=variables)
    records = _planted_dataset(tmp_path / "data", videos=3)
    manifest = _write_manifest(tmp_path / "data" / "manifest.jsonl", records)
    options = {"backbone": "planted", "settings": Settings(depth=4, extractor="label")}
    try:
        ray.init(address=cluster.address, logging_level=logging.ERROR, log_to_driver=False)
        predictions = tmp_path / "ray" / "predictions.jsonl"

        def lose_the_second_node() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if predictions.exists() and predictions.read_text().count("\n") >= 1:
                    cluster.remove_node(second, allow_graceful=False)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=lose_the_second_node)
        killer.start()
        on_ray = vgem.eval.run(
            vgem.eval.open_manifest(manifest),
            run_dir=tmp_path / "ray",
            executor=vgem.execution.RayExecutor(workers=2, schedule_timeout=120),
            **options,
        )
        killer.join()
    finally:
        ray.shutdown()
        cluster.shutdown()
    (deaths / "slow").unlink()
    local = vgem.eval.run(vgem.eval.open_manifest(manifest), run_dir=tmp_path / "local", **options)
    assert {key: on_ray.document[key] for key in FIGURES} == {
        key: local.document[key] for key in FIGURES
    }
    ids = [json.loads(line)["id"] for line in predictions.read_text().splitlines()]
    assert sorted(ids) == sorted(record["id"] for record in records)  # each exactly once
    execution = on_ray.document["execution"]
    assert execution["retried_units"] >= 1
    nodes = {worker["node_id"] for worker in execution["per_worker"]}
    assert len(nodes) == 2  # one worker on each node
    (lost,) = [worker for worker in execution["per_worker"] if "died" in worker]
    (left,) = [worker for worker in execution["per_worker"] if "died" not in worker]
    assert lost["node_id"] != left["node_id"]
    assert left["samples"] + lost["samples"] == len(records)  # nothing grounded twice
