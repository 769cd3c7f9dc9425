"""The machine's true matrix-product peak, and where a grounded time's seconds go.

Not a test: used by bench_ground.py, or run by hand on a quiet machine.

    python benchmarks/roofline.py                               # peak only
    python benchmarks/roofline.py --parts clip-b16 --precision bf16

The peak is the best of several large, warm square products (the shapes a
careful person would use), at this process's thread count, each printed with
its shape. Where a warm 512² probe says the shapes would take far longer than
the time budget (bf16 on a CPU without native bf16 units runs a hundred times
slower than fp32), the smallest is timed over one product and the others are
skipped and printed as such.

The parts: one grounded time of a short generated video, timed by wrapping
each stage (exclusive times: a part's own seconds, its children's removed):
decode (ffmpeg, frame selection), pre-processing (pixels to the normalized
tensor), patch embedding, attention (norms, projections and the fused
attention of the original path), MLP, GEM path (self-self attention), heads,
and post-processing (layer weights, similarity maps, heatmaps, points,
aggregation); "other" is the rest of the wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHAPES = (2048, 3072, 4096)


# --------------------------------------------------------------------------- peak


def matmul_peak(
    dtype_name: str, shapes: tuple[int, ...] = SHAPES, seconds: float = 2.0
) -> dict[str, Any]:
    """Best sustained TFLOP/s over warm square products of ``shapes``.

    A dtype this CPU emulates (bf16 without AVX512-BF16 or AMX runs about a
    hundred times slower than fp32) would take minutes per large product: for
    it only the smallest shape is timed, over a single product, so the peak is
    still a large product's and never a small probe's.

    Returns ``{"tflops": best, "shape": its size, "shapes": {size: TFLOP/s or
    None when skipped}}``.
    """
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    probe_size = 512
    probe = torch.randn(probe_size, probe_size, dtype=dtype)
    probe @ probe
    probe_seconds = float("inf")
    for _ in range(3):  # the best of three: one slow wake-up must not skip a shape
        started = time.perf_counter()
        probe @ probe
        probe_seconds = min(probe_seconds, time.perf_counter() - started)
    measured: dict[int, float | None] = {}
    for size in sorted(shapes):
        slow = probe_seconds * (size / probe_size) ** 3 > 5 * seconds
        if slow and measured:
            measured[size] = None  # far too slow to be a peak; do not wait on it
            continue
        a = torch.randn(size, size, dtype=dtype)
        b = torch.randn(size, size, dtype=dtype)
        if not slow:
            a @ b  # warm-up (a slow dtype is warm from the probe: same kernel)
        count, started = 0, time.perf_counter()
        while count < 1 or (not slow and (time.perf_counter() - started < seconds or count < 3)):
            a @ b
            count += 1
        measured[size] = 2 * size**3 * count / (time.perf_counter() - started) / 1e12
    timed = {size: value for size, value in measured.items() if value is not None}
    best = max(timed, key=lambda size: timed[size])
    return {"tflops": timed[best], "shape": best, "shapes": measured}


def describe_peak(name: str, peak: dict[str, Any]) -> str:
    shapes = ", ".join(
        f"{size}²: " + ("skipped (probe: too slow)" if value is None else f"{value:.3g}")
        for size, value in peak["shapes"].items()
    )
    # three significant digits: an emulated dtype's peak is a thousandth of a TFLOP/s
    return f"{name} peak {peak['tflops']:.3g} TFLOP/s ({peak['shape']}²); per shape: {shapes}"


# --------------------------------------------------------------------------- parts

PARTS = (
    "decode",
    "pre-processing",
    "patch embedding",
    "attention",
    "MLP",
    "GEM path",
    "heads",
    "post-processing",
)


class PartTimer:
    """Exclusive wall time per part: wrapped callables and module hooks push and
    pop a stack, and a part's time excludes the parts nested in it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list[Any]] = []  # [part, started, children's seconds]

    def push(self, part: str) -> None:
        self._stack.append([part, time.perf_counter(), 0.0])

    def pop(self) -> None:
        part, started, children = self._stack.pop()
        elapsed = time.perf_counter() - started
        self.seconds[part] += elapsed - children
        if self._stack:
            self._stack[-1][2] += elapsed

    def wrap(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.push(part)
            try:
                return function(*args, **kwargs)
            finally:
                self.pop()

        return timed

    def wrap_generator(self, part: str, function: Callable[..., Iterator[Any]]):
        """Time a generator's own work between the items it yields."""

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            iterator = iter(function(*args, **kwargs))
            while True:
                self.push(part)
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    self.pop()
                yield item

        return timed

    def hook(self, module: Any, part: str) -> None:
        module.register_forward_pre_hook(lambda *_: self.push(part))
        module.register_forward_hook(lambda *_: self.pop())


@contextlib.contextmanager
def patched(target: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, replacement)
    try:
        yield
    finally:
        setattr(target, name, original)


def part_shares(backbone: str, precision: str, video: Path, repeats: int = 2) -> dict[str, Any]:
    """Seconds per part for grounding one time of ``video`` (median-free: the sum
    over ``repeats`` runs after a warm-up, divided by ``repeats``)."""
    import torch

    sys.path.insert(0, str(HERE))
    from bench_models import QUERY, build_adapter

    import vgem.backbones.base as base
    import vgem.gem as gem
    import vgem.grounder as grounder_module
    import vgem.video as video_io
    from vgem.grounder import Grounder

    adapter = build_adapter(backbone)
    grounder = Grounder(adapter=adapter, extractor="label", precision=precision)
    info = video_io.probe_video(str(video))
    at = [info.duration / 2]
    grounder.ground(str(video), [QUERY], at=at)  # warm-up: kernels, text cache

    timer = PartTimer()
    for block in adapter.blocks:
        timer.hook(block.mlp, "MLP")
    run_block = timer.wrap("attention", base.run_block)
    dual_block = timer.wrap("attention", gem._dual_block)
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(gem, "run_block", run_block))
        stack.enter_context(patched(gem, "_dual_block", dual_block))
        for name in ("self_self_attention", "released_self_self_attention"):
            stack.enter_context(patched(gem, name, timer.wrap("GEM path", getattr(gem, name))))
        stack.enter_context(patched(adapter, "embed", timer.wrap("patch embedding", adapter.embed)))
        stack.enter_context(patched(adapter, "head", timer.wrap("heads", adapter.head)))
        stack.enter_context(
            patched(video_io, "iter_clips", timer.wrap_generator("decode", video_io.iter_clips))
        )
        stack.enter_context(
            patched(
                video_io, "clip_to_tensor", timer.wrap("pre-processing", video_io.clip_to_tensor)
            )
        )
        stack.enter_context(
            patched(
                grounder,
                "prompt_heatmaps",
                timer.wrap("post-processing", grounder.prompt_heatmaps),
            )
        )
        stack.enter_context(
            patched(grounder, "aggregator", _TimedAggregator(grounder.aggregator, timer))
        )
        del grounder_module  # imported so that the module is loaded before patching
        started = time.perf_counter()
        for _ in range(repeats):
            grounder.ground(str(video), [QUERY], at=at)
        total = (time.perf_counter() - started) / repeats
    seconds = {part: timer.seconds.get(part, 0.0) / repeats for part in PARTS}
    seconds["other"] = max(0.0, total - sum(seconds.values()))
    return {
        "backbone": backbone,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "seconds": total,
        "parts": seconds,
    }


class _TimedAggregator:
    """The grounder's aggregator, its calls counted as post-processing."""

    def __init__(self, inner: Any, timer: PartTimer) -> None:
        self._inner = inner
        self._timer = timer

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._timer.wrap("post-processing", self._inner)(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        return self._timer.wrap("post-processing", value) if callable(value) else value


def print_parts(measured: dict[str, Any], peak_tflops: float | None = None) -> None:
    """The parts as a Markdown table; with the precision's peak, also the model
    work's share of it (model seconds: the total less decode and pre-processing)."""
    total = measured["seconds"]
    print(
        f"\n{measured['backbone']} {measured['precision']}: {total:.3f} s per grounded time "
        f"(decode included), by part:"
    )
    if peak_tflops:
        sys.path.insert(0, str(HERE))
        from bench_models import ARCHITECTURES, clip_flops

        arch = ARCHITECTURES[measured["backbone"]]
        tflop = clip_flops(arch, released=arch.frames > 1) / 1e12
        parts = measured["parts"]
        model = total - parts["decode"] - parts["pre-processing"]
        print(
            f"model work {tflop:.3f} TFLOP in {model:.3f} s: {tflop / model:.3f} TFLOP/s, "
            f"{tflop / model / peak_tflops:.0%} of the measured {measured['precision']} peak"
        )
    print("\n| part | s | share |")
    print("|---|---|---|")
    for part, seconds in measured["parts"].items():
        print(f"| {part} | {seconds:.4f} | {seconds / total:.1%} |")


def make_short_video(folder: Path, seconds: int = 4) -> Path:
    sys.path.insert(0, str(HERE))
    from bench_models import make_video

    folder.mkdir(parents=True, exist_ok=True)
    return make_video(folder / f"testsrc-{seconds}s-720p.mp4", seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="", help="backbones to split into parts")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--video-dir", default="/tmp/vgem-bench")
    arguments = parser.parse_args()

    import torch

    print(f"# roofline — {torch.get_num_threads()} threads")
    peaks = {}
    for name in ("fp32", "bf16"):
        peaks[name] = matmul_peak(name)
        print(describe_peak(name, peaks[name]), flush=True)
    for backbone in filter(None, arguments.parts.split(",")):
        video = make_short_video(Path(arguments.video_dir))
        measured = part_shares(backbone, arguments.precision, video)
        print_parts(measured, peaks.get(arguments.precision, {}).get("tflops"))


if __name__ == "__main__":
    main()
