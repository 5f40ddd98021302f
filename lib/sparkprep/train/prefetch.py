"""Batches made on a thread ahead of the consumer: decoding, shuffling and batching (pyarrow and
numpy release the GIL for most of it) overlap the training step that uses the previous batch."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_POLL_S = 0.1  # how often a producer blocked on a full queue looks whether the consumer left


def prefetched(items: Iterator[T], depth: int) -> Iterator[T]:
    """`items`, produced by a thread up to `depth` ahead; its errors are raised here, and the thread
    stops (and `items` is closed) when the consumer stops early.

    Args:
        items: what to produce; it runs on the thread.
        depth: how many items may wait for the consumer; 0 produces them here, on demand.
    """
    if depth <= 0:
        yield from items
        return
    ready: queue.Queue[tuple[bool, object]] = queue.Queue(depth)
    stop = threading.Event()

    def put(done: bool, value: object) -> bool:
        while not stop.is_set():
            try:
                ready.put((done, value), timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(False, item):
                    return
            put(True, None)
        except BaseException as err:  # handed to the consumer, which raises it
            put(True, err)

    thread = threading.Thread(target=produce, name="sparkprep-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            done, value = ready.get()
            if done:
                if value is not None:
                    raise value  # type: ignore[misc]
                return
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if close:
            close()  # a generator suspended on the thread: its reader closes here
