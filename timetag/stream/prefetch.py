"""Prefetch: read the next chunks on another thread while the chain works on this one.

Contract: yields the source's items in order, exactly once each; an exception of the source is raised here, at the
place of the stream where it happened (after every item before it), so the driver treats it as the source's own
error.  At most ``depth`` items are read ahead.  Closing the iterator early (the driver's ``until``, an error of
the chain, Ctrl-C) stops the reading thread before returning: no file stays in use behind the caller's back.

The readers decode with the GIL released (numpy copies, the Cython decoders), and so does the engine's kernel: on
two cores the reading of chunk k+1 overlaps the processing of chunk k.  The items must own their memory (every
timetag reader hands out fresh arrays per chunk).
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

from .. import interrupts

__all__ = ["prefetched"]

T = TypeVar("T")
_ITEM, _END, _ERROR = 0, 1, 2


def prefetched(source: Iterable[T], depth: int = 2) -> Iterator[T]:
    """``source``'s items, read up to ``depth`` ahead on a background thread."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in source:
                if not put((_ITEM, item)):
                    return
            put((_END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((_ERROR, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None and stop.is_set():
                close()

    def get():
        # in slices, Ctrl-C deferred inside: a KeyboardInterrupt raised in the queue's lock would leave it held
        while True:
            with interrupts.deferred():
                try:
                    return q.get(timeout=interrupts.SLICE_S)
                except queue.Empty:
                    pass

    worker = threading.Thread(target=read, name="timetag-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = get()
            if kind == _ITEM:
                yield value
            elif kind == _END:
                return
            else:
                raise value
    finally:
        stop.set()
        # the reader's puts time out and see `stop`: it ends without the queue being drained here
        with interrupts.deferred(raise_on_exit=False):
            while worker.is_alive():
                worker.join(timeout=0.05)
