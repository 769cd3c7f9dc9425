"""A bounded read-ahead queue: decoding on a second thread while the model runs."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TypeVar

_T = TypeVar("_T")

_STOP_WAIT_SECONDS = 3.0


@dataclass
class _Finished:
    error: BaseException | None = None


def run_ahead(produce: Callable[[], Iterator[_T]], depth: int) -> Generator[_T, None, None]:
    """Run ``produce()`` on a thread, ``depth`` items ahead of the consumer.

    Decoding (ffmpeg, PIL) releases the GIL, so it overlaps with model work.
    The producer's iterator is created, consumed and closed on its own thread;
    closing the returned iterator tells it to stop, and it closes the decoder
    as soon as its current read returns. That read may wait for a frame far
    ahead (sparse requests), so the consumer waits only briefly and a late
    producer finishes on its own; either way ffmpeg exits.
    """
    items: queue.Queue[_T | _Finished] = queue.Queue(maxsize=depth)
    stop_requested = threading.Event()

    def offer(item: _T | _Finished) -> bool:
        while not stop_requested.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run_producer() -> None:
        try:
            produced = produce()
            try:
                for item in produced:
                    if not offer(item):
                        return
            finally:
                close = getattr(produced, "close", None)
                if close is not None:
                    close()
        except Exception as error:
            offer(_Finished(error))
            return
        offer(_Finished())

    def consume() -> Generator[_T, None, None]:
        producer = threading.Thread(target=run_producer, name="vgem-decode", daemon=True)
        producer.start()
        try:
            while True:
                item = items.get()
                if isinstance(item, _Finished):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            stop_requested.set()
            producer.join(timeout=_STOP_WAIT_SECONDS)

    return consume()
