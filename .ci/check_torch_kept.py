"""CI check: installing vgem over an installed torch/torchvision pair keeps that pair.

The README's CPU path installs torch and torchvision from PyTorch's CPU index,
then vgem; if vgem's requirements (or its dependencies') asked for another
torch or torchvision, pip would replace the CPU build with the default CUDA
build and its NVIDIA libraries (gigabytes). `pip install --dry-run --report`
says what pip would install over this environment; nothing of torch's family
may be in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

FORBIDDEN = ("torch", "torchvision", "triton")
FORBIDDEN_PREFIXES = ("nvidia-", "cuda-")


def main() -> int:
    target = sys.argv[1] if len(sys.argv) > 1 else ".[test,nlp,ray]"
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report",
             str(report), target],
            check=True,
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    names = sorted(item["metadata"]["name"].lower() for item in installs)
    pulled = [name for name in names if name in FORBIDDEN or name.startswith(FORBIDDEN_PREFIXES)]
    import torch
    import torchvision

    print(f"installed: torch {torch.__version__}, torchvision {torchvision.__version__}")
    print(f"pip would install for {target}: {', '.join(names) or 'nothing'}")
    if pulled:
        print(f"FAIL: installing {target} would replace or add {', '.join(pulled)}")
        return 1
    print("ok: the installed torch/torchvision pair stays, no NVIDIA package comes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
