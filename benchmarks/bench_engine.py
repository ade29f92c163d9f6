"""Engine benchmarks: herald + round stages and `timetag process` end to end.

Headline (what users process): the paper's simulated link, ``simulate(load_preset("lmu2022"), 3342, ...)``
(~130 M tags of both labs; 300 rounds, ~13 M tags, in ``--quick``), both labs' tags held in memory and processed
chunk by chunk (the reader's chunks) with :class:`timetag.engine.LabPipeline`, against a numpy copy pass and a
numpy sum pass over the same arrays, timed interleaved (engine, copy, sum, engine, ...), best and median;
and `timetag process` on the simulated Alice dump against ``cat FILE > /dev/null`` of the same file.

Extra rows (labelled ``synthetic_``), on a dense synthetic stream (~1 tag per 100 ps, every channel in play):
* engine time / time of a numpy memory pass over the same arrays (goal: within 5x);
* speed-up of the streaming Cython engine over the vectorised numpy implementation of
  the same semantics (benchmarks/numpy_engine.py; its output is checked equal);
* end-to-end throughput of `timetag process` on a generated dump file, and its peak RSS
  (a subprocess; RUSAGE_CHILDREN), which must not grow with the file size.
"""
from __future__ import annotations

import importlib.util
import os
import json
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from timetag.chunk import DEFAULT_CHUNK_SIZE, TagChunk  # noqa: E402
from timetag.engine import LabPipeline  # noqa: E402
from timetag.setupfile import load_setup, setup_from_dict  # noqa: E402

sys.path.insert(0, str(HERE))
import _realistic as R  # noqa: E402  (shared with bench_formats: one simulation per run)

# channel: sync 1, BSM 2..5 (also fluorescence), ready 6, settings 7..10, 11 unused
PROBS = np.array([0.30, 0.09, 0.09, 0.09, 0.09, 0.002, 0.002, 0.002, 0.002, 0.002, 0.32])


def _numpy_engine():
    spec = importlib.util.spec_from_file_location("numpy_engine", HERE / "numpy_engine.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def lab_dict(trigger="herald"):
    return {"role": "alice", "sync_channel": 1, "ready_channel": 6, "setting_channels": [7, 8, 9, 10],
            "fluorescence_channels": [2, 3, 4, 5],
            "delays_ps": {"1": 0, "2": 120, "3": 80, "4": 40, "5": 0, "6": 30, "7": 10, "8": 0, "9": 0, "10": 0},
            "bsm": [{"channel": 2, "arm": "a", "pol": "H"}, {"channel": 3, "arm": "a", "pol": "V"},
                    {"channel": 4, "arm": "b", "pol": "H"}, {"channel": 5, "arm": "b", "pol": "V"}],
            "herald": {"sync_reference": "previous", "window_start_ps": 50, "window_stop_ps": 400,
                       "coincidence_ps": 300, "patterns": ["psi+"]},
            "round": {"trigger": trigger, "ready_delay_ps": 100, "ready_tolerance_ps": 50,
                      "setting_window_ps": [0, 2000], "fluorescence_window_ps": [500, 5000], "threshold": 10},
            "histograms": {"arrival_bin_ps": 10, "arrival_range_ps": [0, 1000]}}


def lab(trigger="herald"):
    return setup_from_dict({"labs": {"alice": lab_dict(trigger)}}).lab("alice")


def dense_stream(n: int, seed: int = 0, t0: int = 0):
    """~1 tag per 100 ps, a third of them syncs; every channel of the lab in play."""
    rng = np.random.default_rng(seed)
    time = t0 + np.cumsum(rng.integers(0, 200, n, dtype=np.int64))
    channel = (rng.choice(PROBS.size, size=n, p=PROBS / PROBS.sum()) + 1).astype(np.int32)
    return time, channel


def _best(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run_engine(time_, channel, lab_, chunk=DEFAULT_CHUNK_SIZE, warm=0, keep=True):
    """Rounds and heralds of the whole stream, and the seconds spent after the first ``warm`` tags
    (steady state: a fresh pipeline first pays page faults for its buffers).  ``keep=False``: each
    chunk's output is dropped once made, as by a consumer that writes it out (`timetag process`);
    the dense stream yields a herald every ~14 tags, and holding them all costs fresh pages
    (measured 0-3 ns per tag on this VM, varying from run to run) that a streaming consumer
    does not pay.  Both are reported."""
    pl = LabPipeline(lab_)
    rs, hs = [], []
    t0 = None
    for i in range(0, time_.size, chunk):
        if t0 is None and i >= warm:
            t0 = time.perf_counter()
        r, h = pl.process(TagChunk(time_[i:i + chunk], channel[i:i + chunk]))
        if keep:
            rs.append(r)
            hs.append(h)
    if t0 is None:
        t0 = time.perf_counter()
    r, h = pl.flush()
    elapsed = time.perf_counter() - t0
    rs.append(r)
    hs.append(h)
    return np.concatenate(rs), np.concatenate(hs), elapsed


@contextmanager
def _scalar_split():
    """The engine with its scalar split (the fallback on CPUs without AVX2)."""
    from timetag._cext import engine_slots

    prev = engine_slots.set_vector_split(False)
    try:
        yield
    finally:
        engine_slots.set_vector_split(prev)


def bench_stages(quick: bool) -> list[dict]:
    # chunks of the default size (what `timetag process` uses); the first three are warm-up: a fresh
    # pipeline's buffers and the heap behind its outputs reach their size by then (minor page faults per
    # 2 M-tag chunk measured 2100-2600, 500-1600, 0-1150, then 0-200; chunks 2 and 3 took 19-24 ms, later
    # ones 16 ms).
    # Best of several runs: the machine is shared, and a neighbour's burst only ever slows a run (for
    # seconds at a time: the same 2 M-tag chunk took 16 ms in one minute and 22 ms in the next).  The
    # memory pass is measured in every round too, so that both sides of the ratio see the same phases.
    n = 3 * DEFAULT_CHUNK_SIZE if quick else 10 * DEFAULT_CHUNK_SIZE
    repeat = 3 if quick else 5
    warm = 3 * DEFAULT_CHUNK_SIZE
    t, c = dense_stream(warm + n)
    lab_ = lab("herald")
    tt, ct = t[warm:], c[warm:]

    def memory_pass():
        np.add.reduce(tt)
        np.add.reduce(ct)

    mem = eng = eng_scalar = eng_small = float("inf")
    small = 20_000  # a live slice of a few ms at device rates: the fixed cost per call shows
    for _ in range(repeat):
        mem = min(mem, _best(memory_pass))
        eng = min(eng, run_engine(t, c, lab_, warm=warm, keep=False)[2])
        with _scalar_split():
            eng_scalar = min(eng_scalar, run_engine(t, c, lab_, warm=warm, keep=False)[2])
        eng_small = min(eng_small, run_engine(t, c, lab_, chunk=small, warm=warm, keep=False)[2])
    r1, h1, eng_keep = run_engine(t, c, lab_, warm=warm, keep=True)
    ne = _numpy_engine()
    t0 = time.perf_counter()
    r2, h2 = ne.numpy_process(t, c, lab_)
    base = time.perf_counter() - t0
    agree = bool(np.array_equal(r1, r2) and np.array_equal(h1, h2))
    rate, base_rate = n / eng, (warm + n) / base
    return [
        {"name": "synthetic_engine_stages_vs_sum_pass", "value": eng / mem, "unit": "x slower",
         "baseline": "numpy sum pass (np.add.reduce of time and channel, read-only); synthetic dense stream",
         "target": "<= 5x", "gross_regression": False, "tags_per_s": rate, "tags": n, "rounds": int(r1.size),
         "heralds": int(h1.size), "engine_s": eng, "memory_pass_s": mem,
         "note": "streaming: each chunk's output dropped once made, as `timetag process` does"},
        {"name": "synthetic_engine_stages_speedup_vs_numpy", "value": rate / base_rate, "unit": "x faster",
         "baseline": "vectorised numpy engine (benchmarks/numpy_engine.py); synthetic dense stream", "target": "> 1", "gross_regression": rate < base_rate,
         "numpy_tags_per_s": base_rate, "engine_tags_per_s": rate, "outputs_agree": agree},
        {"name": "synthetic_engine_stages_throughput", "value": rate / 1e6, "unit": "M tags/s",
         "baseline": "absolute; synthetic dense stream, first 3 chunks excluded (warm-up)", "target": "report", "gross_regression": False},
        {"name": "synthetic_engine_stages_throughput_keeping_outputs", "value": n / eng_keep / 1e6, "unit": "M tags/s",
         "baseline": "absolute; synthetic dense stream; every herald and round held in memory (fresh pages for ~3.5 bytes per tag)",
         "target": "report", "gross_regression": False},
        {"name": "synthetic_engine_vector_split_speedup", "value": eng_scalar / eng, "unit": "x faster",
         "baseline": f"synthetic dense stream: the same engine with its scalar split ({n / eng_scalar / 1e6:.1f} M tags/s)",
         "target": "> 1 on x86-64 with AVX2 (1 elsewhere: the same code runs)", "gross_regression": False},
        {"name": "synthetic_engine_small_chunks_vs_default", "value": eng / eng_small, "unit": "x speed",
         "baseline": f"synthetic dense stream: chunks of {small} tags ({n / eng_small / 1e6:.1f} M tags/s) vs {DEFAULT_CHUNK_SIZE}: "
                     f"extra cost per call {(eng_small - eng) / (n / small) * 1e6:.0f} us",
         "target": "report", "gross_regression": False},
    ]


def write_dense_dump(path: Path, n: int, block: int = 4_000_000) -> int:
    from timetag.formats.dump import DumpWriter

    last = 0
    with DumpWriter(path) as w:
        for i, start in enumerate(range(0, n, block)):
            t, c = dense_stream(min(block, n - start), seed=i + 1, t0=last)
            last = int(t[-1])
            w.write(TagChunk(t, c))
    return n


def _process_probe(cmd) -> dict:
    res = R.run_child(cmd, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if res["rc"] != 0:
        raise RuntimeError(f"timetag process failed: {res['err'].strip()}")
    return res


def bench_end_to_end(quick: bool) -> list[dict]:
    n = 10_000_000 if quick else 70_000_000  # 160 MB / 1.1 GB of 16-byte records
    rows = []
    with tempfile.TemporaryDirectory(prefix="timetag-bench-") as d:
        d = Path(d)
        setup = setup_from_dict({"labs": {"alice": lab_dict("herald")}})
        setup.save(d / "setup.toml")
        path = d / "dense.dump"
        write_dense_dump(path, n)
        size = path.stat().st_size
        cmd = [sys.executable, "-m", "timetag", "process", str(path), "--setup", str(d / "setup.toml"),
               "--lab", "alice", "--out", str(d / "rounds.h5"), "--quiet"]
        res = _process_probe(cmd)
        wall, rss_mb = res["wall"], res["rss_mb"]
        from timetag.roundsfile import read_rounds

        summary = read_rounds(d / "rounds.h5").summary
    rows.append({"name": "synthetic_process_end_to_end_throughput", "value": n / wall / 1e6, "unit": "M tags/s",
                 "baseline": "absolute (wall, incl. start-up and input checksum); synthetic dense dump", "target": "report",
                 "gross_regression": False, "file_mb": size / 1e6, "wall_s": wall,
                 "engine_elapsed_s": summary.get("elapsed_s"), "rounds": summary.get("rounds")})
    rows.append({"name": "synthetic_process_peak_rss", "value": rss_mb, "unit": "MB",
                 "baseline": f"synthetic dense dump, file {size / 1e6:.0f} MB",
                 "target": "<= 500 MB, independent of file size", "gross_regression": False})
    return rows


def _reader_chunks(path):
    """The file's chunks as the reader hands them out (``DEFAULT_CHUNK_SIZE`` tags, lost events in place),
    copied into memory, and the same tags as two whole arrays (for the baselines)."""
    from timetag.formats import open_tags

    chunks = [TagChunk(np.array(ch.time, np.int64), np.array(ch.channel, np.int32), ch.lost)
              for ch in open_tags(path)]
    return chunks, np.concatenate([ch.time for ch in chunks]), np.concatenate([ch.channel for ch in chunks])


def _engine_chunks(chunks, lab_):
    """Every chunk through a fresh LabPipeline, output dropped once made (as `timetag process` streams it)."""
    pl = LabPipeline(lab_)
    nr = nh = 0
    for ch in chunks:
        r, h = pl.process(ch)
        nr += r.size
        nh += h.size
    r, h = pl.flush()
    return nr + r.size, nh + h.size


def bench_lmu2022(quick: bool) -> list[dict]:
    """Headline: the paper's simulated link, both labs, in memory; and `timetag process` on the Alice dump."""
    res, sim_s = R.lmu2022_run(quick)
    setup = load_setup(res.setup)
    repeat = 3 if quick else 5
    n_rounds = res.stats["rounds"]
    what = f"lmu2022 simulated, {n_rounds} rounds"
    rows = []
    for lab_name, path in (("alice", res.alice), ("bob", res.bob)):
        chunks, t, c = _reader_chunks(path)
        lab_ = setup.lab(lab_name)
        n = int(t.size)
        out = {}

        def engine():
            out["rounds"], out["heralds"] = _engine_chunks(chunks, lab_)

        cases = {"engine": engine, "copy": lambda: (t.copy(), c.copy()),
                 "sum": lambda: (np.add.reduce(t), np.add.reduce(c))}
        ts = R.interleaved(cases, repeat)
        e = ts["engine"]
        common = {"tags": n, "rounds": out["rounds"], "heralds": out["heralds"], "input": what,
                  "lost_events": int(sum(len(ch.lost) for ch in chunks))}
        rows.append({"name": f"lmu2022_engine_{lab_name}_throughput", "value": n / R.best(e) / 1e6,
                     "median": n / R.median(e) / 1e6, "unit": "M tags/s",
                     "baseline": f"absolute; {what}, {lab_name}: {n / 1e6:.1f} M tags in memory, "
                                 f"LabPipeline.process per reader chunk ({DEFAULT_CHUNK_SIZE} tags), incl. warm-up",
                     "target": "report", "gross_regression": False, "repeat": repeat, **common})
        rows.append(R.ratio_row(f"lmu2022_engine_{lab_name}_vs_copy_pass", e, ts["copy"], "x slower",
                                "numpy copy pass over the same arrays (time.copy(); channel.copy())",
                                "report", faster=False, **common))
        rows.append(R.ratio_row(f"lmu2022_engine_{lab_name}_vs_sum_pass", e, ts["sum"], "x slower",
                                "numpy sum pass over the same arrays (np.add.reduce of time and channel)",
                                "report", faster=False, **common))
        del chunks, t, c
    # `timetag process` end to end on the Alice dump, interleaved with `cat FILE > /dev/null` of the same file
    path = res.alice
    size = path.stat().st_size
    n_alice = res.stats["alice_tags"]
    k = [0]
    probes = []

    def process():
        k[0] += 1
        outp = R.scratch() / f"rounds_{k[0]}.h5"
        cmd = [sys.executable, "-m", "timetag", "process", str(path), "--setup", str(res.setup),
               "--lab", "alice", "--out", str(outp), "--quiet"]
        probes.append(_process_probe(cmd))
        outp.unlink(missing_ok=True)

    def cat():
        subprocess.run(f"cat '{path}' > /dev/null", shell=True, check=True)

    ts = R.interleaved({"process": process, "cat": cat}, repeat)
    p = ts["process"]
    rss = max(pr["rss_mb"] for pr in probes)
    rows.append({"name": "lmu2022_process_alice_throughput", "value": n_alice / R.best(p) / 1e6,
                 "median": n_alice / R.median(p) / 1e6, "unit": "M tags/s",
                 "baseline": f"absolute; `timetag process` wall time incl. start-up and input checksum; {what}, "
                             f"alice.dump {size / 1e6:.0f} MB, {n_alice / 1e6:.1f} M tags",
                 "target": "report", "gross_regression": False, "repeat": repeat})
    rows.append(R.ratio_row("lmu2022_process_alice_vs_cat", p, ts["cat"], "x slower",
                            "`cat alice.dump > /dev/null` of the same file (page cache warm)", "report",
                            faster=False, file_mb=size / 1e6))
    rows.append({"name": "lmu2022_process_alice_peak_rss", "value": rss, "unit": "MB",
                 "baseline": f"alice.dump {size / 1e6:.0f} MB", "target": "<= 500 MB, independent of file size",
                 "gross_regression": False})
    rows.append({"name": "lmu2022_simulate_s", "value": sim_s, "unit": "s",
                 "baseline": f"absolute; simulate(load_preset('lmu2022'), {n_rounds}, {R.LMU_SEED}, dir): "
                             f"{(res.stats['alice_tags'] + res.stats['bob_tags']) / 1e6:.1f} M tags "
                             "(0 if already simulated in this run)", "target": "report", "gross_regression": False})
    return rows


def run(quick: bool) -> list[dict]:
    return bench_lmu2022(quick) + bench_stages(quick) + bench_end_to_end(quick)


if __name__ == "__main__":
    import json

    for row in run(quick="--full" not in sys.argv):
        print(json.dumps(row))
