"""Errors a user can cause and fix.

Every exception in this family carries a message written for the person who
caused it: the CLI prints it as one line and exits non-zero, without a
traceback unless asked to be verbose. Anything else that escapes is a bug in vgem.

The library speaks in setting names, never in flags: a message writes a
setting's name in backquotes (`` `depth` must be at least 1``) and lists it
in ``settings``; the CLI alone rewrites those marked names as the flags that
set them (the ``depth`` flag).
"""

from __future__ import annotations

from collections.abc import Sequence


class VgemError(Exception):
    """Base class: the message is shown to the user as-is.

    ``settings``: the setting names the message mentions (each written in
    backquotes in the message), so that a front end can show them in its own
    words (the CLI as flags).
    """

    exit_code = 2

    def __init__(self, message: str = "", *, settings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.settings: tuple[str, ...] = tuple(settings)


class InputError(VgemError):
    """A video, frame folder, query or time the user passed cannot be used."""


class SettingsError(VgemError):
    """A setting, or a combination of settings, that makes no sense."""


class WeightsError(VgemError):
    """Weights are missing, unreachable offline, corrupt, unsafe or do not fit."""


class PluginError(VgemError):
    """A plugin name is unknown, the plugin failed to load, or it does not fit its group."""


class DatasetError(VgemError):
    """An annotation file or manifest cannot be read."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's text (or its type): for one-line messages."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def os_error_text(error: OSError) -> str:
    """What went wrong in an OSError, without Python's ``[Errno N]`` prefix."""
    return error.strerror or str(error)
