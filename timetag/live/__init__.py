"""Live mode: sources of tag chunks (devices, simulator, replayed or growing files), the live loop and its views.

The same per-lab pipelines as ``timetag process``, fed by a :class:`~timetag.live.sources.Source` instead of a file:

* :mod:`.sources` — the Source interface (iterable of :class:`Batch` with start/stop), in-memory chunks, pacing;
* :mod:`.swabian` — Swabian Time Tagger adapter (optional vendor package); :mod:`.fake_swabian` — its stand-in;
* :mod:`.simdevice` — the link simulator paced to the wall clock (both labs);
* :mod:`.replay` — replay of a recorded file, following a growing dump or SWMR HDF5 tag file;
* :mod:`.runner` — the live loop (rounds files flushed at least every second, status, lag, latency);
* :mod:`.status`, :mod:`.view`, :mod:`.jsonlines` — statistics, alarms, the rich view and headless lines.
"""
from __future__ import annotations

from .sources import Batch, ChunkSource, Source

__all__ = ["Batch", "ChunkSource", "Source", "LiveRunner", "LiveResult"]


def __getattr__(name):
    # The runner pulls in h5py and the engine: imported on first use only.
    if name in ("LiveRunner", "LiveResult"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(name)
