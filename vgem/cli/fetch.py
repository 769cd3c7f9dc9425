"""``vgem fetch``: prepare a machine to ground offline.

The logic is in :mod:`vgem.fetch`; this module reads options and prints.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from vgem.cli.console import in_flags, stderr, user_errors
from vgem.cli.options import VERBOSE

if TYPE_CHECKING:
    from rich.table import Table

    from vgem.fetch import Plan, Requirement

STATE_STYLES = {"present": "green", "missing": "bold red", "nothing to fetch": "dim"}


def fetch_command(
    backbone: Annotated[
        list[str] | None,
        typer.Option(
            "--backbone",
            "-b",
            metavar="NAME",
            help="Fetch this backbone's weights (repeatable): viclip-b16, clip-b16, "
            "openclip:ARCH@TAG…",
        ),
    ] = None,
    nlp: Annotated[
        bool,
        typer.Option(
            "--nlp", help="Fetch stanza's English models (used by the stanza and auto extractors)."
        ),
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Put stanza's models in DIR/stanza instead of $VGEM_CACHE/stanza; "
            "export VGEM_CACHE=DIR (or pass `vgem ground --cache-dir DIR`) so that "
            "`vgem ground` finds them.",
            metavar="DIR",
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Download nothing: list what is present and what is missing, without "
            "network; exit 2 when something is missing.",
        ),
    ] = False,
    verbose: Annotated[bool, VERBOSE] = False,
) -> None:
    """Download ahead of time what `vgem ground` needs, so it later runs without network.

    With neither --backbone nor --nlp it fetches what the defaults of `vgem ground`
    need: viclip-b16's weights and stanza's English models. Weights go to the
    Hugging Face cache (HF_HOME / HF_HUB_CACHE); stanza's models to
    $VGEM_CACHE/stanza, or stanza's own folder when VGEM_CACHE is unset. Nothing is
    downloaded while HF_HUB_OFFLINE is set.
    """
    with user_errors(verbose):
        from vgem import fetch
        from vgem.errors import WeightsError

        chosen_cache = None if cache_dir is None else cache_dir.expanduser().resolve()
        plan = fetch.make_plan(backbone or (), nlp, cache_dir=chosen_cache)
        if not check:
            _quiet_hub_logging(verbose)
            fetch.download(plan, verbose=verbose, report=_reporter(verbose))
        rows = fetch.check(plan)
        from rich.console import Console

        Console(soft_wrap=False).print(_table(plan, rows))
        _remind_to_export(plan, chosen_cache)
        missing = [row for row in rows if row.missing]
        if missing:
            what = "Run `vgem fetch` with the same options where there is network"
            if not check:
                what = "They could not be fetched (see the table)"
            raise WeightsError(f"{_files(missing)} missing. {what}.")


def _table(plan: Plan, rows: Sequence[Requirement]) -> Table:
    from rich.table import Table
    from rich.text import Text

    from vgem.fetch import hub_cache_dir

    stores = [f"Hugging Face cache: {hub_cache_dir()}"] if plan.backbones else []
    if plan.nlp:
        stores.append(f"stanza models: {plan.stanza_dir or 'stanza is not installed'}")
    table = Table(title="what vgem needs offline", caption="\n".join(stores))
    for column in ("item", "kind", "location", "status"):
        table.add_column(column)
    for row in rows:
        status = Text(row.state, style=STATE_STYLES[row.state])
        if row.note:
            status.append(f" ({in_flags(row.note, row.settings)})")
        table.add_row(Text(row.item), Text(row.kind), Text(row.location), status)
    return table


def _remind_to_export(plan: Plan, chosen_cache: Path | None) -> None:
    """--cache-dir only applies to this command; `vgem ground` must be told too."""
    exported = os.environ.get("VGEM_CACHE")
    if plan.nlp and chosen_cache is not None and str(chosen_cache) != exported:
        folder = shlex.quote(str(chosen_cache))
        stderr.print(
            f"note: `vgem ground` looks for stanza's models under $VGEM_CACHE: "
            f"export VGEM_CACHE={folder} (or pass --cache-dir {folder})",
            markup=False,
            soft_wrap=True,
        )


def _reporter(verbose: bool) -> Callable[[str], None]:
    """What is being fetched, at a terminal (or with -v); scripts get only the outcome."""
    if verbose or sys.stderr.isatty():
        return lambda line: stderr.print(line, markup=False)
    return lambda line: None


def _quiet_hub_logging(verbose: bool) -> None:
    """huggingface_hub logs each retry; one final line says it better (tracebacks: -v)."""
    if not verbose:
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.set_verbosity_error()


def _files(rows: Sequence[Requirement]) -> str:
    return f"{len(rows)} needed item{' is' if len(rows) == 1 else 's are'}"
