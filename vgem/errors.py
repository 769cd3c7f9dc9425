"""Errors a user can cause and fix.

Every exception in this family carries a message written for the person at the
terminal: the CLI prints it as one line and exits non-zero, without a
traceback unless ``--verbose``. Anything else that escapes is a bug in vgem.
"""

from __future__ import annotations


class VgemError(Exception):
    """Base class: the message is shown to the user as-is."""

    exit_code = 2


class InputError(VgemError):
    """A video, frame folder, query or time the user passed cannot be used."""


class SettingsError(VgemError):
    """An option value, or a combination of options, that makes no sense."""


class WeightsError(VgemError):
    """Weights are missing, unreachable offline, corrupt, unsafe or do not fit."""


class PluginError(VgemError):
    """A plugin name is unknown or the plugin failed to load."""


class DatasetError(VgemError):
    """An annotation file or manifest cannot be read."""
