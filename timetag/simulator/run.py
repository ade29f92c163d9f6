"""``simulate()``: run the generator to files (raw tags of both labs, setup.toml, truth.h5)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import interrupts
from ..chunk import ERROR, MISSED, OVERFLOW_BEGIN, OVERFLOW_END
from ..custody import AtomicOutputs
from ..errors import OutputError, SetupError
from ..formats import writer_for
from ..formats.dump import TYPE_ERROR, TYPE_MISSED, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END
from ..formats.dump import encode_records as encode_dump
from ..provenance import provenance
from ..setupfile import BsmDetector, HeraldConfig, HistogramConfig, LabSetup, RoundConfig, Setup
from .analytic import expected_stats
from .generate import LinkSimulator, single_worker
from .params import (ALICE_BSM, ALICE_READY, ALICE_SETTINGS, ALICE_SYNC, BOB_READY, BOB_SETTINGS, BOB_SPD,
                     SimParams)
from .truth import TRUTH_DTYPE, write_truth

EXT = {"dump": ".dump", "ptu": ".ptu", "h5": ".h5", "text": ".txt"}


@dataclass
class SimResult:
    out_dir: Path
    alice: Path
    bob: Path
    setup: Path
    truth: Path
    stats: dict = field(default_factory=dict)


def build_setup(p: SimParams, thresholds: tuple[int, int] | None = None) -> Setup:
    """The setup file a user would write for these files: channel map, delays, windows, thresholds."""
    if thresholds is None:
        e = expected_stats(p)
        thresholds = (e["threshold_alice"], e["threshold_bob"])
    thr_a, thr_b = thresholds
    ws, we = (int(x) for x in p.acceptance_window_ps)
    T = int(p.attempt_period_ps)
    if p.sync_mode == "every":
        herald = HeraldConfig("previous", ws, we, we - ws, tuple(p.herald_patterns))
        arrival = (0, _ceil(we + 100_000, 500))
    else:
        herald = HeraldConfig("next", ws - T, we - T, we - ws, tuple(p.herald_patterns))
        arrival = (_floor(ws - T - 100_000, 500), _ceil(we - T + 100_000, 500))
    # the ready tag jitters around its latency; the tolerance covers 6 sigma plus the tagger's ps rounding
    tol = int(max(6 * p.ready_jitter_ps, 1000) + 1000)
    s0 = int(p.setting_delay_ps - 8 * p.setting_jitter_ps)
    s1 = int(p.setting_delay_ps + p.setting_double_gap_ps + 8 * p.setting_jitter_ps) + 1
    fw = tuple(int(x) for x in p.fluorescence_window_ps)
    alice = LabSetup(
        name="alice", role="alice", ready_channel=ALICE_READY, sync_channel=ALICE_SYNC,
        setting_channels=ALICE_SETTINGS, fluorescence_channels=ALICE_BSM,
        bsm=tuple(BsmDetector(c, a, pol) for c, a, pol in zip(ALICE_BSM, "aabb", "HVHV")),
        delays_ps={c: int(p.delays_alice[c - 1]) for c in range(1, 11)},
        herald=herald,
        round=RoundConfig("both", int(p.ready_latency_ps), tol, (max(s0, 0), s1), fw, int(thr_a)),
        histograms=HistogramConfig(500, arrival, 256),
    )
    bob = LabSetup(
        name="bob", role="bob", ready_channel=BOB_READY, sync_channel=None, setting_channels=BOB_SETTINGS,
        fluorescence_channels=(BOB_SPD,), delays_ps={c: int(p.delays_bob[c - 1]) for c in range(1, 5)},
        round=RoundConfig("ready", int(p.link_delay_ps), tol, (max(s0, 0), s1), fw, int(thr_b)),
    )
    extra = {"simulation": {"preset": p.name, "sync_mode": p.sync_mode, "speedup": float(p.speedup),
                            "note": "written by timetag simulate; [labs.*] is what processing needs"}}
    return Setup(labs={"alice": alice, "bob": bob}, name=f"{p.name} simulation", extra=extra)


def _ceil(x, m):
    return -(-int(x) // m) * m


def _floor(x, m):
    return int(x) // m * m


def output_names(fmt: str = "dump") -> tuple[str, str, str, str]:
    """The files ``simulate`` writes into its folder: Alice's and Bob's raw tags, the setup, the truth."""
    if fmt not in EXT:
        raise SetupError(f"unknown output format {fmt!r} (simulate writes: {', '.join(EXT)})", key="format")
    return f"alice{EXT[fmt]}", f"bob{EXT[fmt]}", "setup.toml", "truth.h5"


def check_outputs(out_dir, fmt: str = "dump", *, force: bool = False) -> list[Path]:
    """The four targets in ``out_dir``, refused up front (one line naming every file that exists, unless
    ``force``; ``out_dir`` a file) before any simulation is run."""
    return check_targets(out_dir, output_names(fmt), force=force)


def check_targets(out_dir, names, *, force: bool = False) -> list[Path]:
    """``out_dir / name`` for each of ``names``, checked as :func:`check_outputs` does (also for
    ``simulate --rounds-only``)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file, not a folder; --out takes the folder to write the simulation into")
    targets = [out / n for n in names]
    for t in targets:
        if t.is_dir():
            raise OutputError(f"{t}: is a folder; simulate writes a file of that name into {out}")
    existing = [t.name for t in targets if t.exists()]
    if existing and not force:
        raise OutputError(f"{out}: {', '.join(existing)} {'exists' if len(existing) == 1 else 'exist'} already; "
                          "pass --force to replace (the old files stay until the new ones are complete), or "
                          "choose another --out")
    return targets


def simulate(params: SimParams, n_rounds: int, seed: int, out_dir, fmt: str = "dump", speedup: float | None = None,
             progress=None, *, force: bool = False) -> SimResult:
    """Simulate ``n_rounds`` heralded rounds and write both labs' raw files, ``setup.toml`` and ``truth.h5``.

    ``speedup`` (if given) replaces ``params.speedup``.  ``progress(rounds_done, n_rounds)`` is called
    after every generation block.

    The four files are written together through custody (:class:`~timetag.custody.AtomicOutputs`): each as
    ``<name>.partial``, all renamed when the simulation is complete; any failure (or Ctrl-C) removes them all.
    Existing files are refused (naming them) unless ``force``, and stay untouched until the new ones are complete.
    """
    if n_rounds < 1:
        raise SetupError(f"--rounds must be >= 1 (got {n_rounds})", key="rounds")
    output_names(fmt)  # an unknown format is refused here
    if speedup is not None:
        params = params.with_overrides(speedup=float(speedup))
    out = Path(out_dir)
    targets = check_outputs(out, fmt, force=force)
    exp = expected_stats(params)
    # the dump path writes each chunk at once, so the generator may hand out views of its reused buffers
    sim = LinkSimulator(params, seed, n_rounds=n_rounds, reuse_buffers=fmt == "dump")
    # the run's name travels with its setup (and through calibrate): rounds processed with a recalibrated
    # setup still pair with the other lab's
    setup = replace(build_setup(params, sim.thresholds),
                    run=f"simulate {params.name} seed {seed} rounds {n_rounds} speedup {params.speedup:g}")
    pa, pb, setup_path, truth_path = targets

    def meta(lab):
        if fmt == "h5":
            return {"lab": lab}
        if fmt == "ptu":  # PTU has no lost-data records: overflow intervals survive only as gaps (and in truth.h5)
            return {"drop_lost": True, "comment": f"timetag simulate: {params.name}, lab {lab}, seed {seed}"}
        return {}

    with AtomicOutputs(targets, force=force) as outs:
        out_a, out_b, out_setup, out_truth = (outs[i].partial for i in range(4))
        out_setup.write_text(setup.dumps())
        t_start = time.perf_counter()
        rows = []
        n_a = n_b = 0
        # the partial files' extension is '.partial': the writers get the format explicitly
        if fmt == "dump":
            wa, wb = _DumpOut(out_a), _DumpOut(out_b)
        else:
            wa = writer_for(out_a, fmt, **meta("alice"))
            wb = writer_for(out_b, fmt, **meta("bob"))
        try:
            for ca, cb, r in sim.stream():
                interrupts.check()  # a Ctrl-C swallowed while numba compiled still stops the run here
                wa.write(ca)
                wb.write(cb)
                n_a += len(ca)
                n_b += len(cb)
                rows.extend(r)
                if progress is not None:
                    progress(min(sim.rounds, n_rounds), n_rounds)
        finally:
            wa.close()
            wb.close()
        elapsed = time.perf_counter() - t_start
        truth = np.array(rows, dtype=TRUTH_DTYPE) if rows else np.zeros(0, TRUTH_DTYPE)
        stats = {
            "rounds": int(truth.size), "alice_tags": n_a, "bob_tags": n_b, "seconds": elapsed,
            "tags_per_second": (n_a + n_b) / elapsed if elapsed > 0 else float("inf"),
            "simulated_seconds": (sim.t_block - sim.t0) * 1e-12, "expected": _plain(exp),
            "alice_sources": sim.outA.sources.tolist(), "bob_sources": sim.outB.sources.tolist(),
            "overflow_intervals_alice": len(sim.outA.intervals), "overflow_intervals_bob": len(sim.outB.intervals),
        }
        attrs = {
            "params": params.to_dict(), "seed": int(seed), "expected_S": exp["expected_S"],
            "expected_Q": exp["expected_Q"],
            "expected": _plain(exp), "bob_clock_offset_ps": int(params.bob_clock_offset_ps),
            "bob_clock_drift_ppm": float(params.bob_clock_drift_ppm), "sync_mode": params.sync_mode,
            "thresholds": list(sim.thresholds), "format": fmt,
            "provenance": provenance(setup=setup, command="simulate", preset=params.name, seed=int(seed),
                                     n_rounds=int(n_rounds)),
            "overflow_intervals_alice_raw": [list(iv) for iv in sim.outA.intervals],
            "overflow_intervals_bob_raw": [list(iv) for iv in sim.outB.intervals],
            "stats": {k: v for k, v in stats.items() if k != "expected"},
        }
        write_truth(out_truth, truth, sim.heralds_all_array(), attrs)
    return SimResult(out, pa, pb, setup_path, truth_path, stats)


class _DumpOut:
    """Dump records encoded in one pass into a reused buffer, one ``write`` per chunk.

    Byte-identical to :class:`timetag.formats.dump.DumpWriter` (same record layout and lost-event order);
    the generic writer allocates fresh record arrays per chunk, which dominates at simulator rates.  The
    ``write`` system call of a chunk runs on a writer thread while the next chunk is generated: two buffers
    alternate, a buffer is reused only once its write has returned, and a write error is raised (as the
    OSError it is) by the next ``write`` or by ``close``.
    """

    def __init__(self, path):
        self._fh = open(path, "xb")  # the custody partial of the target (AtomicOutputs in simulate)
        self._bufs = [np.empty((0, 2), np.uint64), np.empty((0, 2), np.uint64)]
        self._pending = [None, None]
        self._i = 0
        self._written = self._kicked = 0  # bytes written; bytes whose write-back to disk has been started

    def write(self, chunk) -> None:
        i = self._i
        self._i = 1 - i
        self._wait(i)
        n = len(chunk) + chunk.lost.size
        if self._bufs[i].shape[0] < n:
            self._bufs[i] = np.empty((int(n * 1.25) + 1024, 2), np.uint64)
        buf = self._bufs[i]
        lost = chunk.lost
        k = encode_dump(chunk.time, chunk.channel, lost["time"].copy(), _KIND_TO_TYPE[lost["kind"]],
                        lost["channel"].copy(), lost["count"].copy(), buf)
        self._pending[i] = single_worker("timetag-sim-write").submit(self._write, memoryview(buf[:k]))

    def _write(self, data) -> None:
        self._fh.write(data)
        self._written += data.nbytes
        if _start_writeback is not None and self._written - self._kicked >= _WRITEBACK_BYTES:
            self._fh.flush()
            _start_writeback(self._fh.fileno(), self._kicked, self._written - self._kicked)
            self._kicked = self._written

    def _wait(self, i) -> None:
        f, self._pending[i] = self._pending[i], None
        if f is not None:
            f.result()

    def close(self) -> None:
        try:
            # the older write first: the writer thread runs them in submission order
            self._wait(self._i)
            self._wait(1 - self._i)
        finally:
            for f in self._pending:
                if f is not None:
                    f.exception()  # let a write still in flight return before its file is closed
            self._fh.close()


# The files are synced to disk when complete (custody).  Left to the kernel, the write-back of a long run
# starts late (the dirty-page threshold is a share of the RAM) and the final fsync waits for gigabytes; asking
# for the write-back of every WRITEBACK_BYTES as they are written (Linux sync_file_range, which does not wait)
# leaves the final fsync little to do.  Elsewhere the final fsync does it all.
_WRITEBACK_BYTES = 64 << 20


def _writeback_starter():
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    write = 2  # SYNC_FILE_RANGE_WRITE: start the write-back of dirty pages in the range, do not wait

    def start(fd: int, offset: int, nbytes: int) -> None:
        fn(fd, offset, nbytes, write)  # advisory: a failure only leaves more for the final fsync

    return start


_start_writeback = _writeback_starter()

_KIND_TO_TYPE = np.zeros(256, np.uint8)
_KIND_TO_TYPE[[ERROR, OVERFLOW_BEGIN, OVERFLOW_END, MISSED]] = [TYPE_ERROR, TYPE_OVERFLOW_BEGIN, TYPE_OVERFLOW_END,
                                                                 TYPE_MISSED]


def _plain(d):
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (tuple, list)):
        return [_plain(v) for v in d]
    if isinstance(d, (np.floating, np.integer)):
        return d.item()
    return d
