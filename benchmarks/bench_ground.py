"""How fast vgem grounds, against the matrix-product roofline and a plain implementation.

Not a test: run it by hand on a quiet machine.

    python benchmarks/bench_ground.py                      # everything (long)
    python benchmarks/bench_ground.py --backbones viclip-b16 --no-memory

Random weights at the real architecture sizes (clip-b16, viclip-b16,
viclip-l14); one query decomposed into 3 prompts. Each measurement runs in its
own subprocess so that its peak resident memory is its own. Printed:

1. the measured matrix-product peak (fp32 and bf16) of this machine: the best
   of warm 2048², 3072² and 4096² products at the runs' thread count, every
   shape's figure printed (benchmarks/roofline.py);
2. per backbone × precision × batch: seconds per grounded time, grounded
   times per second, model TFLOP per clip (counted from the architecture),
   achieved TFLOP/s and its fraction of the peak of that precision, peak RSS;
3. where the time goes: per backbone and precision, the share of one grounded
   time spent in decode, pre-processing, patch embedding, attention, MLP, the
   GEM path, heads and post-processing (benchmarks/roofline.py);
4. a plain, unfused fp32 implementation of the same math (one clip at a time,
   materialized attention; benchmarks/plain_gem.py) timed in alternation with
   vgem fp32 and bf16 (batch 1) in one process, medians of ``--rounds``, its
   maps compared with vgem's fp32 maps, and the speed-ups;
5. bf16 fidelity over 20 random clips: mean Pearson r of the similarity maps
   against fp32 and their largest difference, how often the final points
   agree, and how far the others moved;
6. bf16 with the block weights lowered once (vgem's way) against autocast
   alone, alternating in one process: seconds per grounded time, seconds spent
   converting tensors (profiler), parameters' memory;
7. memory on long inputs: peak RSS grounding a 30-second and a 10-minute 720p
   video at 1 fps with viclip-b16 (generated with ffmpeg's test source).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench_models import (  # noqa: F401 (re-exported for scripts that import them from here)
    ARCHITECTURES,
    BACKBONES,
    QUERY,
    Architecture,
    build_adapter,
    clip_flops,
    make_video,
    random_clips,
)

HERE = Path(__file__).resolve().parent


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- workers


def worker_speed(job: dict) -> dict:
    from vgem.grounder import Grounder

    adapter = build_adapter(job["backbone"])
    grounder = Grounder(
        adapter=adapter, extractor="label", precision=job["precision"], batch_size=job["batch"]
    )
    clips = random_clips(adapter, job["batch"], seed=1)
    grounder.ground_pixels(clips, [QUERY])  # warm-up: kernels, text cache
    started = time.perf_counter()
    for _ in range(job["repeats"]):
        grounder.ground_pixels(clips, [QUERY])
    elapsed = (time.perf_counter() - started) / job["repeats"]
    return {"seconds_per_time": elapsed / job["batch"], "peak_rss_mib": peak_rss_mib()}


def worker_plain(job: dict) -> dict:
    """The plain implementation and vgem (fp32, bf16) timed in turns, round after round.

    The machine is shared and its speed drifts; alternating the three in one
    process and taking each one's median keeps the ratios side by side.
    """
    import statistics

    import torch

    sys.path.insert(0, str(HERE))
    from plain_gem import plain_gem_forward

    from vgem.grounder import Grounder

    adapter = build_adapter(job["backbone"])
    # bf16 lowers its adapter's block weights in place: it gets its own (same seed, same weights)
    fused = {
        "fp32": Grounder(adapter=adapter, extractor="label", precision="fp32"),
        "bf16": Grounder(
            adapter=build_adapter(job["backbone"]), extractor="label", precision="bf16"
        ),
    }
    clip = random_clips(adapter, 1, seed=1)
    grounder = fused["fp32"]
    target = adapter.preprocessing.target_index
    text = grounder._prompt_table(grounder.prompts_for([QUERY])).embeddings.unsqueeze(0)

    def plain():
        with torch.inference_mode():
            return plain_gem_forward(adapter, clip, grounder.settings, target)

    runs = {
        "plain": plain,
        "fp32": lambda: fused["fp32"].ground_pixels(clip, [QUERY]),
        "bf16": lambda: fused["bf16"].ground_pixels(clip, [QUERY]),
    }
    for run in runs.values():  # warm-up
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(job["rounds"]):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    with torch.inference_mode():
        plain_maps, _, _ = grounder.prompt_heatmaps(plain(), text)
    reference = runs["fp32"]().similarity
    difference = (plain_maps.reshape(reference.shape) - reference).abs().max()
    return {
        "plain_seconds": median["plain"],
        "fp32_seconds": median["fp32"],
        "bf16_seconds": median["bf16"],
        "speedup_fp32": median["plain"] / median["fp32"],
        "speedup_bf16": median["plain"] / median["bf16"],
        "max_map_difference": float(difference),
        "rounds": job["rounds"],
    }


def worker_fidelity(job: dict) -> dict:
    import torch

    from vgem.grounder import Grounder

    results = {}
    for precision in ("fp32", "bf16"):  # bf16 lowers its adapter's weights: one adapter each
        adapter = build_adapter(job["backbone"])
        grounder = Grounder(adapter=adapter, extractor="label", precision=precision)
        maps, points = [], []
        for index in range(job["clips"]):
            grounding = grounder.ground_pixels(random_clips(adapter, 1, seed=100 + index), [QUERY])
            maps.append(grounding.similarity.flatten(2).float())
            points.append(grounding.points[0][0])
        results[precision] = (torch.cat(maps), points)
    reference, reference_points = results["fp32"]
    reduced, reduced_points = results["bf16"]
    correlations = [
        float(torch.corrcoef(torch.stack([a, b]))[0, 1])
        for a, b in zip(
            reference.reshape(-1, reference.shape[-1]),
            reduced.reshape(-1, reduced.shape[-1]),
            strict=True,
        )
    ]
    pairs = list(zip(reference_points, reduced_points, strict=True))
    moved = [((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5 for a, b in pairs if a != b]
    return {
        "mean_pearson": sum(correlations) / len(correlations),
        "min_pearson": min(correlations),
        "largest_map_difference": float((reference - reduced).abs().max()),
        "points_agree": len(pairs) - len(moved),
        "clips": job["clips"],
        # how far the points that moved went, in pixels of the model input
        "largest_move_px": max(moved, default=0.0),
    }


def worker_video(job: dict) -> dict:
    from vgem.grounder import Grounder

    adapter = build_adapter("viclip-b16")
    grounder = Grounder(adapter=adapter, extractor="label", precision=job["precision"])
    decoder_peak = ChildPeakSampler()
    started = time.perf_counter()
    with decoder_peak:
        result = grounder.ground(job["video"], [QUERY], fps=1)
    return {
        "seconds": time.perf_counter() - started,
        "grounded_times": len(result.times),
        "peak_rss_mib": peak_rss_mib(),
        "ffmpeg_peak_rss_mib": decoder_peak.peak_mib,
    }


class ChildPeakSampler:
    """Polls the high-water RSS of this process's children (the ffmpeg decoders).

    RUSAGE_CHILDREN cannot be used: a child forked from a large Python process
    inherits the parent's RSS as its high-water mark before it execs ffmpeg.
    VmHWM belongs to the address space, so after exec it is ffmpeg's own.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ChildPeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for pid in self._children():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_mib = max(self.peak_mib, int(line.split()[1]) / 1024)

    @staticmethod
    def _children() -> list[str]:
        pids: list[str] = []
        for children in Path("/proc/self/task").glob("*/children"):
            try:
                pids.extend(children.read_text().split())
            except OSError:
                continue
        return pids


def worker_parts(job: dict) -> dict:
    sys.path.insert(0, str(HERE))
    from roofline import part_shares

    return part_shares(job["backbone"], job["precision"], Path(job["video"]))


def worker_lowering(job: dict) -> dict:
    """bf16 with the block weights lowered once against autocast alone, side by side.

    Two adapters with the same weights; one Grounder lowers its blocks (vgem's
    way), the other is kept on autocast alone. Per grounded time: the wall
    time (alternating rounds, medians) and the time spent converting tensors
    (PyTorch profiler: ``aten::_to_copy``/``aten::copy_`` self time), and the
    parameters' memory.
    """
    import statistics

    from torch.profiler import ProfilerActivity, profile

    import vgem.grounder

    lowered = vgem.grounder.Grounder(
        adapter=build_adapter(job["backbone"]), extractor="label", precision="bf16"
    )
    prepare = vgem.grounder.prepare_blocks
    vgem.grounder.prepare_blocks = lambda blocks, precision: None  # autocast alone
    try:
        autocast_only = vgem.grounder.Grounder(
            adapter=build_adapter(job["backbone"]), extractor="label", precision="bf16"
        )
        clip = random_clips(lowered.adapter, 1, seed=1)
        runs = {"lowered": lowered, "autocast": autocast_only}
        for grounder in runs.values():
            grounder.ground_pixels(clip, [QUERY])  # warm-up
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(job["rounds"]):
            for name, grounder in runs.items():
                started = time.perf_counter()
                grounder.ground_pixels(clip, [QUERY])
                seconds[name].append(time.perf_counter() - started)
        converting = {}
        for name, grounder in runs.items():
            with profile(activities=[ProfilerActivity.CPU]) as profiled:
                grounder.ground_pixels(clip, [QUERY])
            converting[name] = (
                sum(
                    event.self_cpu_time_total
                    for event in profiled.key_averages()
                    if event.key in ("aten::_to_copy", "aten::copy_")
                )
                / 1e6
            )
    finally:
        vgem.grounder.prepare_blocks = prepare

    def parameter_mib(grounder) -> float:
        parameters = grounder.adapter.module.parameters()
        return sum(p.numel() * p.element_size() for p in parameters) / 2**20

    return {
        **{f"{name}_seconds": statistics.median(values) for name, values in seconds.items()},
        **{f"{name}_converting_seconds": value for name, value in converting.items()},
        "lowered_parameter_mib": parameter_mib(lowered),
        "autocast_parameter_mib": parameter_mib(autocast_only),
        "rounds": job["rounds"],
    }


WORKERS = {
    "parts": worker_parts,
    "speed": worker_speed,
    "plain": worker_plain,
    "fidelity": worker_fidelity,
    "video": worker_video,
    "lowering": worker_lowering,
}


def run_worker(job: dict) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {job} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the run


def header(*columns: str) -> None:
    """Start a Markdown table (the report pastes into issues and notes as is)."""
    print("\n| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


def row(*cells: object) -> None:
    print("| " + " | ".join(str(cell) for cell in cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="alternating plain/vgem rounds")
    parser.add_argument("--fidelity-clips", type=int, default=20)
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--plain", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--parts", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--lowering",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="bf16 weights lowered once against autocast alone",
    )
    parser.add_argument("--video-dir", default="/tmp/vgem-bench")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    arguments = parser.parse_args()
    if arguments.worker:
        job = json.loads(arguments.worker)
        print(json.dumps(WORKERS[job["kind"]](job)))
        return

    import torch

    backbones = arguments.backbones.split(",")
    precisions = arguments.precisions.split(",")
    batches = [int(b) for b in arguments.batches.split(",")]
    report: dict = {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    print(f"# vgem grounding benchmark — {report['threads']} threads")
    sys.path.insert(0, str(HERE))
    from roofline import describe_peak, make_short_video, matmul_peak, print_parts

    measured_peaks = {name: matmul_peak(name) for name in ("fp32", "bf16")}
    report["matmul_peak"] = measured_peaks
    peaks = {name: peak["tflops"] for name, peak in measured_peaks.items()}
    report["matmul_peak_tflops"] = peaks
    for name, peak in measured_peaks.items():
        print(describe_peak(name, peak))

    header(
        "backbone", "precision", "batch", "s / time", "times / s", "TFLOP / clip", "TFLOP/s",
        "of peak", "peak RSS MiB",
    )  # fmt: skip
    speed_rows = []
    for backbone in backbones:
        arch = ARCHITECTURES[backbone]
        tflop = clip_flops(arch, released=arch.frames > 1) / 1e12
        for precision in precisions:
            for batch in batches:
                job = {
                    "kind": "speed",
                    "backbone": backbone,
                    "precision": precision,
                    "batch": batch,
                    "repeats": arguments.repeats,
                }
                measured = run_worker(job)
                seconds = measured["seconds_per_time"]
                achieved = tflop / seconds
                fraction = achieved / peaks[precision]
                speed_rows.append(
                    {**job, **measured, "tflop_per_clip": tflop, "achieved_tflops": achieved,
                     "fraction_of_peak": fraction}
                )  # fmt: skip
                row(
                    backbone, precision, batch, f"{seconds:.3f}", f"{1 / seconds:.2f}",
                    f"{tflop:.3f}", f"{achieved:.3f}", f"{fraction:.0%}",
                    f"{measured['peak_rss_mib']:.0f}",
                )  # fmt: skip
    report["speed"] = speed_rows

    if arguments.parts:
        report["parts"] = []
        video = make_short_video(Path(arguments.video_dir))
        for backbone in backbones:
            for precision in precisions:
                job = {"kind": "parts", "backbone": backbone, "precision": precision}
                measured = run_worker({**job, "video": str(video)})
                report["parts"].append(measured)
                print_parts(measured, peaks[precision])

    if arguments.plain:
        header(
            "backbone", "plain fp32 s / clip", "vgem fp32 s", "vgem bf16 s",
            "max map Δ vs vgem fp32", "speed-up fp32", "speed-up bf16",
        )  # fmt: skip
        report["plain"] = []
        for backbone in backbones:
            job = {"kind": "plain", "backbone": backbone, "rounds": arguments.rounds}
            measured = run_worker(job)
            report["plain"].append({"backbone": backbone, **measured})
            row(
                backbone, f"{measured['plain_seconds']:.3f}", f"{measured['fp32_seconds']:.3f}",
                f"{measured['bf16_seconds']:.3f}", f"{measured['max_map_difference']:.2e}",
                f"{measured['speedup_fp32']:.2f}×", f"{measured['speedup_bf16']:.2f}×",
            )  # fmt: skip

    if "bf16" in precisions and arguments.fidelity_clips:
        header(
            "backbone", "bf16 vs fp32: mean Pearson r", "min r", "largest map difference",
            "final points equal", "largest move (px)",
        )  # fmt: skip
        report["fidelity"] = []
        for backbone in backbones:
            measured = run_worker(
                {"kind": "fidelity", "backbone": backbone, "clips": arguments.fidelity_clips}
            )
            report["fidelity"].append({"backbone": backbone, **measured})
            row(
                backbone, f"{measured['mean_pearson']:.6f}", f"{measured['min_pearson']:.6f}",
                f"{measured['largest_map_difference']:.1e}",
                f"{measured['points_agree']}/{measured['clips']}",
                f"{measured['largest_move_px']:.1f}",
            )  # fmt: skip

    if "bf16" in precisions and arguments.lowering:
        header(
            "backbone", "bf16 s / time: lowered once", "autocast alone",
            "converting, s / time: lowered", "autocast", "parameters MiB: lowered", "autocast",
        )  # fmt: skip
        report["lowering"] = []
        for backbone in backbones:
            measured = run_worker(
                {"kind": "lowering", "backbone": backbone, "rounds": arguments.rounds}
            )
            report["lowering"].append({"backbone": backbone, **measured})
            row(
                backbone, f"{measured['lowered_seconds']:.3f}",
                f"{measured['autocast_seconds']:.3f}",
                f"{measured['lowered_converting_seconds']:.3f}",
                f"{measured['autocast_converting_seconds']:.3f}",
                f"{measured['lowered_parameter_mib']:.0f}",
                f"{measured['autocast_parameter_mib']:.0f}",
            )  # fmt: skip

    if arguments.memory:
        folder = Path(arguments.video_dir)
        folder.mkdir(parents=True, exist_ok=True)
        header(
            "video (720p, 24 fps)", "grounded times", "seconds", "peak RSS MiB", "ffmpeg peak MiB"
        )
        report["memory"] = []
        precision = "bf16" if "bf16" in precisions else "fp32"
        for label, seconds in (("30 s", 30), ("10 min", 600)):
            video = make_video(folder / f"testsrc-{seconds}s-720p.mp4", seconds)
            measured = run_worker({"kind": "video", "video": str(video), "precision": precision})
            report["memory"].append({"video": label, **measured})
            row(
                label, measured["grounded_times"], f"{measured['seconds']:.1f}",
                f"{measured['peak_rss_mib']:.0f}", f"{measured['ffmpeg_peak_rss_mib']:.0f}",
            )  # fmt: skip
        short, long = report["memory"]
        ratio = long["peak_rss_mib"] / short["peak_rss_mib"]
        print(f"peak RSS 10 min / 30 s: {ratio:.2f}×")

    if arguments.json:
        Path(arguments.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
