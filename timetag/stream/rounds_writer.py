"""WriteRounds: rounds and heralds appended to a rounds output as the engine makes them.

Handles :class:`RoundsEvent` (appended to ``output``, anything with ``append(rounds, heralds)`` and
``flush()``, e.g. :class:`~timetag.roundsoutput.RoundsOutput` or :class:`~timetag.roundsfile.RoundsWriter`).
``durable="event"``: the output is flushed to disk after every event that wrote something (``timetag process``:
a run killed midway keeps every round up to the last chunk); ``durable="checkpoint"``: only on a
:class:`Checkpoint` (the live loop, which flushes on a wall-clock interval); ``durable="end"``: only at the end
(a Dask partition's scratch file, which a retry rewrites anyway).  ``with_heralds=False`` writes rounds
only.  Every event is forwarded.  ``flush()`` flushes the output but never closes it: how the run ended is the
driver's to say.
"""
from __future__ import annotations

from ..records import empty_rounds
from .events import Checkpoint, RoundsEvent
from .processor import Processor, Stage

__all__ = ["WriteRounds"]


class WriteRounds(Stage):
    def __init__(self, output, downstream: Processor | None = None, *, with_heralds: bool = True,
                 durable: str = "event"):
        if durable not in ("event", "checkpoint", "end"):
            raise ValueError(f"durable must be 'event', 'checkpoint' or 'end' (got {durable!r})")
        super().__init__(downstream)
        self.output = output
        self.with_heralds = with_heralds
        self.durable = durable

    def handle(self, event) -> None:
        if isinstance(event, RoundsEvent):
            rounds, heralds = event.rounds, event.heralds
            wrote_heralds = self.with_heralds and heralds is not None and len(heralds) > 0
            if len(rounds) or wrote_heralds:
                self.output.append(rounds if rounds is not None else empty_rounds(),
                                   heralds if self.with_heralds else None)
                if self.durable == "event":
                    self.output.flush()
        elif isinstance(event, Checkpoint):
            self.output.flush()
        self.emit(event)

    def flush(self) -> None:
        self.output.flush()
        super().flush()
