"""Stream processors: one protocol, one driver, every mode a chain.

A *processor* takes events one at a time (``handle(event)``) and is told once that the stream has ended
(``flush()``); it passes what it makes, and every event it does not consume, to its ``downstream`` processor.
Chains are built by nesting, innermost (the sink) first::

    chain = CountChannels(ReportProgress(on_progress, LabEngine(lab, WriteRounds(output))))
    run_stream(iter_stream(paths), chain)

Events: :class:`~timetag.chunk.TagChunk` (tags and lost-data events, from a reader or a device),
:class:`RoundsEvent` (what the engine made of one chunk), :class:`Checkpoint` (make what you hold durable now:
the live loop's periodic flush to disk).  :func:`run_stream` is the one loop: ``timetag process``, the live
runner, each Dask partition and calibration are chain assemblies around it (see ``docs/architecture.md``).
"""
from __future__ import annotations

from .channels import CountChannels
from .counts import CountHistogram
from .driver import StreamBroke, run_stream
from .engine import LabEngine
from .events import Checkpoint, RoundsEvent
from .ownership import KeepOwned
from .processor import Collect, Processor, Stage, Tee
from .progress import ReportProgress
from .raw_tags import RecordRawTags
from .rounds_writer import WriteRounds

__all__ = [
    "Checkpoint", "Collect", "CountChannels", "CountHistogram", "KeepOwned", "LabEngine", "Processor",
    "RecordRawTags", "ReportProgress", "RoundsEvent", "Stage", "StreamBroke", "Tee", "WriteRounds", "run_stream",
]
