"""How `vgem eval` scales out on Ray: per-clip costs, 1 vs 2 workers, and a projection.

Not a test: run it by hand on a quiet machine (it needs ``pip install "vgem[ray]"``).

    python benchmarks/bench_scaling.py                     # fp32, ~30 minutes on 2 cores
    python benchmarks/bench_scaling.py --precision bf16 --videos 6 --repeats 2 --local

Every model here is the real architecture with random weights (seeded, so
every worker builds the same one); figures are meaningless, costs are real.
Printed:

1. per-clip model cost (seconds per grounded time: one visual pass, GEM, maps
   and points) of viclip-b16 and viclip-l14, fp32, one CPU thread, for one
   query (the spatial task) and for 8 queries (a whole video's step names in
   the spatiotemporal task);
2. the same small spatial evaluation (synthetic 640 x 360 videos, ``--videos``
   of them, 4 grounded times each) run in one process, one after another, by
   1 and 2 Ray workers of one CPU each on one local Ray instance (and first
   by the local executor on one thread, with ``--local``); per run its wall
   time, the model load,
   the steady throughput (samples per second once loaded, summed over
   workers), the end-to-end throughput, and the scaling efficiency of 2
   workers (throughput with 2 / (2 x throughput with 1)); the three runs'
   figures must be identical;
3. the projected wall time of each benchmark's full evaluation on 1, 8 and
   64 workers of one such CPU core (assumptions printed with it; pass
   ``--clip-seconds viclip-b16=0.02`` etc. to project from costs measured
   elsewhere, e.g. by benchmarks/bench_ground.py on a GPU).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parent
BACKBONES = ("viclip-b16", "viclip-l14")
QUERIES = ("cut the onion", "stir the soup", "pour the oil", "add salt", "slice the tomato",
           "peel the potato", "whisk the eggs", "fry the bacon")  # fmt: skip
TIMES = (0.5, 1.5, 2.5, 3.5)  # grounded times per synthetic video
VIDEO_SIZE = (640, 360)

# What a full evaluation grounds: clips (one per distinct grounded time) and how
# they are spread over videos. Counts from the dataset adapters' descriptions
# (vgem/eval/datasets); the GYT whole-video length is an assumption (see below).
GYT_AVERAGE_VIDEO_SECONDS = 300  # assumption: GroundingYouTube videos average 5 minutes


@dataclass(frozen=True)
class Benchmark:
    name: str
    task: str
    clips: int
    videos: int
    queries: int  # queries grounded per clip
    note: str


BENCHMARKS = (
    Benchmark(
        "GroundingYouTube", "spatial", 17_316, 250, 1,
        "17,316 boxed seconds in 250 videos, one clip each",
    ),
    Benchmark(
        "YouCook-Interactions", "spatial", 2_496, 91, 1,
        "2,496 annotated seconds in 91 videos, one clip each",
    ),
    Benchmark(
        "GroundingYouTube", "spatiotemporal", 250 * GYT_AVERAGE_VIDEO_SECONDS, 250, 8,
        f"every second of 250 videos of {GYT_AVERAGE_VIDEO_SECONDS} s (assumed), "
        "~8 step names each",
    ),
)  # fmt: skip


# --------------------------------------------------------------------------- models


def build_random_grounder(backbone: str, precision: str, threads: int | None = None):
    import torch
    from bench_models import build_adapter

    from vgem.grounder import Grounder

    if threads is not None:
        torch.set_num_threads(threads)
    adapter = build_adapter(backbone)
    return Grounder(adapter=adapter, extractor="label", device="cpu", precision=precision)


@dataclass(frozen=True)
class RandomGrounder:
    """A picklable recipe: each worker builds the same random-weight grounder."""

    backbone: str
    precision: str

    def __call__(self):
        return build_random_grounder(self.backbone, self.precision)


def clip_seconds(backbone: str, precision: str, queries: int, repeats: int) -> float:
    """Seconds per grounded time, one CPU thread, after a warm-up."""
    from bench_models import random_clips

    grounder = build_random_grounder(backbone, precision, threads=1)
    clips = random_clips(grounder.adapter, 1, seed=1)
    chosen = list(QUERIES[:queries])
    grounder.ground_pixels(clips, chosen)  # warm-up: kernels, text cache
    started = time.perf_counter()
    for _ in range(repeats):
        grounder.ground_pixels(clips, chosen)
    return (time.perf_counter() - started) / repeats


# --------------------------------------------------------------------------- the evaluation


def write_dataset(root: Path, videos: int) -> Path:
    """``videos`` synthetic clips of 4 s at 10 fps, 640 x 360, and their manifest."""
    import json

    import imageio_ffmpeg
    import numpy as np

    root.mkdir(parents=True, exist_ok=True)
    width, height = VIDEO_SIZE
    lines = []
    rng = np.random.default_rng(0)
    for index in range(videos):
        name = f"video{index:03d}.mp4"
        writer = imageio_ffmpeg.write_frames(
            str(root / name), (width, height), fps=10, quality=7, macro_block_size=8
        )
        writer.send(None)
        for _ in range(40):
            writer.send(rng.integers(0, 255, (height, width, 3), dtype=np.uint8).tobytes())
        writer.close()
        for position, seconds in enumerate(TIMES):
            lines.append(
                {
                    "id": f"{index}/{position}",
                    "video": name,
                    "time": seconds,
                    "query": QUERIES[position],
                    "boxes": [[100, 100, 300, 300]],
                }
            )
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def evaluate(manifest: Path, run_dir: Path, backbone: str, precision: str, executor) -> dict:
    import vgem.eval

    started = time.perf_counter()
    result = vgem.eval.run(
        vgem.eval.open_manifest(manifest),
        backbone=backbone,
        run_dir=run_dir,
        executor=executor,
        load_grounder=RandomGrounder(backbone, precision),
        metrics=["pointing"],
    )
    document = result.document
    document["wall_seconds"] = time.perf_counter() - started
    return document


def summary(document: dict) -> dict:
    execution = document["execution"]
    workers = execution["per_worker"]
    samples = sum(worker["samples"] for worker in workers)
    steady = sum(worker["samples_per_second"] or 0.0 for worker in workers)
    load = max(worker.get("load_seconds", 0.0) for worker in workers)
    return {
        "workers": len(workers),
        "samples": samples,
        "wall": document["wall_seconds"],
        "load": load,
        "steady": steady,
        "end_to_end": samples / document["wall_seconds"],
    }


# --------------------------------------------------------------------------- printing


def header(*columns: str) -> None:
    print(" | ".join(columns))
    print(" | ".join("-" * len(column) for column in columns))


def row(*cells: object) -> None:
    print(" | ".join(str(cell) for cell in cells))


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def project(
    benchmark: Benchmark, seconds_per_clip: float, workers: int, efficiency: float, load: float
) -> float:
    """Wall time: the clips spread over the workers at the measured efficiency, but never
    less than one worker's share of whole videos (a video is never split)."""
    per_video = benchmark.clips / benchmark.videos
    videos_per_worker = math.ceil(benchmark.videos / workers)
    spread = benchmark.clips * seconds_per_clip / (workers * (efficiency if workers > 1 else 1))
    floor = videos_per_worker * per_video * seconds_per_clip
    return load + max(spread, floor)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=12, help="synthetic videos evaluated")
    parser.add_argument("--backbone", default="viclip-b16", help="for the 1-vs-2 worker runs")
    parser.add_argument("--repeats", type=int, default=3, help="timed clips per cost")
    parser.add_argument("--precision", default="fp32", help="fp32 (vgem's default) or bf16")
    parser.add_argument(
        "--local", action="store_true", help="also run the local executor (one thread)"
    )
    parser.add_argument(
        "--clip-seconds",
        action="append",
        default=[],
        metavar="BACKBONE=SECONDS",
        help="project from this per-clip cost instead of measuring it (repeatable)",
    )
    arguments = parser.parse_args()
    sys.path.insert(0, str(HERE))
    logging.getLogger().setLevel(logging.ERROR)
    import platform

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
          f"torch {torch.__version__}, Python {platform.python_version()}; "
          f"load average {os.getloadavg()[0]:.1f} at the start")  # fmt: skip
    precision = arguments.precision

    # 1. per-clip costs
    given = dict(item.split("=", 1) for item in arguments.clip_seconds)
    costs: dict[tuple[str, int], float] = {}
    print(f"\n## Per-clip model cost (random weights, {precision}, 1 CPU thread)\n")
    header("backbone", "queries", "s / clip", "source")
    for backbone in BACKBONES:
        for queries in (1, 8):
            if backbone in given:
                costs[backbone, queries] = float(given[backbone])
                source = "given"
            else:
                costs[backbone, queries] = clip_seconds(
                    backbone, precision, queries, arguments.repeats
                )
                source = "measured"
            row(backbone, queries, f"{costs[backbone, queries]:.3f}", source)

    # 2. local, 1 and 2 Ray workers on the same evaluation
    import ray

    import vgem.eval
    from vgem.eval.ray_executor import RayExecutor

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        manifest = write_dataset(Path(folder) / "data", arguments.videos)
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=128 * 1024**2,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(HERE), str(REPOSITORY)])}},
        )
        executors = {
            "ray, 1 worker": RayExecutor(workers=1),
            "ray, 2 workers": RayExecutor(workers=2),
        }
        if arguments.local:
            executors = {"local (1 thread)": vgem.eval.LocalExecutor(), **executors}
        try:
            runs = {
                name: evaluate(
                    manifest, Path(folder) / f"run{index}", arguments.backbone, precision, executor
                )
                for index, (name, executor) in enumerate(executors.items())
            }
        finally:
            ray.shutdown()
    figures = {name: (doc["overall"], doc["datasets"]) for name, doc in runs.items()}
    identical = len({repr(value) for value in figures.values()}) == 1
    print(
        f"\n## One evaluation, {len(runs)} ways ({arguments.backbone}, {precision}, "
        f"{arguments.videos} videos x "
        f"{len(TIMES)} times = {arguments.videos * len(TIMES)} samples, 1 CPU per worker)\n"
    )
    header("executor", "wall s", "model load s", "steady samples/s", "end-to-end samples/s")
    summaries = {name: summary(document) for name, document in runs.items()}
    for name, values in summaries.items():
        row(name, f"{values['wall']:.1f}", f"{values['load']:.1f}",
            f"{values['steady']:.3f}", f"{values['end_to_end']:.3f}")  # fmt: skip
    one, two = summaries["ray, 1 worker"], summaries["ray, 2 workers"]
    steady_efficiency = two["steady"] / (2 * one["steady"])
    end_to_end_efficiency = two["end_to_end"] / (2 * one["end_to_end"])
    print(
        f"\nscaling efficiency of 2 workers: {100 * steady_efficiency:.0f} % steady, "
        f"{100 * end_to_end_efficiency:.0f} % end to end; identical figures: {identical}"
    )
    clip = costs[arguments.backbone, 1]
    overhead = max(0.0, 1 / one["steady"] - clip)
    print(
        f"per-sample overhead outside the model (decode, probe, transfer, line), from 1 "
        f"worker: {overhead:.3f} s; load average {os.getloadavg()[0]:.1f} at the end"
    )

    # 3. projection
    efficiency = min(1.0, steady_efficiency)
    load = max(one["load"], two["load"])
    print("\n## Projected wall time of a full evaluation (workers of 1 CPU core like these)\n")
    print(
        f"Assumptions: {precision}; seconds per clip = the model cost above (1 query for "
        f"spatial, 8 for "
        f"spatiotemporal) + {overhead:.3f} s overhead; every worker runs at the measured "
        f"2-worker efficiency ({100 * efficiency:.0f} %); a video is never split, so no "
        f"worker finishes before its share of whole videos; + {load:.0f} s to start a "
        f"worker and load the model; GroundingYouTube videos average "
        f"{GYT_AVERAGE_VIDEO_SECONDS} s (spatiotemporal grounds every second).\n"
    )
    header("benchmark", "task", "clips", "backbone", "1 worker", "8 workers", "64 workers")
    for benchmark in BENCHMARKS:
        for backbone in BACKBONES:
            per_clip = costs[backbone, benchmark.queries] + overhead
            times = [
                duration(project(benchmark, per_clip, workers, efficiency, load))
                for workers in (1, 8, 64)
            ]
            row(benchmark.name, benchmark.task, f"{benchmark.clips:,}", backbone, *times)
    print("\nClips: " + "; ".join(f"{b.name} {b.task}: {b.note}" for b in BENCHMARKS) + ".")


if __name__ == "__main__":
    main()
