"""Generation of both labs' tag streams, block by block (see :mod:`timetag.simulator` for the physics).

A block is a whole number of burst periods.  For a block we draw (numba) only
the attempts in which at least one photon was detected (geometric gaps between
them), the photons of those attempts, and the dark counts as one Poisson
process (exponential gaps: already in time order, no sort); the event kernel
then merges these sorted streams with the read-out tags and applies dead time,
afterpulses, the sync clock and the BSM logic.  A herald interrupts the kernel:
the round is drawn here (inputs, atom outcomes, read-out photons), the read-out
pause is set, and the kernel resumes.

Throughput: all per-tag work is in numba loops writing into arrays reused from
block to block (fresh memory is slow to first-touch); Python work is per block
or per round.  The independent draws of a block (attempt photons, dark counts)
come from their own random stream and are made one block ahead on a worker
thread (nogil kernels) while this thread runs the sequential kernel and writes
the previous block: two buffer sets alternate, so memory stays flat and the
output is the same whatever the timing of the two threads.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .. import interrupts
from ..constants import Pattern
from . import draws, kernel as K
from .fastrng import new_state
from .output import LabOutput
from .rounddraws import RoundDraws
from .params import (ALICE_BSM, ALICE_READY, ALICE_SETTINGS, ALICE_SYNC, ALPHA_DEG, BETA_DEG, BOB_READY,
                     BOB_SETTINGS, BOB_SPD, SimParams, derived)
from .truth import TRUTH_DTYPE, HERALD_ALL_DTYPE

_ARM = np.zeros(16, np.int64)
_POL = np.zeros(16, np.int64)
for _c, _a, _p in zip(ALICE_BSM, (0, 0, 1, 1), (0, 1, 0, 1)):
    _ARM[_c], _POL[_c] = _a, _p
_ALICE_BSM = np.asarray(ALICE_BSM, np.int32)

STATE_PSI_PLUS, STATE_PSI_MINUS, STATE_NOISE = 1, 2, 0
_NO_PHOTONS = (np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros(0, np.int64), 0)

# events per generation block: larger blocks mean fewer hand-overs between the two threads (each costs a
# scheduler wake-up on a loaded machine), smaller ones less memory (~60 B per event over all buffers)
BLOCK_EVENTS = 150_000

_WORKERS: dict[str, ThreadPoolExecutor] = {}


def single_worker(name: str) -> ThreadPoolExecutor:
    """The one worker thread called ``name`` (shared by every run of this process, so the work handed to it runs
    in the order it was handed over; nothing to shut down: a run waits for its own work)."""
    if name not in _WORKERS:
        _WORKERS[name] = ThreadPoolExecutor(1, thread_name_prefix=name)
    return _WORKERS[name]


class _Bufs:
    """Parallel arrays reused from block to block (fresh memory is slow to first-touch)."""

    def __init__(self, *dtypes):
        self.dtypes = dtypes
        self.arrs = tuple(np.empty(0, dt) for dt in dtypes)

    def ensure(self, n: int):
        if self.arrs[0].size < n:
            self.arrs = tuple(np.empty(int(n * 1.25) + 64, dt) for dt in self.dtypes)
        return self.arrs

    def grow(self, keep: int, n: int):
        """Larger arrays holding the first ``keep`` elements of the old ones."""
        new = tuple(np.empty(n, dt) for dt in self.dtypes)
        for o, a in zip(new, self.arrs):
            o[:keep] = a[:keep]
        self.arrs = new
        return new


class _DrawBufs:
    """One set of buffers for a block's independent draws (two sets alternate between the threads)."""

    def __init__(self):
        self.ph = _Bufs(np.int64, np.int32, np.int8, np.int64)
        self.darkA = _Bufs(np.int64, np.int32)
        self.darkB = _Bufs(np.int64, np.int32)


@dataclass
class _LabGen:
    """Kernel-side state of one lab."""

    st: np.ndarray
    last: np.ndarray
    dead: np.ndarray
    is_det: np.ndarray
    is_bsm: np.ndarray
    ap_t: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    ap_ch: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int32))
    rnd_t: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rnd_ch: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    rnd_src: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    # the kernel's output, two sets alternating block by block (the output stage may still read the other)
    outs: tuple = field(default_factory=lambda: tuple(_Bufs(np.int64, np.int32, np.int8) for _ in range(2)))

    def add_readout(self, head_t, head_ch, head_src, fluo_t, fluo_ch, n_atom: int):
        """Queue a round's read-out tags (all later than anything the kernel has emitted): its ready / setting
        tags and its fluorescence, the first ``n_atom`` the atom's."""
        self.rnd_t, self.rnd_ch, self.rnd_src = K.queue_readout(
            self.rnd_t, self.rnd_ch, self.rnd_src, int(self.st[K.S_RI]), np.array(head_t, np.int64),
            np.array(head_ch, np.int32), np.array(head_src, np.int8), fluo_t, fluo_ch, n_atom, K.SRC_FLUO_ATOM,
            K.SRC_FLUO_STRAY)
        self.st[K.S_RI] = 0


@dataclass
class _NewRound:
    """A round drawn at a herald, for the output stage to count and complete."""

    rid: int
    row: np.ndarray
    window_a: tuple[int, int]    # Alice's fluorescence window, her local time
    window_b: tuple[int, int]    # Bob's, his local time
    lost_range: tuple            # raw-time ranges checked for lost data: Alice lo, hi, Bob lo, hi


@dataclass
class _BlockOut:
    """One block's kernel output (each lab's ``(t, ch, src)``, true time) and the rounds drawn in it."""

    alice: tuple
    bob: tuple
    bound: int | None            # every later block's tags are at or after this true time (None: the last block)
    rounds: list


def _lab_gen(nch, det_channels, bsm_channels, dead_ps) -> _LabGen:
    st = K.new_state()
    last = np.full(nch, -K.BIG, np.int64)
    dead = np.zeros(nch, np.int64)
    is_det = np.zeros(nch, np.bool_)
    is_bsm = np.zeros(nch, np.bool_)
    for c in det_channels:
        dead[c] = dead_ps
        is_det[c] = True
    for c in bsm_channels:
        is_bsm[c] = True
    return _LabGen(st, last, dead, is_det, is_bsm)


def _before(darks, t_end: int):
    """Dark counts (time-ordered) before ``t_end``: a Poisson process cut to a shorter interval is one."""
    t, ch = darks
    n = int(np.searchsorted(t, t_end, side="left"))
    return t[:n], ch[:n]


class LinkSimulator:
    """Streaming generator of both labs' recorded tags plus the ground truth.

    ``stream(slice_ps)`` yields ``(alice_chunk, bob_chunk, truth_rows)`` in time
    order; with ``n_rounds`` set, generation stops attempting after that many
    rounds and ends once their read-out windows are complete.  With
    ``reuse_buffers`` the yielded chunks are views of buffers that the next step
    overwrites (for a consumer that writes each chunk out at once).
    """

    def __init__(self, params: SimParams, seed: int, n_rounds: int | None = None, max_block_ps: int = 600 * 10**12,
                 reuse_buffers: bool = False):
        params.validate()
        self.p = p = params
        self.d = derived(p)
        self.seed = int(seed)
        self.reuse_buffers = bool(reuse_buffers)  # yielded chunks are overwritten by the next step: write at once
        ss = np.random.SeedSequence(self.seed)
        s_main, s_ova, s_ovb, s_draws, s_rounds = ss.spawn(5)
        self.rng = np.random.Generator(np.random.PCG64(s_main))
        # the block draws' own stream: consumed block by block in order on the worker thread, so a run stays
        # a pure function of its seed
        self.rng_draws = np.random.Generator(np.random.PCG64(s_draws))
        self.n_rounds = n_rounds
        self.T = int(p.attempt_period_ps)
        self.t0 = int(p.start_time_ps)
        self.on = int(p.burst_attempts)
        self.L = int(p.burst_attempts + p.gap_attempts)
        self.mode = K.MODE_EVERY if p.sync_mode == "every" else K.MODE_CONDITIONAL
        self.ws, self.we = (int(x) for x in p.acceptance_window_ps)
        self.eta = self.d["eta"]
        self.sigma_pulse = p.pulse_fwhm_ps / (2 * math.sqrt(2 * math.log(2)))
        self.alive_bsm = np.array([c for c in ALICE_BSM if c not in p.dead_channels_alice], np.int64)
        self.alive_mask = np.zeros(16, np.bool_)
        self.alive_mask[self.alive_bsm] = True
        self.pat_on = np.zeros(4, np.bool_)
        for name in p.herald_patterns:
            self.pat_on[{"psi+": 1, "psi-": 2}[name]] = True
        self.A = _lab_gen(11, self.alive_bsm, ALICE_BSM, p.dead_time_ps)
        self.A.st[K.S_NEXT_TICK] = K.first_emitted(0, self.A.st, self.on, self.L)
        bob_det = [] if BOB_SPD in p.dead_channels_bob else [BOB_SPD]
        self.B = _lab_gen(5, bob_det, [], p.dead_time_ps)
        self._round_draws = RoundDraws(p, np.random.Generator(np.random.PCG64(s_rounds)), bool(bob_det))
        delays_a = {c: int(p.delays_alice[c - 1]) for c in range(1, 11)}
        delays_b = {c: int(p.delays_bob[c - 1]) for c in range(1, 5)}
        self.outA = LabOutput(delays_a, ALICE_BSM, 0, 0.0, p.overflow_rate_hz, p.overflow_duration_ps,
                              np.random.Generator(np.random.PCG64(s_ova)))
        self.outB = LabOutput(delays_b, (BOB_SPD,), p.bob_clock_offset_ps, p.bob_clock_drift_ppm,
                              p.overflow_rate_hz, p.overflow_duration_ps, np.random.Generator(np.random.PCG64(s_ovb)))
        self.delays_a, self.delays_b = delays_a, delays_b
        # block size: BLOCK_EVENTS expected events, whole burst periods, bounded in simulated time
        p_atom = (1 - p.double_emission_prob) * self.eta + p.double_emission_prob * (1 - (1 - self.eta) ** 2)
        self.p_atom = p_atom
        self.p_any = 1 - (1 - p_atom) ** 2
        period_s = self.L * self.T * 1e-12
        dark_total = sum(p.dark_rate_hz_alice) + p.dark_rate_hz_bob
        per_period = self.on * (2.2 * self.p_any + (1.0 if self.mode == K.MODE_EVERY else 0.0)) \
            + 2 * dark_total * period_s + 1e-9
        self.block_periods = int(max(1, min(BLOCK_EVENTS / per_period, max_block_ps / (self.L * self.T))))
        self.next_att = 0            # first attempt of the next block
        self.t_block = self.t0       # start time of the next block
        self.rounds = 0
        self.end_time = None         # set when the last round has been drawn
        self.finished = False
        self._truth: dict[int, np.ndarray] = {}
        self._truth_need: dict[int, int] = {}
        self._lost_range: dict[int, tuple] = {}
        self.heralds_all: list[np.ndarray] = []
        self._hall = np.zeros((4096, len(K.HALL_COLS)), np.int64)
        self._draw_bufs = (_DrawBufs(), _DrawBufs())
        self._pending = None  # the next block's draws (a Future) while the worker thread makes them
        self._new_rounds: list[_NewRound] = []  # the rounds drawn in the block the kernels are running
        self._rates_a = {c: r for c, r in zip(ALICE_BSM, p.dark_rate_hz_alice) if c in self.alive_bsm and r > 0}
        self._rates_b = {} if BOB_SPD in p.dead_channels_bob or p.dark_rate_hz_bob <= 0 else \
            {BOB_SPD: p.dark_rate_hz_bob}
        self.stats = {"blocks": 0, "attempt_candidates": 0, "heralds_psi_plus": 0}

    # ------------------------------------------------------------------
    def _block_draws(self, n0: int, n1: int, bufs: _DrawBufs):
        """Everything of block [n0, n1) that does not depend on the sequential kernel: the attempts' photon
        clicks and both labs' dark counts over the whole block (a shorter final block cuts them).  Runs on the
        worker thread; uses only ``rng_draws`` and ``bufs``."""
        t_lo, t_hi = self.t0 + n0 * self.T, self.t0 + n1 * self.T
        ph, k = self._attempt_photons(n0, n1, bufs)
        return (ph, k, self._darks(bufs.darkA, t_lo, t_hi, self._rates_a),
                self._darks(bufs.darkB, t_lo, t_hi, self._rates_b))

    def _attempt_photons(self, n0: int, n1: int, bufs: _DrawBufs):
        """Photon clicks of the attempts [n0, n1) that had at least one detection (n0, n1 on burst boundaries),
        and the number of such attempts."""
        p = self.p
        n_act = (n1 - n0) // self.L * self.on
        eta, pd = self.eta, p.double_emission_prob
        w_double = pd * (1 - (1 - eta) ** 2)
        frac_double = w_double / ((1 - pd) * eta + w_double)
        rs = new_state(self.rng_draws)
        expect = n_act * self.p_any
        cap = int(2 * (expect + 8 * math.sqrt(expect + 1) + 64))
        while True:
            out_t, out_ch, out_src, out_att = bufs.ph.ensure(cap)
            n, k = draws.attempt_photons(n0, n_act, self.on, self.L, self.p_any, self.p_atom, frac_double,
                                         eta / (2 - eta), float(p.pulse_center_ps), self.sigma_pulse,
                                         p.pulse_center_ps + p.pulse_fwhm_ps / 2, float(p.lifetime_ps),
                                         p.hom_visibility, float(p.jitter_ps), self.t0, self.T, self.alive_mask,
                                         out_t, out_ch, out_src, out_att, rs.copy())
            if n >= 0:
                return (out_t, out_ch, out_src, out_att, n), k
            cap = 2 * out_t.size

    def _darks(self, buf: "_Bufs", t_lo: int, t_hi: int, rates: dict[int, float]):
        """Dark counts of ``rates`` (Hz per channel) on [t_lo, t_hi), time-ordered, in ``buf``."""
        total = float(sum(rates.values()))
        chans = np.array(list(rates) or [0], np.int32)
        cum = np.cumsum(list(rates.values()) or [1.0]) / (total if total > 0 else 1.0)
        rs = new_state(self.rng_draws)
        expect = total * 1e-12 * (t_hi - t_lo)
        cap = int(expect + 8 * math.sqrt(expect + 1) + 64)
        while True:
            out = buf.ensure(cap)
            n = draws.dark_counts(t_lo, t_hi, total * 1e-12, cum, chans, rs.copy(), *out)
            if n >= 0:
                return out[0][:n], out[1][:n]
            cap *= 2

    def _run_lab(self, lab: _LabGen, ph, darks, block_end: int, parity: int, alice: bool):
        ct, cc, cs, ca, n_ph = ph
        ct, cc, cs, ca = ct[:n_ph], cc[:n_ph], cs[:n_ph], ca[:n_ph]
        dt, dc = darks
        need = int(ct.size + dt.size + lab.rnd_t.size + 4096 +
                   (min((block_end - self.t_block) // self.T + 2, 10**7) if alice and self.mode == K.MODE_EVERY else 0))
        bufs = lab.outs[parity]
        out_t, out_ch, out_src = bufs.ensure(need)
        lab.st[K.S_CI] = 0
        lab.st[K.S_DI] = 0
        lab.st[K.S_NOUT] = 0
        p = self.p
        while True:
            code = K.run(ct, cc, cs, ca, dt, dc, lab.rnd_t, lab.rnd_ch, lab.rnd_src, lab.rnd_t.size,
                         lab.ap_t, lab.ap_ch, lab.last, lab.dead, lab.is_det, lab.is_bsm, _ARM, _POL, self.pat_on,
                         self.t0, self.T, self.ws, self.we, self.on, self.L, ALICE_SYNC,
                         self.mode if alice else K.MODE_NONE, block_end,
                         p.afterpulse_prob, p.afterpulse_tau_ps, p.afterpulse_burst_prob, p.afterpulse_burst_size,
                         p.afterpulse_burst_tau_ps, lab.st, out_t, out_ch, out_src, self._hall, new_state(self.rng))
            nh = int(lab.st[K.S_NHALL])
            if nh:
                self.heralds_all.append(self._hall[:nh].copy())
                lab.st[K.S_NHALL] = 0
            if code == K.HERALD:
                self._herald()
            elif code == K.OUT_FULL:
                if lab.st[K.S_NOUT] + 2 >= out_t.size:  # (else the herald list was full: flushed above)
                    # the kernel stopped before writing: keep what it wrote, continue in a larger buffer
                    out_t, out_ch, out_src = bufs.grow(int(lab.st[K.S_NOUT]), 2 * out_t.size)
            else:
                break
        ri = int(lab.st[K.S_RI])
        lab.rnd_t, lab.rnd_ch, lab.rnd_src = lab.rnd_t[ri:], lab.rnd_ch[ri:], lab.rnd_src[ri:]
        lab.st[K.S_RI] = 0
        n = int(lab.st[K.S_NOUT])
        lab.st[K.S_NOUT] = 0
        return out_t[:n], out_ch[:n], out_src[:n]

    def _herald(self):
        """A herald the hardware announces: draw the round and pause the attempts for the read-out."""
        p, st = self.p, self.A.st
        att = int(st[K.S_H_ATT])
        t1, t2 = int(st[K.S_H_T1]), int(st[K.S_H_T2])
        th = max(t1, t2)
        pattern = int(st[K.S_H_PATTERN])
        srcs = {int(st[K.S_H_SRC1]), int(st[K.S_H_SRC2])}
        signal = srcs == {K.SRC_A_LAST, K.SRC_B_LAST}
        rid = self.rounds
        self.rounds += 1
        self.stats["heralds_psi_plus"] += pattern == Pattern.PSI_PLUS
        last_round = self.n_rounds is not None and self.rounds >= self.n_rounds
        hi = K.BIG if last_round else -(-(th + p.readout_pause_ps - self.t0) // self.T)
        K.apply_pause(st, att + 1, hi, self.on, self.L, self.mode)
        if last_round:
            st[K.S_STOP] = 1
        # inputs and the joint atomic outcome
        r = self._round_draws.next()
        x = int(r["x"] * 4)
        y = int(r["y"] * 2)
        al, be = math.radians(ALPHA_DEG[x]), math.radians(BETA_DEG[y])
        state = (STATE_PSI_PLUS if pattern == Pattern.PSI_PLUS else STATE_PSI_MINUS) if signal else STATE_NOISE
        if state == STATE_PSI_PLUS:
            E = -p.state_visibility * math.cos(2 * (al + be))
        elif state == STATE_PSI_MINUS:
            E = -p.state_visibility * math.cos(2 * (al - be))
        else:
            E = 0.0
        qa = int(r["qa"] < 0.5)
        qb = qa if r["qb"] < (1 + E) / 2 else 1 - qa
        a = self._presence(qa, r["ion_a"], r["loss_a"])
        b = self._presence(qb, r["ion_b"], r["loss_b"])
        row = np.zeros((), TRUTH_DTYPE)
        row["index"], row["attempt"], row["herald_time"], row["herald_t1"] = rid, att, th, min(t1, t2)
        row["pattern"], row["bell_state"], row["signal"] = pattern, state, signal
        row["x"], row["y"], row["a_quantum"], row["b_quantum"], row["a"], row["b"] = x, y, qa, qb, a, b
        f0, f1 = p.fluorescence_window_ps
        # Alice: ready, setting tag(s), fluorescence on the live BSM detectors
        tr_a = th + p.ready_latency_ps + int(round(p.ready_jitter_ps * r["ready_jitter_a"]))
        ready_a = r["ready_a"] >= p.alice_ready_missing_prob
        nsig = r["fluo_atom_a"] if a else 0
        n = nsig + r["fluo_stray_a"]
        u = self._round_draws.uniforms(2 * n)
        tf = tr_a + f0 + (u[:n] * (f1 - f0)).astype(np.int64)
        cf = _ALICE_BSM[(u[n:] * 4).astype(np.intp)]
        alive = self.alive_mask[cf]
        kept_atom = int(np.count_nonzero(alive[:nsig]))
        row["alice_signal_photons"] = kept_atom
        ns = self._readout(self.A, tr_a, ready_a, ALICE_READY, ALICE_SETTINGS, x, r, "a", tf[alive], cf[alive],
                           kept_atom)
        row["alice_ready_present"], row["alice_setting_tags"] = ready_a, ns
        row["alice_time"] = tr_a + self.delays_a[ALICE_READY]
        # Bob (generated in Alice's time; his clock is applied on output)
        tr_b = th + p.link_delay_ps + int(round(p.ready_jitter_ps * r["ready_jitter_b"]))
        ready_b = r["ready_b"] >= p.bob_ready_missing_prob
        nsig = r["fluo_atom_b"] if b else 0
        n = nsig + r["fluo_stray_b"]
        tf = tr_b + f0 + (self._round_draws.uniforms(n) * (f1 - f0)).astype(np.int64)
        row["bob_signal_photons"] = nsig
        ns = self._readout(self.B, tr_b, ready_b, BOB_READY, BOB_SETTINGS, y, r, "b", tf,
                           np.full(n, BOB_SPD, np.int32), nsig)
        row["bob_ready_present"], row["bob_setting_tags"] = ready_b, ns
        lb = self.outB.local_scalar(tr_b)
        row["bob_time"] = lb + self.delays_b[BOB_READY]
        if last_round:
            self.end_time = max(tr_a, tr_b) + f1 + 10**9
        row["alice_lost"] = False
        row["bob_lost"] = False
        # Bob's window is in his clock: local ready + window (drift over 10 ms is below a picosecond at 1 ppm... ~10 ps);
        # the lost-data check range (raw, generous): from the herald to the end of the later read-out window
        self._new_rounds.append(_NewRound(rid, row, (tr_a + f0, tr_a + f1), (lb + f0, lb + f1),
                                          (th - 10**6, tr_a + f1 + 10**6, lb - 10**6, lb + f1 + 10**6)))

    def _presence(self, q: int, u_ion: float, u_loss: float) -> int:
        """The atom after state-selective ionisation: 1 = still trapped (reads 'up')."""
        p = self.p
        present = 1 if q == 1 else int(u_ion >= p.ionisation_efficiency)
        if present and u_loss < p.atom_loss_prob:
            present = 0
        return present

    def _readout(self, lab: _LabGen, t_ready: int, ready_present: bool, ready_ch: int, setting_chs, value: int,
                 r: dict, side: str, tf, cf, n_atom: int) -> int:
        """Queue one lab's read-out tags (its ready tag if present, setting tag(s) after the ready time, the
        fluorescence ``tf``/``cf``, the atom's first); returns the number of setting tags."""
        p = self.p
        head_t, head_c = ([t_ready], [ready_ch]) if ready_present else ([], [])
        ns = 0
        if r["set_miss_" + side] >= p.setting_missing_prob:
            t = t_ready + p.setting_delay_ps + int(round(p.setting_jitter_ps * r["set_jitter_" + side]))
            head_t.append(t)
            head_c.append(setting_chs[value])
            ns = 1
            if r["set_double_" + side] < p.setting_double_prob:
                other = [c for c in setting_chs if c != setting_chs[value]]
                head_t.append(t + p.setting_double_gap_ps)
                head_c.append(other[int(r["set_other_" + side] * len(other))])
                ns = 2
        head_s = [K.SRC_READY] * ready_present + [K.SRC_SETTING] * ns
        lab.add_readout(head_t, head_c, head_s, tf, cf, n_atom)
        return ns

    # ------------------------------------------------------------------
    def step(self):
        """Generate one block; returns (alice_chunk, bob_chunk, finished truth rows)."""
        return self._emit(self._kernels())

    def stream_into(self, write_a, write_b):
        """Generate every block, handing each lab's chunk to ``write_a`` / ``write_b`` on an output thread
        while this thread runs the next block's kernels; yields ``(alice tags, bob tags, truth rows)`` per
        block written, in order.  Closing the generator (or an error) waits for the block in flight, so the
        writers are idle once it has returned."""
        pending = None
        try:
            while not self.finished:
                out = self._kernels()
                if pending is not None:
                    yield interrupts.result(pending)
                # (the kernels of the block after this one write into the buffers of the one before: written by now)
                pending = single_worker("timetag-sim-output").submit(self._emit_into, out, write_a, write_b)
            if pending is not None:
                yield interrupts.result(pending)
        finally:
            if pending is not None:
                interrupts.wait_quietly(pending)

    def _emit_into(self, out: _BlockOut, write_a, write_b):
        ca, cb, rows = self._emit(out)
        write_a(ca)
        write_b(cb)
        return len(ca), len(cb), rows

    def _kernels(self) -> _BlockOut:
        """Run both labs' kernels over the next block (heralds draw their rounds on the way)."""
        n0 = self.next_att
        n1 = n0 + self.block_periods * self.L
        t_lo = self.t_block
        t_hi = self.t0 + n1 * self.T
        final = False
        if self.end_time is not None and t_hi >= self.end_time:
            t_hi = max(self.end_time, t_lo)
            final = True
        if self._pending is None:
            self._pending = single_worker("timetag-sim-draws").submit(self._block_draws, n0, n1, self._draw_bufs[self.stats["blocks"] % 2])
        ph, k, darks, bdarks = interrupts.result(self._pending)
        # the other buffer set is free again (its block has been written): draw the next block meanwhile
        self._pending = None if final else single_worker("timetag-sim-draws").submit(self._block_draws, n1, n1 + (n1 - n0),
                                                            self._draw_bufs[(self.stats["blocks"] + 1) % 2])
        if self.end_time is None:
            self.stats["attempt_candidates"] += k
        else:  # the attempts after the last round are blanked: their photons are never recorded
            ph = _NO_PHOTONS
        if final:
            darks, bdarks = _before(darks, t_hi), _before(bdarks, t_hi)
        parity = self.stats["blocks"] % 2
        self._new_rounds = []
        a = self._run_lab(self.A, ph, darks, t_hi, parity, alice=True)
        if self.end_time is not None and not final and t_hi >= self.end_time:
            final = True  # the last round was drawn in this block and its read-out ends inside it
        b = self._run_lab(self.B, _NO_PHOTONS, bdarks, t_hi, parity, alice=False)
        self.next_att = n1
        self.t_block = t_hi
        self.stats["blocks"] += 1
        if final:
            self.finished = True
        return _BlockOut(a, b, None if final else t_hi, self._new_rounds)

    def _emit(self, out: _BlockOut):
        """The recorded streams of a block's kernel output, and the truth rows it completes (the output
        stage: owns both labs' outputs and the open rounds)."""
        for r in out.rounds:
            self.outA.add_window(r.rid, *r.window_a)
            self.outB.add_window(r.rid, *r.window_b)
            self._truth[r.rid] = r.row
            self._truth_need[r.rid] = 2
            self._lost_range[r.rid] = r.lost_range
        ca, done_a = self.outA.push(*out.alice, out.bound, reuse=self.reuse_buffers)
        cb, done_b = self.outB.push(*out.bob, out.bound, reuse=self.reuse_buffers)
        rows = self._collect(done_a, "alice_count") + self._collect(done_b, "bob_count")
        rows.sort(key=lambda r: int(r["index"]))
        return ca, cb, rows

    def _collect(self, done, field_name):
        rows = []
        for rid, count in done:
            row = self._truth[rid]
            row[field_name] = count
            self._truth_need[rid] -= 1
            if self._truth_need[rid] == 0:
                self._finish_row(rid, row)
                rows.append(row)
                del self._truth[rid]
                del self._truth_need[rid]
        return rows

    def _finish_row(self, rid, row):
        a_lo, a_hi, b_lo, b_hi = self._lost_range.pop(rid)
        row["alice_lost"] = self.outA.lost_overlaps(a_lo, a_hi + self.outA.max_delay)
        row["bob_lost"] = self.outB.lost_overlaps(b_lo, b_hi + self.outB.max_delay)
        ta, tb = self.thresholds
        row["alice_output"] = row["alice_count"] >= ta
        row["bob_output"] = row["bob_count"] >= tb

    @property
    def thresholds(self) -> tuple[int, int]:
        if not hasattr(self, "_thr"):
            from .analytic import expected_stats

            e = expected_stats(self.p)
            self._thr = (e["threshold_alice"], e["threshold_bob"])
        return self._thr

    def stream(self, slice_ps: int | None = None):
        """Yield ``(alice_chunk, bob_chunk, truth_rows)`` per block, or per ``slice_ps`` of Alice's time."""
        if slice_ps is None:
            while not self.finished:
                yield self.step()
            return
        from .slicing import Slicer

        yield from Slicer(self, int(slice_ps))

    def heralds_all_array(self) -> np.ndarray:
        if not self.heralds_all:
            return np.zeros(0, HERALD_ALL_DTYPE)
        h = np.concatenate(self.heralds_all)
        out = np.zeros(h.shape[0], HERALD_ALL_DTYPE)
        for i, name in enumerate(K.HALL_COLS):
            out[name] = h[:, i]
        out["signal"] = ((out["src1"] == K.SRC_A_LAST) & (out["src2"] == K.SRC_B_LAST)) | \
                        ((out["src1"] == K.SRC_B_LAST) & (out["src2"] == K.SRC_A_LAST))
        out["signal"] &= out["nclicks"] == 2
        return out
