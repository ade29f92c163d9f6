"""The one driver: every event of a source through a chain of processors, then the end of the stream.

``run_stream`` is the loop of every mode (``process``, live, Dask partitions, calibration).  It separates the
two ways a run can break, because they leave different things behind:

* the *source* raises (a bad record, an unreadable file, a device error): the chain's state is whole -- the
  failing chunk never reached it -- so the chain is flushed (every round still open is decided and written)
  and :class:`StreamBroke` is raised with the source's error as its cause;
* a *processor* raises (a full disk under a writer, a bug): the state of the chain is unknown, nothing is
  flushed, and the exception propagates unchanged.

``until``: checked after every event; when it returns true the loop stops early and the chain is flushed,
exactly as at the end of the source (the live runner's ``--duration`` and stop requests).
"""
from __future__ import annotations

from typing import Callable, Iterable

from .. import interrupts
from ..errors import StorageError, TimetagError
from .processor import Processor

__all__ = ["StreamBroke", "run_stream"]


class StreamBroke(TimetagError):
    """The source of a stream raised (its error is ``__cause__``); the chain was flushed.

    ``flush_error``: a storage error met while flushing the chain after the break (the rounds made before the
    break are then only as complete as the writer could make them)."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.flush_error: StorageError | None = None


def run_stream(source: Iterable, chain: Processor, *, until: Callable[[], bool] | None = None) -> bool:
    """Feed every event of ``source`` to ``chain``, then ``chain.flush()``.

    Returns True when the source was exhausted, False when ``until`` stopped the run first.
    """
    events = iter(source)
    exhausted = True
    while True:
        try:
            event = next(events)
        except StopIteration:
            break
        except TimetagError as exc:
            broke = StreamBroke(exc)
            broke.__cause__ = exc
            try:
                chain.flush()
            except StorageError as flush_exc:
                broke.flush_error = flush_exc
            raise broke from exc
        try:
            chain.handle(event)
        except BaseException:
            _close(events)  # the source's files (and a prefetching thread) are released now; the chain is not flushed
            raise
        if until is not None and until():
            exhausted = False
            _close(events)
            break
        try:
            interrupts.check()  # a Ctrl-C whose KeyboardInterrupt was swallowed elsewhere ends the run here
        except BaseException:
            _close(events)
            raise
    chain.flush()
    return exhausted


def _close(events) -> None:
    close = getattr(events, "close", None)
    if close is not None:  # a generator source releases its files now, not at garbage collection
        close()
