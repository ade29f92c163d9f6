"""The HydraHarp T2 decode loops: the AVX2 loop against the scalar loop (the reference) and a plain-Python decoder,
bit for bit: tags, counters, the overflow sum carried in the state, and where a call stops when the output is full.
Real files, and synthetic records with every record kind, overflow runs longer than a vector group, and chunk
boundaries inside those runs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from timetag._cext import fmt_ptu
from timetag.formats import ptu as P

HH_T2_REAL = ["pqsd_hydraharp_v20_t2.ptu", "eta_200204_HH400_T2_320MHz_HBT.ptu",
              "tdctoolkit_multiharp160_1min_ch1_t2.ptu"]
WRAP = {P.FAM_HH1: 33552000, P.FAM_HH2: 1 << 25}
SENTINEL = -7

needs_avx2 = pytest.mark.skipif(not fmt_ptu.vector_loop(False, P.FAM_HH2, True), reason="CPU without AVX2")


def plain_decode(rec, fam, unit, ofl=0):
    """HydraHarp T2 straight from the record description: (times, channels, final overflow sum)."""
    t, c = [], []
    for r in (int(x) for x in rec):
        sp, ch, tf = r >> 31, (r >> 25) & 63, r & 0x1FFFFFF
        when = ((ofl + tf) * unit + 2**63) % 2**64 - 2**63     # int64 arithmetic, as the kernels
        if sp and ch == 63:
            ofl += WRAP[fam] * (1 if fam == P.FAM_HH1 else max(tf, 1))
        elif sp and ch == 0:
            t.append(when), c.append(P.SYNC_CHANNEL)
        elif sp and ch <= 15:
            for m in range(4):
                if ch >> m & 1:
                    t.append(when), c.append(P.MARKER_BASE + m)
        elif not sp:
            t.append(when), c.append(ch)
    return np.array(t, np.int64), np.array(c, np.int32), ofl


def run(rec, fam, unit, kernel, cuts=(), cap=None, ofl0=0):
    """Decode in calls cut at ``cuts`` (record positions) with ``cap`` output slots per call (room for the whole
    piece if None); checks no slot past ``cap`` is written.  Returns times, channels, state, per-call results."""
    state = np.zeros(len(P.STATE_FIELDS), np.int64)
    state[0] = ofl0
    ts, cs, calls = [], [], []
    bounds = sorted(set(cuts) | {rec.size})
    done = 0
    for end in bounds:
        while done < end:
            room = cap if cap is not None else end - done + 8
            out_t, out_c = np.full(room + 8, SENTINEL, np.int64), np.full(room + 8, SENTINEL, np.int32)
            used, w = fmt_ptu.decode_t2(rec[done:end], fam, unit, 0.0, state, out_t[:room], out_c[:room],
                                        kernel=kernel)
            assert (out_t[room:] == SENTINEL).all() and (out_c[room:] == SENTINEL).all()
            assert 0 < used <= end - done and w <= room
            ts.append(out_t[:w].copy()), cs.append(out_c[:w].copy()), calls.append((used, w))
            done += used
    t = np.concatenate(ts) if ts else np.zeros(0, np.int64)
    c = np.concatenate(cs) if cs else np.zeros(0, np.int32)
    return t, c, state, calls


def assert_same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert a[3] == b[3]


def word(kind, tf=0, ch=0):
    """One record: kind photon (channel ch), sync, marker (bits ch), invalid (special channel ch), overflow."""
    sp, chan = {"photon": (0, ch), "sync": (1, 0), "marker": (1, ch), "invalid": (1, ch), "overflow": (1, 63)}[kind]
    return (sp << 31) | (chan << 25) | tf


def every_kind_stream(rng, n_groups=120):
    """Photons on every channel, syncs, every marker pattern, every invalid special channel, and overflow runs of
    1..40 records (time fields 0 = one wrap, 1, large, the largest), in random order."""
    out = []
    for g in range(n_groups):
        run_len = int(rng.choice([1, 2, 7, 8, 9, 15, 16, 17, 40]))
        out += [word("overflow", int(rng.choice([0, 1, 2, 777, 2**25 - 1]))) for _ in range(run_len)]
        for _ in range(int(rng.integers(0, 12))):
            out.append(word("photon", int(rng.integers(0, 2**25)), int(rng.integers(0, 64))))
        if rng.random() < 0.5:
            out.append(word("sync", int(rng.integers(0, 2**25))))
        if g % 4 == 0:
            out.append(word("marker", int(rng.integers(0, 2**25)), 1 + g // 4 % 15))
        if g % 6 == 0:
            out.append(word("invalid", int(rng.integers(0, 2**25)), 16 + g // 6 % 47))
    return np.array(out, np.uint32)


def common_stream(rng, n, p_ofl=0.3):
    """Photons, syncs and overflows only (the vector path end to end), overflow counts 0..3."""
    ofl = rng.random(n) < p_ofl
    sync = rng.random(n) < 0.05
    tf = rng.integers(0, 2**25, n).astype(np.uint32)
    rec = np.where(ofl, (np.uint32(0x7F) << 25) | (tf & 3), np.where(sync, (np.uint32(0x40) << 25) | tf,
                                                                     (rng.integers(0, 4, n).astype(np.uint32) << 25)
                                                                     | tf))
    return rec.astype(np.uint32)


def test_plain_decoder_reads_what_the_records_say():
    """The reference itself, on a hand-made stream: v2 overflow 0 counts one wrap, markers one tag per bit."""
    rec = np.array([word("photon", 5, 2), word("overflow", 0), word("sync", 7), word("overflow", 3),
                    word("marker", 9, 0b0101), word("invalid", 1, 40), word("photon", 1, 63)], np.uint32)
    t, c, ofl = plain_decode(rec, P.FAM_HH2, 2)
    w = 1 << 25
    assert t.tolist() == [10, 2 * (w + 7), 2 * (4 * w + 9), 2 * (4 * w + 9), 2 * (4 * w + 1)]
    assert c.tolist() == [2, P.SYNC_CHANNEL, P.MARKER_BASE, P.MARKER_BASE + 2, 63]
    assert ofl == 4 * w


def test_kernel_choice_and_errors():
    rec, out = np.zeros(16, np.uint32), (np.zeros(24, np.int64), np.zeros(24, np.int32))
    state = np.zeros(6, np.int64)
    with pytest.raises(ValueError, match="kernel must be one of"):
        fmt_ptu.decode_t2(rec, P.FAM_HH2, 1, 0.0, state, *out, kernel="sse")
    # no AVX2 loop for PicoHarp T2 or a fractional unit, whatever the CPU
    assert not fmt_ptu.vector_loop(False, P.FAM_PICOHARP, True)
    assert not fmt_ptu.vector_loop(False, P.FAM_HH2, False)
    assert not fmt_ptu.vector_loop(True, P.FAM_HH2, True)
    with pytest.raises(ValueError, match="no AVX2 loop"):
        fmt_ptu.decode_t2(rec, P.FAM_PICOHARP, 1, 0.0, state, *out, kernel="avx2")
    with pytest.raises(ValueError, match="no AVX2 loop"):
        fmt_ptu.decode_t2(rec, P.FAM_HH2, 2, 0.5, state, *out, kernel="avx2")


@needs_avx2
@pytest.mark.parametrize("name", HH_T2_REAL)
def test_real_file_both_loops_agree(real_data, name):
    """Every HydraHarp-family T2 real file: both loops, whole and cut into odd-sized calls, the same bit for bit;
    the tags as the plain decoder reads them."""
    r = P.PtuReader(real_data / name)
    dec = r._decoder()
    assert not r.is_t3 and dec.family in (P.FAM_HH1, P.FAM_HH2) and dec.g_frac == 0
    rec = np.fromfile(real_data / name, "<u4", count=r.records, offset=r.data_offset)
    scalar = run(rec, dec.family, dec.g_int, "scalar")
    assert_same(run(rec, dec.family, dec.g_int, "avx2"), scalar)
    cuts = list(range(0, rec.size, 99_991))
    assert_same(run(rec, dec.family, dec.g_int, "avx2", cuts=cuts), run(rec, dec.family, dec.g_int, "scalar",
                                                                          cuts=cuts))
    head = rec[:40_000]
    t, c, ofl = plain_decode(head, dec.family, dec.g_int)
    got = run(head, dec.family, dec.g_int, "avx2")
    np.testing.assert_array_equal(got[0], t)
    np.testing.assert_array_equal(got[1], c)
    assert got[2][0] == ofl


@needs_avx2
@pytest.mark.parametrize("unit", [1, 3, 2**31 + 11, 2**32 + 5])
@pytest.mark.parametrize("fam", [P.FAM_HH1, P.FAM_HH2])
def test_every_record_kind_against_plain_decoder(fam, unit):
    """Units near and past 2**32 (where the AVX2 loop hands over to the scalar one), a large overflow sum carried
    in from an earlier call: tags, counters and the final overflow sum."""
    rec = every_kind_stream(np.random.default_rng(fam * 100 + unit % 97))
    ofl0 = 2**40 + 12345
    t, c, ofl = plain_decode(rec, fam, unit, ofl0)
    for kernel in ("scalar", "avx2"):
        got = run(rec, fam, unit, kernel, ofl0=ofl0)
        np.testing.assert_array_equal(got[0], t)
        np.testing.assert_array_equal(got[1], c)
        assert got[2][0] == ofl
    assert_same(run(rec, fam, unit, "avx2", ofl0=ofl0), run(rec, fam, unit, "scalar", ofl0=ofl0))
    st = run(rec, fam, unit, "avx2")[2]
    counts = dict(zip(P.STATE_FIELDS[1:], st[1:].tolist()))
    k = rec >> 25
    assert counts == {"n_overflow": int((k == 127).sum()), "n_marker": int(((k >= 65) & (k <= 79)).sum()),
                      "n_sync": int((k == 64).sum()), "n_invalid": int(((k >= 80) & (k <= 126)).sum()),
                      "n_photon": int((k < 64).sum())}


@needs_avx2
@pytest.mark.parametrize("fam", [P.FAM_HH1, P.FAM_HH2])
def test_chunk_boundaries_inside_long_overflow_runs(fam):
    """A call boundary at every record position, including inside runs of 9..40 overflow records."""
    rng = np.random.default_rng(fam)
    rec = every_kind_stream(rng, n_groups=14)
    assert rec.size > 150
    k = rec >> 25
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, (k == 127).astype(int), 0]))).max()
    assert runs > 8
    whole = run(rec, fam, 5, "scalar")
    for cut in range(rec.size + 1):
        a, s = run(rec, fam, 5, "avx2", cuts=[cut]), run(rec, fam, 5, "scalar", cuts=[cut])
        assert_same(a, s)
        np.testing.assert_array_equal(a[0], whole[0])
        np.testing.assert_array_equal(a[2], whole[2])


@needs_avx2
@pytest.mark.parametrize("cap", [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 100])
@pytest.mark.parametrize("stream", ["every_kind", "common"])
def test_output_full_stops_both_loops_at_the_same_record(stream, cap):
    """Small output buffers: every call consumes and writes the same counts in both loops (a marker needs 4
    slots: with fewer the stream has none)."""
    rng = np.random.default_rng(cap)
    rec = every_kind_stream(rng, 40) if stream == "every_kind" and cap >= 4 else common_stream(rng, 3000)
    a, s = run(rec, P.FAM_HH2, 1, "avx2", cap=cap), run(rec, P.FAM_HH2, 1, "scalar", cap=cap)
    assert_same(a, s)
    assert len(a[3]) > 1


@needs_avx2
@pytest.mark.parametrize("p_ofl", [0.0, 0.3, 0.9, 1.0])
def test_common_records_vector_path(p_ofl):
    """Streams of photons, syncs and overflows only, from none to all overflow records, with a length that is not
    a multiple of 8: the plain decoder's tags."""
    rec = common_stream(np.random.default_rng(int(p_ofl * 10)), 20_003, p_ofl)
    t, c, ofl = plain_decode(rec, P.FAM_HH2, 1)
    got = run(rec, P.FAM_HH2, 1, "avx2")
    np.testing.assert_array_equal(got[0], t)
    np.testing.assert_array_equal(got[1], c)
    assert got[2][0] == ofl
    assert_same(got, run(rec, P.FAM_HH2, 1, "scalar"))


_KINDS = st.sampled_from(["photon", "photon", "sync", "marker", "invalid", "overflow", "overflow", "overflow"])


@needs_avx2
@given(st.lists(st.tuples(_KINDS, st.integers(0, 2**25 - 1), st.integers(0, 63)), max_size=200),
       st.lists(st.integers(0, 200), max_size=4), st.sampled_from([None, 4, 6, 11]),
       st.sampled_from([P.FAM_HH1, P.FAM_HH2]))
def test_loops_agree_on_any_stream(items, cuts, cap, fam):
    def fix(kind, ch):
        return {"marker": 1 + ch % 15, "invalid": 16 + ch % 47}.get(kind, ch)

    rec = np.array([word(k, tf, fix(k, ch)) for k, tf, ch in items], np.uint32)
    cuts = [x for x in cuts if x < rec.size]
    assert_same(run(rec, fam, 7, "avx2", cuts=cuts, cap=cap), run(rec, fam, 7, "scalar", cuts=cuts, cap=cap))
