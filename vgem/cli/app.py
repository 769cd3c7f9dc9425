"""The ``vgem`` command: a thin shell over the library.

Each command lives in its own module and only converts options into library
calls and prints. Errors a user can cause (:class:`vgem.errors.VgemError`) end
with one line on stderr and a non-zero exit code; ``--verbose`` shows the
traceback. Heavy imports happen inside the commands so ``vgem --help`` is
instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from vgem import __version__
from vgem.cli.eval import eval_command
from vgem.cli.fetch import fetch_command
from vgem.cli.ground import ground
from vgem.cli.plugins import plugins_command

app = typer.Typer(
    name="vgem",
    help="Find where (and when) an action described in words happens in a video, "
    "with no training (VideoGEM).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vgem {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """vgem: training-free action grounding in video."""


app.command("ground")(ground)
app.command("eval")(eval_command)
app.command("plugins")(plugins_command)
app.command("fetch")(fetch_command)


def main() -> None:
    app()
