"""Reference heatmaps from the official GEM package, for compare_gem_torch.py.

Run it in a throwaway environment that has the official package, never in
vgem's own (vgem must not depend on it):

    python -m venv /tmp/gemenv
    /tmp/gemenv/bin/pip install torch torchvision "open_clip_torch==2.23.0" gem-torch==1.0.1
    /tmp/gemenv/bin/python benchmarks/gem_torch_reference.py /tmp/gem_reference

It builds a random-weight ViT-B-16, saves its state dict and a random image,
and stores gem-torch's normalized heatmaps for a few prompts.
"""

import sys
from pathlib import Path

import numpy as np
import open_clip
import torch
from gem.gem_wrapper import GEMWrapper

PROMPTS = ["cut onion", "person", "dog on a sofa"]
DEPTH = 7  # self-self attention layers; gem-torch's gem_depth counts one more


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16", pretrained=None).eval()
    torch.save(model.state_dict(), out_dir / "vit_b16_random.pt")
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    wrapper = GEMWrapper(model, tokenizer, depth=DEPTH + 1).eval()
    image = torch.randn(1, 3, 448, 448, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        heatmaps = wrapper(image, PROMPTS, normalize=True)
    np.savez(
        out_dir / "reference.npz",
        image=image.numpy(),
        heatmaps=heatmaps.numpy(),
        prompts=np.array([f"a photo of a {p}." for p in PROMPTS]),
    )
    print(f"wrote {out_dir} with heatmaps {tuple(heatmaps.shape)}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gem_reference"))
