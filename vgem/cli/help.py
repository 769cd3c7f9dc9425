"""Help that reads like a command line's, not like Python.

typer shows each value's Python type (``<str>``, ``<list[float]>``), marks
flags with ``<bool>`` and writes arguments as ``{video} {queries}...`` in
the usage line. vgem's commands use the command and group classes here,
which show the conventions of command-line tools instead: a metavar in
capitals (``TEXT``, ``FLOAT``, ``INTEGER``, ``PATH``, or the one an option
declares, such as ``SECONDS``), nothing after a flag, and arguments by their
metavar: ``Usage: vgem ground [OPTIONS] VIDEO QUERY...``.
"""

from __future__ import annotations

from typing import Any, get_args

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

#: The metavar of a value by its Python type, when an option declares none.
METAVARS: dict[Any, str] = {str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}


def _type_metavar(parameter: Any) -> str:
    descriptor = parameter.type_descriptor
    annotation = descriptor.annotation
    if descriptor.is_list:
        (annotation,) = get_args(annotation) or (str,)
    if descriptor.is_path:
        return "PATH"
    if descriptor.is_choice and descriptor.choices:
        return "[" + "|".join(str(choice) for choice in descriptor.choices) + "]"
    return METAVARS.get(annotation, "VALUE")


class ReadableOption(TyperOption):
    """An option whose help shows its metavar (a flag shows none)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return self.metavar if self.metavar is not None else _type_metavar(self)


class ReadableArgument(TyperArgument):
    """An argument shown by its metavar, in the usage line and in the help's table."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _shown_name(self) -> str:
        return self.metavar if self.metavar is not None else str(self.name).upper()

    def _rich_display_name(self) -> str:
        return self._shown_name() + ("..." if self.nargs != 1 else "")

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        return name if self.required else f"[{name}]"


def _readable(parameters: list[Any]) -> None:
    for parameter in parameters:
        if type(parameter) is TyperOption:
            parameter.__class__ = ReadableOption
        elif type(parameter) is TyperArgument:
            parameter.__class__ = ReadableArgument


class _Readable:
    """What a command and the group share: their parameters and ``--help`` made readable."""

    params: list[Any]

    def __init__(self, *arguments: Any, **options: Any) -> None:
        super().__init__(*arguments, **options)
        _readable(self.params)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            _readable([option])
        return option


class ReadableCommand(_Readable, TyperCommand):
    """A command whose help and usage line read as a command line's (see the module)."""


class ReadableGroup(_Readable, TyperGroup):
    """The ``vgem`` group itself, with the same help (its ``--help``, ``--version``)."""
