"""Holding back a library's log messages while vgem reports the outcome itself."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quieted(logger_name: str | None = None, level: int = logging.ERROR) -> Iterator[None]:
    """Raise ``logger_name``'s level (the root logger's for None) for the block.

    For messages that would mislead or bury vgem's own one-line report, such
    as a warning about a model built without weights that vgem fills next.
    """
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)
