"""The simulator's helper threads (block draws made one block ahead; the dump writes) change nothing but the
time: the output is a function of the seed whatever the timing, and a write error reaches the caller."""
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
