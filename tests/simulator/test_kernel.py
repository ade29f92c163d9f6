"""The sequential event kernel (kernel.run) against a plain-Python transcription of its rules, on small random
inputs driven as generate.py drives it: every return code, the state at every return, the herald rows, the
afterpulse list and the recorded tags must be the same.  The inputs are built to hit the merge's corner cases:
equal times across sources, afterpulses, groups of several clicks, blanked attempts, block ends between a click
and its sync, and output / herald buffers so small that the kernel stops at every possible place."""
from __future__ import annotations

import numpy as np
import pytest

from timetag.simulator import kernel as K
from timetag.simulator.fastrng import draw_std_exponential, draw_uniform

NCH = 8
SYNC_CH = 7


# --- the reference: one event per pass, every quantity recomputed from the arrays, exact integer division ----

def _ref_fired(n, st, on, period_n):
    if n < 0 or n % period_n >= on:
        return False
    return not (st[K.S_BLANK_LO] <= n < st[K.S_BLANK_HI])


def _ref_next_emitted(n, st, on, period_n):
    """First tick >= n that the sync clock emits: a fired attempt or the tick right after one."""
    if n >= 1 and _ref_fired(n - 1, st, on, period_n):
        return n
    n = max(n, 0)
    while n < K.BIG:
        if n % period_n >= on:
            n = (n // period_n + 1) * period_n
        elif st[K.S_BLANK_LO] <= n < st[K.S_BLANK_HI]:
            n = int(st[K.S_BLANK_HI])
        else:
            return n
    return int(K.BIG)


def _ref_tick(n, t0, T):
    return int(K.BIG) if float(n) * float(T) >= 4.0e18 else t0 + n * T


class Ref:
    """The kernel module's interface with the reference behind it."""

    def __getattr__(self, name):
        return getattr(K, name)

    @staticmethod
    def first_emitted(n, st, on, period_n):
        return _ref_next_emitted(n, st, on, period_n)

    @staticmethod
    def apply_pause(st, lo, hi, on, period_n, mode):
        st[K.S_BLANK_LO] = lo
        st[K.S_BLANK_HI] = hi
        if mode == K.MODE_EVERY:
            st[K.S_NEXT_TICK] = _ref_next_emitted(int(st[K.S_NEXT_TICK]), st, on, period_n)
        if mode == K.MODE_CONDITIONAL and st[K.S_SYNC_PEND] >= 0:
            st[K.S_SYNC_PEND] = _ref_next_emitted(int(st[K.S_SYNC_PEND]), st, on, period_n)

    @staticmethod
    def run(cand_t, cand_ch, cand_src, cand_att, dk_t, dk_ch, rnd_t, rnd_ch, rnd_src, nr, ap_t, ap_ch, last, dead,
            is_det, is_bsm, arm, pol, pat_on, t0, T, ws, we, on, period_n, sync_ch, mode, block_end, ap_prob, ap_tau,
            burst_prob, burst_size, burst_tau, st, out_t, out_ch, out_src, hall, rs):
        s0, s1 = np.uint64(rs[0]), np.uint64(rs[1])

        def uniform():
            nonlocal s0, s1
            a, b, u = draw_uniform(s0, s1)
            s0, s1 = np.uint64(a), np.uint64(b)
            return u

        def exponential():
            nonlocal s0, s1
            a, b, e = draw_std_exponential(s0, s1)
            s0, s1 = np.uint64(a), np.uint64(b)
            return e

        def emit(t, ch, src):
            n = int(st[K.S_NOUT])
            out_t[n], out_ch[n], out_src[n] = t, ch, src
            st[K.S_NOUT] = n + 1

        while True:
            if st[K.S_NOUT] + 2 >= out_t.size or st[K.S_NHALL] >= hall.shape[0]:
                return K.OUT_FULL
            # candidates first, then dark counts, read-out tags, afterpulses (lowest index), the pending sync
            ci, di, ri, nap = (int(st[i]) for i in (K.S_CI, K.S_DI, K.S_RI, K.S_NAP))
            events = []
            if ci < cand_t.size:
                events.append((int(cand_t[ci]), 0, 0))
            if di < dk_t.size:
                events.append((int(dk_t[di]), 1, 4))
            if ri < nr:
                events.append((int(rnd_t[ri]), 2, 1))
            if nap:
                j = int(np.argmin(ap_t[:nap]))
                events.append((int(ap_t[j]), 3, 2))
            if mode == K.MODE_CONDITIONAL and st[K.S_SYNC_PEND] >= 0:
                events.append((_ref_tick(int(st[K.S_SYNC_PEND]), t0, T), 4, 3))
            tn, _, which = min(events) if events else (int(K.BIG), 0, -1)
            if tn >= block_end:
                which = -1
            g = int(st[K.S_G_ATT])
            if g >= 0 and (which < 0 or tn >= t0 + g * T + we):
                st[K.S_G_ATT] = -1
                n = int(st[K.S_G_N])
                if n >= 2:
                    c1, c2 = int(st[K.S_G_CH1]), int(st[K.S_G_CH2])
                    pattern = K.PATTERN_OTHER
                    if n == 2 and c1 != c2 and pol[c1] != pol[c2]:
                        pattern = K.PATTERN_PSI_PLUS if arm[c1] == arm[c2] else K.PATTERN_PSI_MINUS
                    gated = st[K.S_STOP] != 0 or not _ref_fired(g, st, on, period_n)
                    h = int(st[K.S_NHALL])
                    hall[h] = (g, st[K.S_G_T1], st[K.S_G_T2], c1, c2, st[K.S_G_SRC1], st[K.S_G_SRC2], n, pattern,
                               gated, st[K.S_G_TL])
                    st[K.S_NHALL] = h + 1
                    if pattern != K.PATTERN_OTHER and pat_on[pattern] and not gated:
                        st[K.S_H_ATT] = g
                        for dst, src in ((K.S_H_T1, K.S_G_T1), (K.S_H_CH1, K.S_G_CH1), (K.S_H_SRC1, K.S_G_SRC1),
                                         (K.S_H_T2, K.S_G_T2), (K.S_H_CH2, K.S_G_CH2), (K.S_H_SRC2, K.S_G_SRC2)):
                            st[dst] = st[src]
                        st[K.S_H_PATTERN] = pattern
                        return K.HERALD
            if mode == K.MODE_EVERY:
                tt = _ref_tick(int(st[K.S_NEXT_TICK]), t0, T)
                if tt < (tn if which >= 0 else block_end):
                    emit(tt, sync_ch, K.SRC_SYNC)
                    st[K.S_NEXT_TICK] = _ref_next_emitted(int(st[K.S_NEXT_TICK]) + 1, st, on, period_n)
                    continue
            if which < 0:
                return K.DONE
            if which == 3:
                emit(tn, sync_ch, K.SRC_SYNC)
                st[K.S_SYNC_PEND] = -1
                continue
            att = -1
            if which == 0:
                ch, src, att = int(cand_ch[ci]), int(cand_src[ci]), int(cand_att[ci])
                st[K.S_CI] = ci + 1
                if att >= 0 and not _ref_fired(att, st, on, period_n):
                    continue
            elif which == 4:
                ch, src = int(dk_ch[di]), K.SRC_DARK
                st[K.S_DI] = di + 1
            elif which == 1:
                ch, src = int(rnd_ch[ri]), int(rnd_src[ri])
                st[K.S_RI] = ri + 1
            else:
                ch, src = int(ap_ch[j]), K.SRC_AFTERPULSE
                ap_t[j], ap_ch[j] = ap_t[nap - 1], ap_ch[nap - 1]
                st[K.S_NAP] = nap - 1
            if is_det[ch]:
                if tn - last[ch] < dead[ch]:
                    continue
                last[ch] = tn
            emit(tn, ch, src)
            if is_det[ch] and src != K.SRC_AFTERPULSE:
                if ap_prob > 0.0 and uniform() < ap_prob and st[K.S_NAP] < ap_t.size:
                    nap = int(st[K.S_NAP])
                    ap_t[nap], ap_ch[nap] = tn + dead[ch] + np.int64(ap_tau * exponential()), ch
                    st[K.S_NAP] = nap + 1
                if burst_prob > 0.0 and uniform() < burst_prob:
                    tb = tn + int(dead[ch])
                    for _ in range(burst_size):
                        nap = int(st[K.S_NAP])
                        if nap >= ap_t.size:
                            break
                        tb += int(np.int64(burst_tau * exponential()))
                        ap_t[nap], ap_ch[nap] = tb, ch
                        st[K.S_NAP] = nap + 1
            if is_bsm[ch]:
                rel = tn - t0
                # the sync after the click (conditional), then the window of attempt (rel - ws) // T
                if mode == K.MODE_CONDITIONAL and st[K.S_SYNC_PEND] < 0:
                    st[K.S_SYNC_PEND] = _ref_next_emitted(rel // T + 1 if rel >= 0 else 0, st, on, period_n)
                if rel >= ws:
                    n = (rel - ws) // T
                    ref = n if mode == K.MODE_EVERY else n + 1
                    if rel - n * T < we and (_ref_fired(ref, st, on, period_n) or
                                            _ref_fired(ref - 1, st, on, period_n)):
                        if st[K.S_G_ATT] != n:
                            st[K.S_G_ATT] = n
                            st[K.S_G_N] = 0
                        c = int(st[K.S_G_N])
                        st[K.S_G_TL] = tn
                        if c < 2:
                            fields = (K.S_G_T1, K.S_G_CH1, K.S_G_SRC1) if c == 0 else (K.S_G_T2, K.S_G_CH2, K.S_G_SRC2)
                            st[fields[0]], st[fields[1]], st[fields[2]] = tn, ch, src
                        st[K.S_G_N] = c + 1
                # the sync the click set is emitted in the same pass when nothing comes first (and the output
                # keeps room for it), closing a one-click group it leaves
                ts = _ref_tick(int(st[K.S_SYNC_PEND]), t0, T)
                ci, di, ri, nap = (int(st[i]) for i in (K.S_CI, K.S_DI, K.S_RI, K.S_NAP))
                if (mode == K.MODE_CONDITIONAL and st[K.S_SYNC_PEND] >= 0 and st[K.S_NOUT] + 3 < out_t.size
                        and st[K.S_NHALL] < hall.shape[0] and ts < block_end
                        and (ci >= cand_t.size or ts < cand_t[ci]) and (di >= dk_t.size or ts < dk_t[di])
                        and (ri >= nr or ts < rnd_t[ri]) and not (ap_t[:nap] <= ts).any()):
                    g = int(st[K.S_G_ATT])
                    if g >= 0 and ts >= t0 + g * T + we:
                        if st[K.S_G_N] >= 2:
                            continue
                        st[K.S_G_ATT] = -1
                    emit(ts, sync_ch, K.SRC_SYNC)
                    st[K.S_SYNC_PEND] = -1


# --- random inputs and the driver ------------------------------------------------------------------------------

def random_case(rng, mode):
    T = int(rng.integers(20, 200))
    ws = int(rng.integers(-T // 4, T // 2)) if rng.random() < 0.2 else int(rng.integers(0, T // 2))
    we = ws + int(rng.integers(1, T + T // 2 if rng.random() < 0.2 else T - ws + 1))
    period_n = int(rng.integers(1, 8))
    on = int(rng.integers(1, period_n + 1))
    t0 = int(rng.integers(-5 * T, 5 * T))
    n_att = int(rng.integers(5, 80))
    span = n_att * T
    is_det = rng.random(NCH) < 0.8
    is_bsm = is_det & (rng.random(NCH) < 0.8)
    # photon candidates: a few per attempt around the window (or packed into it: groups of several clicks),
    # some without an attempt
    n_c = int(rng.integers(0, 3 * n_att))
    att = np.sort(rng.integers(0, n_att, n_c))
    d = rng.integers(ws, we + 1, n_c) if rng.random() < 0.5 else rng.integers(-T // 2, 2 * T, n_c)
    ct = t0 + att * T + d
    att = np.where(rng.random(n_c) < 0.1, -1, att)
    o = np.argsort(ct, kind="stable")
    ct, att = ct[o].astype(np.int64), att[o].astype(np.int64)
    # equal times across the sources: the times on a coarse grid
    grid = int(rng.choice([1, T // 4 + 1, T]))
    if rng.random() < 0.3:
        ct = np.sort(ct // grid * grid)
    n_d = int(rng.integers(0, n_att))
    n_r = int(rng.integers(0, 20)) if rng.random() < 0.6 else 0
    # one dead time for all detectors (afterpulses of equal times on several channels) or one each
    dead = rng.choice([0, T // 2]) if rng.random() < 0.5 else rng.integers(0, 3 * T, NCH)
    return dict(
        ct=ct, cc=rng.integers(0, NCH, n_c).astype(np.int32), cs=rng.integers(1, 5, n_c).astype(np.int8), ca=att,
        dt=np.sort(t0 + rng.integers(-T, span, n_d) // grid * grid).astype(np.int64),
        dc=rng.integers(0, NCH, n_d).astype(np.int32),
        rt=np.sort(t0 + rng.integers(-T, span, n_r) // grid * grid).astype(np.int64),
        rch=rng.integers(0, NCH, n_r).astype(np.int32), rsrc=rng.integers(5, 10, n_r).astype(np.int8),
        ap_cap=int(rng.integers(1, 6)), dead=np.where(is_det, dead, 0).astype(np.int64),
        is_det=is_det, is_bsm=is_bsm, arm=rng.integers(0, 2, 16).astype(np.int64),
        pol=rng.integers(0, 2, 16).astype(np.int64), pat_on=rng.random(4) < 0.7, t0=t0, T=T, ws=ws, we=we, on=on,
        period_n=period_n, mode=mode, block_end=t0 + int(rng.integers(span // 2, span + 3 * T)),
        # (tiny time constants: afterpulses at equal times)
        ap_prob=float(rng.choice([0.0, 0.3, 0.9])), ap_tau=float(rng.choice([1e-3, rng.integers(1, 3 * T)])),
        burst_prob=float(rng.choice([0.0, 0.2])), burst_size=int(rng.integers(1, 4)),
        burst_tau=float(rng.choice([1e-3, rng.integers(1, T)])), out_cap=int(rng.integers(1, 12)),
        hall_cap=int(rng.integers(1, 4)),
        pause=int(rng.integers(0, 4 * period_n)), seed=int(rng.integers(1 << 62)))


def drive(M, c, out_cap=None):
    """Call ``M.run`` until DONE as generate.py's ``_run_lab`` does (a larger output buffer when full, the herald
    rows flushed, the read-out pause applied after a herald, sometimes the last round); return what is
    observable after every call and the recorded tags."""
    st = K.new_state()
    if c["seed"] % 3 == 0:
        st[K.S_BLANK_LO], st[K.S_BLANK_HI] = 2, 2 + c["pause"]
    if c["mode"] == K.MODE_EVERY:
        st[K.S_NEXT_TICK] = M.first_emitted(0, st, c["on"], c["period_n"])
    last = np.full(NCH, -(1 << 62), np.int64)
    ap_t = np.zeros(c["ap_cap"], np.int64)
    ap_ch = np.zeros(c["ap_cap"], np.int32)
    cap = c["out_cap"] if out_cap is None else out_cap
    out = [np.zeros(cap, np.int64), np.zeros(cap, np.int32), np.zeros(cap, np.int8)]
    hall = np.zeros((c["hall_cap"], len(K.HALL_COLS)), np.int64)
    seeds = np.random.default_rng(c["seed"])
    record = []
    heralds = 0
    for _ in range(10000):
        rs = seeds.integers(1, 2**63 - 1, size=2, dtype=np.int64).astype(np.uint64)
        code = M.run(c["ct"], c["cc"], c["cs"], c["ca"], c["dt"], c["dc"], c["rt"], c["rch"], c["rsrc"], c["rt"].size,
                     ap_t, ap_ch, last, c["dead"], c["is_det"], c["is_bsm"], c["arm"], c["pol"], c["pat_on"], c["t0"],
                     c["T"], c["ws"], c["we"], c["on"], c["period_n"], SYNC_CH, c["mode"], c["block_end"],
                     c["ap_prob"], c["ap_tau"], c["burst_prob"], c["burst_size"], c["burst_tau"], st, out[0], out[1],
                     out[2], hall, rs)
        nap, nh = int(st[K.S_NAP]), int(st[K.S_NHALL])
        record.append((int(code), st.copy(), last.copy(), ap_t[:nap].copy(), ap_ch[:nap].copy(), hall[:nh].copy()))
        st[K.S_NHALL] = 0
        if code == K.HERALD:
            a = int(st[K.S_H_ATT])
            M.apply_pause(st, a + 1, a + 1 + c["pause"], c["on"], c["period_n"], c["mode"])
            heralds += 1
            if heralds % 4 == 0:
                st[K.S_STOP] = 1
        elif code == K.OUT_FULL:
            n = int(st[K.S_NOUT])
            if n + 2 >= out[0].size:
                grown = [np.zeros(2 * a.size + 1, a.dtype) for a in out]
                for a, b in zip(out, grown):
                    b[:n] = a[:n]
                out = grown
        else:
            break
    n = int(st[K.S_NOUT])
    return record, [a[:n] for a in out]


def assert_same(got, want):
    (rec_g, out_g), (rec_w, out_w) = got, want
    assert [r[0] for r in rec_g] == [r[0] for r in rec_w], "return codes"
    for i, (g, w) in enumerate(zip(rec_g, rec_w)):
        for name, a, b in zip(("code", "state", "last", "ap_t", "ap_ch", "heralds_all"), g, w):
            np.testing.assert_array_equal(a, b, err_msg="call %d: %s" % (i, name))
    for a, b in zip(out_g, out_w):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


MODES = (K.MODE_NONE, K.MODE_EVERY, K.MODE_CONDITIONAL)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", range(40))
def test_kernel_matches_the_reference(seed, mode):
    c = random_case(np.random.default_rng([seed, mode]), mode)
    assert_same(drive(K, c), drive(Ref(), c))


def test_the_random_cases_reach_every_return_and_buffer_limit():
    """(the comparison above only means something if the cases stop the kernel in every way)"""
    codes = {}
    hall_full = 0
    for seed in range(40):
        for mode in MODES:
            c = random_case(np.random.default_rng([seed, mode]), mode)
            record, out = drive(K, c)
            for r in record:
                codes[r[0]] = codes.get(r[0], 0) + 1
                hall_full += r[0] == K.OUT_FULL and r[5].shape[0] == c["hall_cap"]
    assert codes.get(K.HERALD, 0) > 20 and codes.get(K.OUT_FULL, 0) > 100 and codes.get(K.DONE, 0) == 120
    assert hall_full > 10


@pytest.mark.parametrize("seed", range(6))
def test_output_full_anywhere_changes_nothing(seed):
    """Every initial output size (so the kernel stops for room before every tag it can write) gives the tags
    and herald rows of one call with ample room, and the reference's states.  (No afterpulses: each call draws
    them from a fresh random state, so they depend on where the calls split.)"""
    rng = np.random.default_rng([seed, 99])
    for _ in range(100):  # a case with some tags and heralds
        c = random_case(rng, K.MODE_CONDITIONAL if seed % 2 else K.MODE_EVERY)
        c.update(hall_cap=1000, ap_prob=0.0, burst_prob=0.0)
        record, ample = drive(K, c, out_cap=100000)
        ample_heralds = np.concatenate([r[5] for r in record])
        if ample[0].size >= 30 and ample_heralds.shape[0] >= 2:
            break
    else:
        raise AssertionError("no rich case")
    for cap in range(1, ample[0].size + 4):
        got = drive(K, c, out_cap=cap)
        np.testing.assert_array_equal(np.concatenate([r[5] for r in got[0]]), ample_heralds)
        for a, b in zip(got[1], ample):
            np.testing.assert_array_equal(a, b)
        if cap % 5 == 0:
            assert_same(got, drive(Ref(), c, out_cap=cap))


def _one_lab(**kw):
    """A hand-built case: channels 0-2 are plain (no dead time, not BSM), 3-6 BSM detectors."""
    c = dict(ct=np.zeros(0, np.int64), cc=np.zeros(0, np.int32), cs=np.zeros(0, np.int8), ca=np.zeros(0, np.int64),
             dt=np.zeros(0, np.int64), dc=np.zeros(0, np.int32), rt=np.zeros(0, np.int64), rch=np.zeros(0, np.int32),
             rsrc=np.zeros(0, np.int8), ap_cap=4, dead=np.array([0, 0, 0, 5, 5, 5, 5, 0], np.int64),
             is_det=np.array([0, 0, 0, 1, 1, 1, 1, 0], np.bool_), is_bsm=np.array([0, 0, 0, 1, 1, 1, 1, 0], np.bool_),
             arm=np.array([0, 0, 0, 0, 0, 1, 1, 0] + [0] * 8, np.int64),
             pol=np.array([0, 0, 0, 0, 1, 0, 1, 0] + [0] * 8, np.int64), pat_on=np.ones(4, np.bool_), t0=0, T=100,
             ws=10, we=40, on=1, period_n=1, mode=K.MODE_CONDITIONAL, block_end=10000, ap_prob=0.0, ap_tau=1.0,
             burst_prob=0.0, burst_size=1, burst_tau=1.0, out_cap=1000, hall_cap=100, pause=0, seed=1)
    c.update(kw)
    return c


def test_equal_times_go_candidate_dark_readout():
    c = _one_lab(ct=np.array([50], np.int64), cc=np.array([0], np.int32), cs=np.array([1], np.int8),
                 ca=np.array([0], np.int64), dt=np.array([50], np.int64), dc=np.array([1], np.int32),
                 rt=np.array([50], np.int64), rch=np.array([2], np.int32), rsrc=np.array([K.SRC_READY], np.int8))
    _, (t, ch, src) = drive(K, c)
    assert t.tolist() == [50, 50, 50]
    assert ch.tolist() == [0, 1, 2]
    assert src.tolist() == [1, K.SRC_DARK, K.SRC_READY]


def test_two_clicks_in_a_window_herald_and_the_sync_follows_them():
    # psi+: same arm, other polarisation (channels 3, 4); each click's conditional sync is the next tick
    c = _one_lab(ct=np.array([20, 30], np.int64), cc=np.array([3, 4], np.int32), cs=np.array([1, 2], np.int8),
                 ca=np.array([0, 0], np.int64))
    record, (t, ch, src) = drive(K, c)
    assert [r[0] for r in record] == [K.HERALD, K.DONE]
    assert record[0][1][K.S_H_PATTERN] == K.PATTERN_PSI_PLUS
    assert t.tolist() == [20, 30, 100] and ch.tolist() == [3, 4, SYNC_CH]
    row = record[0][5][0]
    assert dict(zip(K.HALL_COLS, row.tolist())) == dict(attempt=0, t1=20, t2=30, ch1=3, ch2=4, src1=1, src2=2,
                                                       nclicks=2, pattern=K.PATTERN_PSI_PLUS, gated=0, time=30)


def test_three_clicks_are_one_group_of_no_pattern():
    c = _one_lab(ct=np.array([15, 20, 30], np.int64), cc=np.array([3, 5, 4], np.int32), cs=np.ones(3, np.int8),
                 ca=np.zeros(3, np.int64))
    record, (t, _, _) = drive(K, c)
    assert [r[0] for r in record] == [K.DONE]
    row = dict(zip(K.HALL_COLS, record[0][5][0].tolist()))
    assert (row["nclicks"], row["pattern"], row["t1"], row["t2"], row["time"]) == (3, K.PATTERN_OTHER, 15, 20, 30)
    assert t.tolist() == [15, 20, 30, 100]


def test_sync_waits_for_an_earlier_afterpulse_and_the_block_end_drops_it():
    # the afterpulse (certain, tau ~ 0) lands at 25 + dead 5 = 30, before the click's sync tick at 100
    c = _one_lab(ct=np.array([25], np.int64), cc=np.array([3], np.int32), cs=np.ones(1, np.int8),
                 ca=np.zeros(1, np.int64), ap_prob=1.0, ap_tau=1e-9)
    _, (t, _, src) = drive(K, c)
    assert t.tolist() == [25, 30, 100]
    assert src.tolist() == [1, K.SRC_AFTERPULSE, K.SRC_SYNC]
    # a block ending between the click and its tick keeps the tick pending for the next block
    record, (t, _, _) = drive(K, dict(c, block_end=90))
    assert t.tolist() == [25, 30] and record[-1][1][K.S_SYNC_PEND] == 1


@pytest.mark.parametrize("T", [19230769, 1, 3, 2000, 2047, 2048])
def test_divmod_is_exact_below_its_limit(T):
    rng = np.random.default_rng(T)
    lim = int(K._quot_limit(np.int64(T)))
    assert lim == min(T << 51, int(K.BIG))
    n = np.concatenate([rng.integers(0, lim, 2000), [0, 1, T - 1, T, lim - 1, 3 * 10**17 % lim, 2**53 - 1,
                                                      2**53 + 1]])
    for v in n.tolist():
        v %= lim
        assert K._divmod_any(np.int64(v), np.int64(T), np.int64(lim)) == divmod(v, T)
    # the simulator's times (up to ~3e17 ps with T ~ 2e7 ps) stay far below the limit
    assert 3 * 10**17 // 19230769 < 2**51
