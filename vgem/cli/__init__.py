"""The ``vgem`` command line: the only part of vgem that knows typer, flags and exit codes.

``app`` is the typer application, ``main`` the ``vgem`` entry point
(``[project.scripts]``). Commands import what they need from the library
inside their bodies, so ``vgem --help`` stays instant.
"""

from __future__ import annotations

from vgem.cli.app import app, main

__all__ = ["app", "main"]
