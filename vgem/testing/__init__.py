"""A conformance kit for backbone adapters: run it in a plugin's own tests.

GEM runs a backbone block by block through the views an adapter hands over
(../ARCHITECTURE.md, "The backbone contract"). A wrong view rarely crashes: it
gives plausible-looking heatmaps that are simply wrong. Each check here turns
one such silent mistake into an ``AssertionError`` (:class:`ConformanceError`)
whose message names the problem and where to look::

    from vgem.testing import check_adapter

    def test_my_backbone_conforms():
        adapter = load_my_backbone(...)
        check_adapter(adapter, reference_text=lambda texts: my_model.encode_text(texts))

Every ``check_*`` function can also be called alone, and ``python -m
vgem.testing BACKBONE`` (vgem/testing/__main__.py) runs the whole kit on an
installed backbone without pytest, its loader's refusal of code included.
The checks run on random pixels, so tiny random-weight models are enough;
they need no GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

__all__ = [
    "CHECKS",
    "DEFAULT_PROMPTS",
    "DEFAULT_TOLERANCE",
    "CheckOutcome",
    "ConformanceError",
    "ConformanceReport",
    "check_adapter",
    "check_final_norm",
    "check_loader_refuses_code",
    "check_moves_with_module",
    "check_one_pass_serves_many_prompts",
    "check_original_path",
    "check_shapes",
    "check_text_encoder",
    "check_token_layout",
    "check_weights_only",
    "sample_clip",
]

from vgem.errors import first_line
from vgem.testing.common import (
    DEFAULT_PROMPTS,
    DEFAULT_TOLERANCE,
    CheckOutcome,
    ClipReference,
    ConformanceError,
    ConformanceReport,
    TextReference,
    sample_clip,
)
from vgem.testing.layout_check import check_token_layout
from vgem.testing.model_checks import (
    check_final_norm,
    check_original_path,
    check_shapes,
    check_text_encoder,
)
from vgem.testing.runtime_checks import (
    check_loader_refuses_code,
    check_moves_with_module,
    check_one_pass_serves_many_prompts,
    check_weights_only,
)

if TYPE_CHECKING:
    from vgem.backbones.base import BackboneAdapter
    from vgem.testing.common import CheckStatus

CHECKS: tuple[str, ...] = (
    "shapes",
    "final-norm",
    "original-path",
    "text",
    "token-layout",
    "moves-with-module",
    "weights-only",
    "loader",
    "one-pass",
)


def check_adapter(
    adapter: BackboneAdapter,
    *,
    reference_clip: ClipReference | None = None,
    reference_text: TextReference | None = None,
    load_weights: Callable[[Path], Any] | None = None,
    prompts: Sequence[str] = DEFAULT_PROMPTS,
    tolerance: float = DEFAULT_TOLERANCE,
    skip: Sequence[str] = (),
) -> ConformanceReport:
    """Run every check; raise one :class:`ConformanceError` listing all failures.

    ``reference_clip``/``reference_text``: the model's own embeddings (see
    :func:`check_original_path`, :func:`check_text_encoder`). ``load_weights``:
    the adapter's loader for :func:`check_loader_refuses_code` (skipped
    without it). ``skip``: names from :data:`CHECKS`. Returns the report when
    everything passes.
    """
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        raise ValueError(f"unknown checks {unknown}; known: {', '.join(CHECKS)}")
    runs: dict[str, Callable[[], str]] = {
        "shapes": lambda: check_shapes(adapter),
        "final-norm": lambda: check_final_norm(adapter),
        "original-path": lambda: check_original_path(
            adapter, reference_clip=reference_clip, tolerance=tolerance
        ),
        "text": lambda: check_text_encoder(
            adapter, reference_text=reference_text, prompts=prompts, tolerance=tolerance
        ),
        "token-layout": lambda: check_token_layout(adapter),
        "moves-with-module": lambda: check_moves_with_module(adapter),
        "weights-only": lambda: check_weights_only(adapter),
        "loader": (
            (lambda: check_loader_refuses_code(load_weights))
            if load_weights is not None
            else (lambda: "skipped: pass load_weights= to check the loader")
        ),
        "one-pass": lambda: check_one_pass_serves_many_prompts(
            adapter, prompts=prompts, tolerance=tolerance
        ),
    }
    report = ConformanceReport(adapter=getattr(adapter, "name", type(adapter).__name__))
    problems: list[str] = []
    for name in CHECKS:
        if name in skip or (problems and report.outcomes[0].status == "failed"):
            report.outcomes.append(CheckOutcome(name, "skipped"))
            continue
        try:
            detail = runs[name]()
        except ConformanceError as failure:
            problems.extend(f"{name}: {problem}" for problem in failure.problems)
            report.outcomes.append(CheckOutcome(name, "failed", "; ".join(failure.problems)))
        except Exception as error:  # a crash inside an adapter method is a finding too
            problem = f"{name}: crashed with {type(error).__name__}: {first_line(error)}"
            problems.append(problem)
            report.outcomes.append(CheckOutcome(name, "failed", problem))
        else:
            status: CheckStatus = "skipped" if detail.startswith("skipped") else "passed"
            report.outcomes.append(CheckOutcome(name, status, detail))
    if problems:
        raise ConformanceError(problems, adapter=report.adapter)
    return report
