"""What the benchmarks share: the architectures and their FLOPs, random-weight models at
the real sizes, random clips and a generated test video.

Its own module so that ``bench_ground.py``, ``roofline.py`` and
``bench_scaling.py`` all read it and none of them imports another's main
script (no import circles among the benchmarks either).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

BACKBONES = ("clip-b16", "viclip-b16", "viclip-l14")
QUERY = "cut onion"


# --------------------------------------------------------------------------- FLOPs


@dataclass(frozen=True)
class Architecture:
    layers: int
    width: int
    mlp_width: int
    embed_dim: int
    patch: int
    input_size: int
    frames: int

    @property
    def grid_cells(self) -> int:
        return (self.input_size // self.patch) ** 2

    @property
    def tokens(self) -> int:
        return 1 + self.frames * self.grid_cells


ARCHITECTURES = {
    "clip-b16": Architecture(12, 768, 3072, 512, 16, 448, 1),
    "viclip-b16": Architecture(12, 768, 3072, 512, 16, 224, 8),
    "viclip-l14": Architecture(24, 1024, 4096, 768, 14, 224, 8),
}


def clip_flops(
    arch: Architecture, *, depth=7, iterations=1, released=False, prompts=3, batch_terms=8
) -> float:
    """Multiply-adds × 2 that vgem performs for one clip.

    Counted from the architecture: the patch embedding; L blocks of the
    original path (the last one only for the class token, since nothing reads
    its patch outputs); on the K GEM blocks, the self-self iterations over all
    tokens and the final assignment and out-projection for the target frame's
    patches (the only GEM outputs read); the per-prompt head. Elementwise work
    and the text encoder (cached) are not counted.
    """
    n, c, m = arch.tokens, arch.width, arch.mlp_width
    cells = arch.grid_cells
    flops = 2 * (n - 1) * 3 * arch.patch**2 * c  # patch embedding
    full_block = 6 * n * c * c + 4 * n * n * c + 2 * n * c * c + 4 * n * c * m
    last_block = 6 * n * c * c + 4 * n * c + 2 * c * c + 4 * c * m
    flops += (arch.layers - 1) * full_block + last_block
    if released:
        size = cells  # chunk length
        iterate = 3 * iterations * arch.frames * 4 * size * size * c
        assign = 3 * 4 * cells * size * c
    else:
        iterate = 3 * iterations * 4 * n * n * c
        assign = 3 * 4 * cells * n * c
    flops += depth * (iterate + assign + 2 * cells * c * c)
    flops += prompts * (2 * batch_terms * cells * c + 2 * cells * c * arch.embed_dim)
    return float(flops)


# --------------------------------------------------------------------------- models


def build_adapter(name: str):
    """Random weights at the real size, seeded."""
    import torch

    torch.manual_seed(0)
    if name == "clip-b16":
        import logging

        import open_clip

        from vgem.backbones.openclip import OpenClipAdapter

        logging.getLogger().setLevel(logging.ERROR)
        model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
        tokenizer = open_clip.get_tokenizer("ViT-B-16-quickgelu")
        return OpenClipAdapter(model, tokenizer, name=name, weights_source="random")
    from vgem.backbones.viclip.adapter import ViCLIPAdapter
    from vgem.backbones.viclip.model import VICLIP_CONFIGS, ViCLIP

    return ViCLIPAdapter(ViCLIP(VICLIP_CONFIGS[name]).eval(), "random")


def random_clips(adapter, count: int, seed: int):
    import torch

    preprocessing = adapter.preprocessing
    size = preprocessing.input_size
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(count, preprocessing.frames_per_clip, 3, size, size, generator=generator)


def make_video(path: Path, seconds: int) -> Path:
    import imageio_ffmpeg

    if path.exists():
        return path
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi",
        "-i", "testsrc2=size=1280x720:rate=24", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-y", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return path
