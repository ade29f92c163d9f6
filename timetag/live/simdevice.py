"""The simulated device: the link simulator's time slices released at wall-clock pace (both labs in one source).

Slice ``i`` covers device time ``[i * slice_ps, (i + 1) * slice_ps)`` and is released when the wall clock reaches
the slice's end divided by ``speed`` — like a tagger whose buffer is polled once per slice.  ``speed=None`` runs
unpaced (as fast as the live loop consumes), which is how tests and benchmarks drive it.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from .sources import Batch, Pacer, Source


class SimDevice(Source):
    """``stream``: an iterable of ``(alice_chunk, bob_chunk, truth_rows)`` per time slice (the simulator's
    ``LinkSimulator.stream(slice_ps)``); built from ``preset`` / ``seed`` / ``sim_params`` when not given."""

    def __init__(self, stream: Iterable | None = None, *, slice_ps: int = 50_000_000_000, speed: float | None = 1.0,
                 preset: str = "lmu2022", seed: int = 1, sim_params: dict | None = None,
                 labs: tuple[str, str] = ("alice", "bob"), duration_device_s: float | None = None):
        super().__init__()
        if slice_ps <= 0:
            raise ValueError(f"slice_ps must be > 0 (got {slice_ps})")
        self.slice_ps = int(slice_ps)
        self.speed = speed
        self.labs = tuple(labs)
        self.duration_device_s = duration_device_s
        self._stream = stream
        self._preset, self._seed, self._sim_params = preset, seed, dict(sim_params or {})
        self.truth_rows = 0
        self.description = f"simulated device ({preset}, speed {'unpaced' if speed is None else f'x{speed:g}'})"

    def simulator(self):
        """The :class:`~timetag.simulator.LinkSimulator` behind this device (built on first use)."""
        if getattr(self, "_sim", None) is None:
            try:
                from ..simulator import LinkSimulator, load_preset
            except ImportError as exc:
                from ..errors import TimetagError

                raise TimetagError(f"the simulator is not available in this build ({exc})") from None
            params = load_preset(self._preset)
            if self._sim_params:
                params = params.with_overrides(**self._sim_params)
            self._sim = LinkSimulator(params, seed=self._seed)
        return self._sim

    def matching_setup(self):
        """The setup that fits the simulated link (channel map, windows, thresholds), as ``timetag simulate``
        writes it."""
        from ..simulator import build_setup

        sim = self.simulator()
        return build_setup(sim.p, sim.thresholds)

    def _make_stream(self):
        return self.simulator().stream(self.slice_ps)

    def _batches(self) -> Iterator[Batch]:
        stream = self._stream if self._stream is not None else self._make_stream()
        pacer = Pacer(self.speed)
        pacer.due(0)  # anchor: device time 0 = now
        for i, item in enumerate(stream):
            alice, bob = item[0], item[1]
            if len(item) > 2 and item[2] is not None:
                try:
                    self.truth_rows += len(item[2])
                except TypeError:
                    pass
            t_end = (i + 1) * self.slice_ps
            if not self._sleep_until(pacer.due(t_end)):
                return
            yield Batch({self.labs[0]: alice, self.labs[1]: bob}, device_time_ps=t_end)
            if self.duration_device_s is not None and t_end * 1e-12 >= self.duration_device_s:
                return

