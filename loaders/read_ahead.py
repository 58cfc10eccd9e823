"""Run an iterator in a worker thread, a few items ahead of its consumer."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, exc: Exception):
        self.exc = exc


def read_ahead(items: Iterable[T], depth: int = 3, name: str = "read-ahead") -> Iterator[T]:
    """Yield `items`, produced by a worker thread up to `depth` items in advance.

    Why: the loader's reading and formatting (bytes operations that hold the GIL) then overlap
    with the COPY send (which waits on the socket without it), so the client keeps the server
    busy. The bounded queue keeps memory at `depth` items. An exception in the worker is
    re-raised here; if the consumer stops early, the worker stops too.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(_Failed(exc))

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while (item := q.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()
