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

from vgem.cli.eval import eval_command
from vgem.cli.fetch import fetch_command
from vgem.cli.ground import ground
from vgem.cli.help import ReadableCommand, ReadableGroup
from vgem.cli.plugins import plugins_command
from vgem.version import __version__

app = typer.Typer(
    name="vgem",
    help="Find where (and when) an action described in words happens in a video, "
    "with no training (VideoGEM).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    cls=ReadableGroup,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vgem {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version.", metavar=""
        ),
    ] = False,
) -> None:
    """vgem: training-free action grounding in video."""


app.command("ground", cls=ReadableCommand)(ground)
app.command("eval", cls=ReadableCommand)(eval_command)
app.command("plugins", cls=ReadableCommand)(plugins_command)
app.command("fetch", cls=ReadableCommand)(fetch_command)


def main() -> None:
    """The ``vgem`` command. A usage error (an unknown option, a value of the wrong type)
    is one line, like every other error, with where to find the command's help."""
    import sys

    from vgem.cli.console import print_error

    try:
        code = app(standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        print_error("interrupted", label="")
        sys.exit(130)
    except Exception as error:
        if not _is_usage_error(error):
            raise
        if type(error).__name__ == "NoArgsIsHelpError":
            error.show()  # type: ignore[attr-defined]
        else:
            context = getattr(error, "ctx", None)
            command = getattr(context, "command_path", None) or "vgem"
            where = f" (see `{command} --help`)" if _is_usage_error(error, strictly=True) else ""
            print_error(f"{error.format_message()}{where}")  # type: ignore[attr-defined]
        sys.exit(error.exit_code)  # type: ignore[attr-defined]
    sys.exit(code if isinstance(code, int) else 0)


def _is_usage_error(error: BaseException, *, strictly: bool = False) -> bool:
    """A click (or typer's own click) exception: a bad command line, told by the parser.

    ``strictly``: a usage error proper (the parser's, with a command to show help for).
    """
    names = {cls.__name__ for cls in type(error).__mro__}
    return ("UsageError" if strictly else "ClickException") in names and isinstance(
        getattr(error, "exit_code", None), int
    )
