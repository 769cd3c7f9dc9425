"""Ground two queries in the sample video with the Python API and print the points.

    python examples/ground_sample.py                       # ViCLIP-B/16 from the hub cache
    python examples/ground_sample.py --backbone clip-b16   # or any backbone name
    python examples/ground_sample.py --weights PATH        # a local checkpoint

The sample is ffmpeg's moving test pattern, not a cooking video: it shows
the API, not the method's accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vgem import Grounder

SAMPLE = Path(__file__).with_name("sample.mp4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="viclip-b16")
    parser.add_argument("--weights")
    arguments = parser.parse_args()

    grounder = Grounder(arguments.backbone, arguments.weights)
    result = grounder.ground(SAMPLE, ["move the ball", "open_box"], fps=1)
    for query in result.queries:
        print(f"{query.query!r}: prompts {query.prompts}")
        for entry in query.times:
            x, y = entry.point
            where = f"({x:6.1f}, {y:6.1f})"
            print(f"  t={entry.time:4.1f}s frame {entry.frame:3d}: {where} score {entry.score:.3f}")


if __name__ == "__main__":
    main()
