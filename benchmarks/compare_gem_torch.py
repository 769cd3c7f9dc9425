"""Check vgem's GEM pathway against the official GEM package (gem-torch 1.0.1).

First make the reference with gem_torch_reference.py in a throwaway
environment, then, in vgem's environment:

    python benchmarks/compare_gem_torch.py /tmp/gem_reference

With weighting 'none', prompts used as given and K = 7 (gem-torch's
gem_depth 8), the normalized 448 × 448 heatmaps must agree to 1e-4.
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vgem.backbones.openclip import load_openclip
from vgem.gem import gem_forward, similarity_maps
from vgem.heatmaps import heatmaps_and_points
from vgem.settings import Settings

TOLERANCE = 1e-4


def main(reference_dir: Path) -> int:
    reference = np.load(reference_dir / "reference.npz")
    adapter = load_openclip(
        "ViT-B-16", None, str(reference_dir / "vit_b16_random.pt"), name="openclip:ViT-B-16"
    )
    image = torch.from_numpy(reference["image"]).unsqueeze(1)
    prompts = [str(p) for p in reference["prompts"]]
    with torch.inference_mode():
        gem_pass = gem_forward(
            adapter, image, Settings(depth=7, weighting="static", video_attention="joint"), 0
        )
        text = F.normalize(adapter.encode_text(prompts), dim=-1)
        weights = torch.ones(1, len(prompts), gem_pass.terms.shape[0])
        maps = similarity_maps(adapter, gem_pass, weights, text)
        heatmaps, points = heatmaps_and_points(maps, 448)
    expected = torch.from_numpy(reference["heatmaps"])
    difference = (heatmaps - expected).abs().max().item()
    expected_points = [
        divmod(int(np.argmax(h)), h.shape[-1])[::-1] for h in reference["heatmaps"][0]
    ]
    print(f"max |vgem - gem-torch| over {tuple(expected.shape)} heatmaps: {difference:.3g}")
    print(f"points vgem {points[0].tolist()} gem-torch {[list(p) for p in expected_points]}")
    ok = difference <= TOLERANCE and points[0].tolist() == [list(p) for p in expected_points]
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gem_reference")))
