"""SIGINT and SIGTERM end a run the same way whatever executes it.

Ctrl-C raises ``KeyboardInterrupt``; while a run is on, SIGTERM raises
:class:`Terminated` (a ``KeyboardInterrupt``) where the main thread is, so a
terminated run unwinds exactly like an interrupted one: the executor stops
its workers, the client writes what finished (results, report, batch
record), and the command exits 143 instead of 130. Libraries that install
their own SIGTERM handler when they start (Ray's ``ray.init`` installs one
that exits at once with status 15, writing nothing) are put back in line by
:func:`keep_terminate_handler` right after they start.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as on Ctrl-C."""


#: Set when SIGTERM arrives (a run stops at it as at Ctrl-C, and says so).
_terminated = threading.Event()


def _raise_terminated(signal_number: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the cleanup finish
    _terminated.set()
    raise Terminated


def was_terminated(error: BaseException | None = None) -> bool:
    """Whether the run was ended by SIGTERM (rather than Ctrl-C)."""
    return isinstance(error, Terminated) or _terminated.is_set()


@contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM unwinds it like Ctrl-C (from the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _terminated.clear()
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def keep_terminate_handler(previous: Any) -> None:
    """After a library replaced the SIGTERM handler, put back ``previous`` (what was
    installed before it started), so that SIGTERM still ends the run cleanly."""
    if threading.current_thread() is not threading.main_thread():
        return
    if previous is not None and signal.getsignal(signal.SIGTERM) is not previous:
        signal.signal(signal.SIGTERM, previous)


def current_terminate_handler() -> Any:
    """The SIGTERM handler now installed (to give back to :func:`keep_terminate_handler`)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGTERM)
