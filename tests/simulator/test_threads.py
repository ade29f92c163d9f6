"""The simulator's helper threads (block draws made one block ahead; each block recorded and written on an
output thread while the next is generated; the dump writes) change nothing but the time: the output is a
function of the seed whatever the timing, and a write error reaches the caller."""
from __future__ import annotations

import time

import numpy as np
import pytest

from timetag.simulator import LinkSimulator, load_preset, simulate
from timetag.simulator import generate as G
from timetag.simulator import dumpout as D
from timetag.simulator import run as R


@pytest.fixture(scope="module")
def preset():
    return load_preset("lmu2022").with_overrides(speedup=3e4)


def test_same_bytes_whatever_the_timing_of_the_draws(tmp_path, preset, monkeypatch):
    fast = simulate(preset, 12, 3, tmp_path / "fast")
    real = G.LinkSimulator._block_draws

    def slow(self, n0, n1, bufs):
        time.sleep(0.002)  # the main thread now waits for every block's draws
        return real(self, n0, n1, bufs)

    monkeypatch.setattr(G.LinkSimulator, "_block_draws", slow)
    slowed = simulate(preset, 12, 3, tmp_path / "slow")
    for name in ("alice.dump", "bob.dump"):
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "slow" / name).read_bytes()
    assert fast.stats["alice_tags"] == slowed.stats["alice_tags"] > 0


def test_same_bytes_written_directly_or_through_the_page_cache(tmp_path, preset, monkeypatch):
    simulate(preset, 12, 3, tmp_path / "direct")
    monkeypatch.setattr(D, "set_direct", lambda fd, on: False)  # as on a file system without O_DIRECT
    simulate(preset, 12, 3, tmp_path / "buffered")
    for name in ("alice.dump", "bob.dump"):
        assert (tmp_path / "direct" / name).read_bytes() == (tmp_path / "buffered" / name).read_bytes()
    assert (tmp_path / "direct" / "alice.dump").stat().st_size > 4 * D.ALIGN  # several direct writes and a tail


def test_draws_come_from_their_own_stream(preset):
    """The block draws use ``rng_draws`` only: drawing from the main stream between blocks changes the rounds
    (inputs, outcomes) but not the photon and dark-count stream before the first herald."""
    a = LinkSimulator(preset, 9, n_rounds=3)
    b = LinkSimulator(preset, 9, n_rounds=3)
    b.rng.random(1000)  # the main stream moves on; the draws' stream does not
    ph_a, k_a, d_a, _ = a._block_draws(0, a.block_periods * a.L, G._DrawBufs())
    ph_b, k_b, d_b, _ = b._block_draws(0, b.block_periods * b.L, G._DrawBufs())
    assert k_a == k_b > 0
    n = ph_a[4]
    assert np.array_equal(ph_a[0][:n], ph_b[0][:n]) and np.array_equal(d_a[0], d_b[0])


def test_final_block_darks_are_cut_not_redrawn():
    t = np.array([5, 10, 20, 30], np.int64)
    ch = np.array([2, 3, 4, 5], np.int32)
    cut_t, cut_ch = G._before((t, ch), 20)
    assert cut_t.tolist() == [5, 10] and cut_ch.tolist() == [2, 3]


def test_write_error_reaches_the_caller(tmp_path, preset, monkeypatch):
    def full(self, view):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(R._DumpOut, "_os_write", full)
    with pytest.raises(OSError, match="No space left"):
        simulate(preset, 5, 1, tmp_path / "full")
    # custody: nothing of the failed run is left under the final names
    assert not any((tmp_path / "full").glob("*.dump"))


SHORT_BLOCK_PS = 4 * 10**10  # one burst period: many blocks in a short run


def _blocks_by_step(preset, seed, n_rounds):
    sim = LinkSimulator(preset, seed, n_rounds=n_rounds, max_block_ps=SHORT_BLOCK_PS)
    blocks = []
    while not sim.finished:
        ca, cb, rows = sim.step()
        blocks.append((ca.time.copy(), ca.channel.copy(), cb.time.copy(), [r.tobytes() for r in rows]))
    return blocks, sim


@pytest.mark.parametrize("slow", ["none", "output", "kernels"])
def test_output_thread_gives_the_blocks_of_step(preset, monkeypatch, slow):
    """``stream_into`` (kernels of the next block while this one is recorded and written) gives block for block
    what ``step`` gives, whichever side is slower."""
    want, ref = _blocks_by_step(preset, 4, 20)
    if slow == "output":
        real_emit = G.LinkSimulator._emit
        monkeypatch.setattr(G.LinkSimulator, "_emit", lambda self, out: (time.sleep(0.003), real_emit(self, out))[1])
    elif slow == "kernels":
        real_k = G.LinkSimulator._kernels
        monkeypatch.setattr(G.LinkSimulator, "_kernels", lambda self: (time.sleep(0.003), real_k(self))[1])
    sim = LinkSimulator(preset, 4, n_rounds=20, reuse_buffers=True, max_block_ps=SHORT_BLOCK_PS)
    got_a, got_b = [], []
    counts = []
    rows = []
    for k_a, k_b, r in sim.stream_into(lambda c: got_a.append((c.time.copy(), c.channel.copy())),
                                       lambda c: got_b.append(c.time.copy())):
        counts.append((k_a, k_b))
        rows.append([x.tobytes() for x in r])
    assert len(got_a) == len(want) > 5
    for (ta, ca), tb, (k_a, k_b), r, (wa, wca, wb, wr) in zip(got_a, got_b, counts, rows, want):
        assert np.array_equal(ta, wa) and np.array_equal(ca, wca) and np.array_equal(tb, wb)
        assert (k_a, k_b) == (wa.size, wb.size) and r == wr
    assert sum(map(len, rows)) == 20
    assert sim.outA.sources.tolist() == ref.outA.sources.tolist()


def test_output_thread_error_ends_the_stream_with_nothing_in_flight(preset):
    """A write that fails on the output thread raises in the generating thread; the stream stops there and no
    block is left being written."""
    sim = LinkSimulator(preset, 4, n_rounds=20, reuse_buffers=True, max_block_ps=SHORT_BLOCK_PS)
    seen = []

    def write_a(chunk):
        seen.append(len(chunk))
        if len(seen) == 2:
            raise OSError(28, "No space left on device")

    blocks = sim.stream_into(write_a, lambda c: None)
    with pytest.raises(OSError, match="No space left"):
        for _ in blocks:
            pass
    assert len(seen) == 2  # the failed block was the last one handed over
    assert G.single_worker("timetag-sim-output").submit(lambda: len(seen)).result(timeout=5) == 2
