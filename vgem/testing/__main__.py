"""``python -m vgem.testing BACKBONE [--weights PATH]``: the conformance kit without pytest.

Every check runs, the loader's included: the spec's own ``load`` is handed
pickles that would run code, and must refuse them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from vgem.testing import ConformanceError, check_adapter


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when the backbone conforms, 1 when it does not, 2 when it cannot be loaded."""
    from vgem.backbones import backbone_spec
    from vgem.errors import VgemError

    parser = argparse.ArgumentParser(
        prog="python -m vgem.testing", description="Check a backbone adapter against the contract."
    )
    parser.add_argument("backbone", help="a vgem.backbones name, e.g. hf-clip:FOLDER")
    parser.add_argument("--weights", help="a local checkpoint instead of the hub cache")
    options = parser.parse_args(argv)
    try:
        spec, variant = backbone_spec(options.backbone)
        adapter = spec.load(variant, options.weights)
        report = check_adapter(adapter, load_weights=lambda path: spec.load(variant, str(path)))
    except VgemError as error:
        print(f"error: {error}")
        return 2
    except ConformanceError as failure:
        print(failure)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
