"""Distillation benchmark: measured efficiency f and frame error rate vs QBER, throughput of reconciliation and
privacy amplification (one core).  ``python benchmarks/bench_distill.py [--bits N] [--json]``.

``--simulated 1e6,1.5e6 [--two-party] [--preset lmu2022]``: instead, end to end on rounds-only simulated rounds
(:mod:`timetag.simulator.rounds_only`): generation time, then ``distill`` (one process, or the two-party form over
loopback TCP with HMAC) -- key length, time, measured f, S and QBER.

Per QBER (0.04, 0.06, 0.08): N random key bits for Alice, Bob's with i.i.d. errors at that QBER, frames planned
for the true QBER, reconciled in one process (:func:`timetag.distill.reconcile.reconcile_local`), three ways:
blind rounds with the layered decoder (the default), one-shot frames with the layered decoder, and one-shot frames
with ``ldpc.BpDecoder`` (the decoder before; the named baseline, measured interleaved in the same run).
f = (syndrome bits - punctured credit + revealed bits + 16-bit frame tags) / (bits in frames * h(Q)) (status
bits, 1 per frame per round, are in the transcript's leak but not in f).  Throughput = bits in frames / CPU time
of the whole reconciliation (syndromes, decoding, blind rounds; ``time.process_time``: one core, robust on a
shared machine; with ``--threads N`` it is the CPU time of all threads, and the wall-clock rate is printed next
to it).
PA: the Toeplitz hash against the previous method (FFT of the full linear length 2n + l) and one rfft.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import time

import numpy as np
from scipy import fft as sfft

from timetag.distill.amplify import toeplitz_hash
from timetag.distill.reconcile import h2, plan_frames, reconcile_local, resolve_family

MODES = {"blind": {"blind": True, "decoder": "layered"}, "one-shot": {"blind": False, "decoder": "layered"},
         "one-shot ldpc": {"blind": False, "decoder": "ldpc"}}


def reconcile_point(q, n_bits, seed=0, f_design=None, mode="blind", family="auto", threads=1):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n_bits, dtype=np.uint8)
    b = a ^ (rng.random(n_bits) < q).astype(np.uint8)
    m = MODES[mode]
    plan = plan_frames(n_bits, q, f_design, resolve_family(family, n_bits), blind=m["blind"])
    w0, t0 = time.perf_counter(), time.process_time()
    r = reconcile_local(a, b, plan, rng, decoder=m["decoder"], threads=threads)
    t1, w1 = time.process_time(), time.perf_counter()
    n_in = plan.frames * plan.key_bits
    good = r["ok"] & (r["corrected"] == a[:n_in].reshape(plan.frames, plan.key_bits)).all(axis=1)
    return {"qber": q, "mode": mode, "code": f"{plan.code}/{plan.n0}", "key_bits_per_frame": plan.key_bits,
            "frames": plan.frames,
            "f_design": plan.f_design, "f": (r["leak_syndromes"] + r["revealed_bits"] + r["tag_bits"]) / (n_in * h2(q)),
            "fer": float(1 - good.mean()), "undetected": int((r["ok"] & ~good).sum()), "rounds": r["rounds"],
            "tag_rejects": r["tag_rejects"],
            "iterations_per_frame": r["iterations"] / plan.frames, "mbit_s": n_in / (t1 - t0) / 1e6,
            "wall_mbit_s": n_in / (w1 - w0) / 1e6}


def design_point(q, n_key, seed=0, learn=True, family="auto"):
    """The run's design rule on ``n_key`` raw key bits with i.i.d. errors at ``q``: a disclosed sample (the protocol's
    size), frames designed for its estimate + 1 sigma -- all of them (``learn=False``, the rule before) or a first
    batch only, the rest for the error rate learned from the sample and the first batch's corrections (as
    :mod:`timetag.distill.party` does).  f = (syndromes - punctured credit + revealed + tags + error counts) /
    (bits in frames h(error rate in those bits)); FER over all frames; throughput as :func:`reconcile_point`."""
    from timetag.distill.party import default_sample_bits
    from timetag.distill.reconcile import count_leak, first_batch_frames, learned_qber
    rng = np.random.default_rng([seed, 7])
    a = rng.integers(0, 2, n_key, dtype=np.uint8)
    b = a ^ (rng.random(n_key) < q).astype(np.uint8)
    s = default_sample_bits(n_key)
    pos = rng.choice(n_key, s, replace=False)
    e_s = int(np.sum(a[pos] != b[pos]))
    q_hat = e_s / s
    q_design = min(0.2, max(q_hat + np.sqrt(max(q_hat, 0.005) * (1 - q_hat) / s), 0.005))
    keep = np.ones(n_key, bool)
    keep[pos] = False
    a, b = a[keep], b[keep]
    fam = resolve_family(family, len(a))
    whole = plan_frames(len(a), q_design, family=fam)
    f1 = first_batch_frames(whole.frames) if learn else 0
    plans = [plan_frames(f1 * whole.key_bits, q_design, family=fam) if f1 else whole]
    start = leak = frames = failed = in_frames = errors = rounds = iterations = 0
    designs = []
    t0 = time.process_time()
    while plans:
        plan = plans.pop()
        n = plan.frames * plan.key_bits
        r = reconcile_local(a[start:start + n], b[start:start + n], plan, rng)
        good = r["ok"] & (r["corrected"] == a[start:start + n].reshape(plan.frames, plan.key_bits)).all(axis=1)
        leak += r["leak_syndromes"] + r["revealed_bits"] + r["tag_bits"]
        frames, failed, rounds = frames + plan.frames, failed + int((~good).sum()), rounds + r["rounds"]
        iterations += r["iterations"]
        errors += int(np.sum(a[start:start + n] != b[start:start + n]))
        in_frames += n
        start += n
        designs.append(round(plan.design_qber, 4))
        if len(designs) == 1 and f1:
            ok_bits = int(r["ok"].sum()) * plan.key_bits
            leak += count_leak(ok_bits)
            q_next = learned_qber(int(r["nerr"].sum()) + e_s, ok_bits + s, plan.design_qber)
            nxt = plan_frames(len(a) - start, q_next, family=fam)
            if nxt.frames:
                plans.append(nxt)
    t1 = time.process_time()
    return {"qber": q, "learn": learn, "seed": seed, "family": fam, "sample_qber": q_hat, "designs": designs,
            "frames": frames,
            "failed": failed, "fer": failed / frames, "f": leak / (in_frames * h2(errors / in_frames)),
            "rounds": rounds, "iterations_per_frame": iterations / frames, "mbit_s": in_frames / (t1 - t0) / 1e6}


def _toeplitz_linear_size(a, t, l):
    """The previous PA (the baseline): FFTs of the full linear-convolution length."""
    n = len(a)
    size = sfft.next_fast_len(n + len(t) - 1, real=True)
    conv = sfft.irfft(sfft.rfft(a.astype(np.float64), size) * sfft.rfft(t.astype(np.float64), size), size)
    return (np.rint(conv[n - 1:n - 1 + l]).astype(np.int64) & 1).astype(np.uint8)


def pa_point(n, l, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    t = rng.integers(0, 2, n + l - 1, dtype=np.uint8)
    best = base = fft = 1e9
    for _ in range(3):
        t0 = time.process_time()
        k = toeplitz_hash(a, t, l)
        t1 = time.process_time()
        k0 = _toeplitz_linear_size(a, t, l)
        t2 = time.process_time()
        np.fft.rfft(a.astype(float), n + l)
        t3 = time.process_time()
        best, base, fft = min(best, t1 - t0), min(base, t2 - t1), min(fft, t3 - t2)
    assert np.array_equal(k, k0)
    return {"n": n, "l": l, "mbit_s": n / best / 1e6, "baseline_mbit_s": n / base / 1e6,
            "ratio_to_one_rfft": best / fft}


def simulated_point(n, preset="lmu2022", seed=1, two_party=False, folder=None):
    import tempfile
    import threading
    from pathlib import Path

    from timetag.distill import distill
    from timetag.distill.party import Options, run_over_socket
    from timetag.simulator import load_preset
    from timetag.simulator.rounds_only import simulate_rounds

    folder = Path(folder or tempfile.mkdtemp(prefix="bench_distill_"))
    t0 = time.perf_counter()
    sim = simulate_rounds(load_preset(preset), int(n), seed, folder / f"r{int(n)}", force=True)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    if two_party:
        psk, box, ready = bytes(range(32)), {}, threading.Event()

        def alice():
            box["a"] = run_over_socket("alice", sim.alice, "127.0.0.1:0", psk, Options(), seed=seed,
                                       on_listening=lambda h, p: (box.setdefault("port", p), ready.set()))
        th = threading.Thread(target=alice)
        th.start()
        ready.wait()
        rb = run_over_socket("bob", sim.bob, f"127.0.0.1:{box['port']}", psk, Options())
        th.join()
        rep, ra = rb.report, box["a"].report
        assert np.array_equal(box["a"].key, rb.key)
        rep.timings_s = {**ra.timings_s, **{"bob_" + k: v for k, v in rb.report.timings_s.items()}}
    else:
        rep = distill(sim.alice, sim.bob, seed=seed).report
        assert rep.keys_equal
    t_dist = time.perf_counter() - t0
    return {"rounds": int(n), "preset": preset, "two_party": two_party, "generate_s": t_gen,
            "expected_S": sim.stats["expected_S"], "expected_Q": sim.stats["expected_Q"], "S": rep.S,
            "qber_sample": rep.qber_sample, "qber_corrected": rep.qber_corrected, "key_rounds": rep.key_rounds,
            "frames": rep.frames, "frames_failed": rep.frames_failed, "f": rep.f_measured, "leak": rep.leak_total,
            "discarded": rep.discarded_bits, "bound": rep.bound, "final_length": rep.final_length,
            "auth_bits": rep.auth_bits, "net_length": rep.net_length, "distill_s": t_dist,
            "timings_s": rep.timings_s, "message": rep.message}


def run(quick: bool) -> list[dict]:
    """Rows for benchmarks/run.py: f, FER and throughput per QBER (blind, with the one-shot ldpc baseline), PA."""
    bits = 40_000 if quick else 400_000
    out = []
    modes = ["blind"] + (["one-shot ldpc"] if importlib.util.find_spec("ldpc") else [])
    for q in ((0.06,) if quick else (0.04, 0.06, 0.08)):
        rows = {m: reconcile_point(q, bits if m == "blind" else bits // 4, mode=m) for m in modes}
        r, base = rows["blind"], rows.get("one-shot ldpc")
        out.append({"name": f"reconciliation f at QBER {q}", "value": round(r["f"], 3), "unit": "f",
                    "baseline": f"FER {r['fer']:.3f} ({r['frames']} frames, {r['undetected']} undetected, "
                                f"{r['rounds']} blind rounds); " + (f"one-shot ldpc: f {base['f']:.3f}, FER "
                                                                    f"{base['fer']:.3f}" if base else "ldpc absent"),
                    "target": "f <= 1.15 at FER <= 1e-2 (issue 19)", "gross_regression": False})
        out.append({"name": f"reconciliation throughput at QBER {q}", "value": round(r["mbit_s"], 3),
                    "unit": "Mbit/s", "baseline": (f"one-shot ldpc {base['mbit_s']:.3f} Mbit/s" if base else
                                                   "ldpc absent"),
                    "target": ">= 1 Mbit/s (issue 19)", "gross_regression": False})
    for n in ((10**5,) if quick else (10**5, 10**6, 4 * 10**6)):
        p = pa_point(n, n // 4)
        out.append({"name": f"privacy amplification, {n:.0e} bits", "value": round(p["mbit_s"], 2),
                    "unit": "Mbit/s", "baseline": f"previous (linear-size FFT) {p['baseline_mbit_s']:.2f} Mbit/s; "
                                                  f"{p['ratio_to_one_rfft']:.1f} x one rfft of n + l",
                    "target": ">= 10 Mbit/s (issue 19)", "gross_regression": False})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", type=int, default=400_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--simulated", default=None, help="comma-separated round counts, e.g. 1e6,1.5e6")
    ap.add_argument("--two-party", action="store_true")
    ap.add_argument("--preset", default="lmu2022")
    ap.add_argument("--family", default="auto", help="code family: auto (by key length) or a version")
    ap.add_argument("--threads", type=int, default=1,
                    help="decode the frames of a round on this many threads (CPU Mbit/s counts all of them)")
    ap.add_argument("--design", type=int, default=0, metavar="SEEDS",
                    help="the design rule (sample, then learned) vs the rule before, SEEDS runs of --bits per QBER")
    ns = ap.parse_args()
    if ns.design:
        rows = [design_point(q, ns.bits, seed, learn, ns.family) for q in (0.06, 0.07, 0.08)
                for seed in range(ns.design) for learn in (False, True)]  # interleaved: same seed, both rules, in turn
        if ns.json:
            print(json.dumps(rows))
            return
        print("QBER  rule     seeds  f mean  f min-max      FER (frames)  it/frame  Mbit/s (median, CPU)")
        for q in (0.06, 0.07, 0.08):
            for learn in (False, True):
                g = [r for r in rows if r["qber"] == q and r["learn"] == learn]
                f = np.array([r["f"] for r in g])
                fr, fl = sum(r["frames"] for r in g), sum(r["failed"] for r in g)
                print(f"{q:.2f}  {'learned' if learn else 'sample '}  {len(g):5d}  {f.mean():.3f}   "
                      f"{f.min():.3f}-{f.max():.3f}  {fl / fr:.4f} ({fl}/{fr})  "
                      f"{np.mean([r['iterations_per_frame'] for r in g]):8.1f}  "
                      f"{np.median([r['mbit_s'] for r in g]):.3f}", flush=True)
        return
    if ns.simulated:
        for n in ns.simulated.split(","):
            r = simulated_point(float(n), ns.preset, two_party=ns.two_party)
            print(json.dumps(r) if ns.json else
                  f"{r['rounds']:.3g} rounds ({r['preset']}, {'two-party TCP' if r['two_party'] else 'one process'})"
                  f": generated in {r['generate_s']:.1f} s; S = {r['S']:.3f} (expected {r['expected_S']:.3f}), "
                  f"QBER {r['qber_corrected'] or 0:.4f} (expected {r['expected_Q']:.4f}); {r['key_rounds']} key "
                  f"rounds, {r['frames']} frames ({r['frames_failed']} failed), f = {r['f'] or float('nan'):.3f}; "
                  f"leak {r['leak']} + {r['discarded']} dropped; final key {r['final_length']} bits (bound "
                  f"{r['bound'] or float('nan'):.0f}; {r['auth_bits']} for authentication) in {r['distill_s']:.1f} s"
                  f" {r['timings_s']}" + (f"; {r['message']}" if r["message"] else ""), flush=True)
        return
    modes = list(MODES) if importlib.util.find_spec("ldpc") else ["blind", "one-shot"]
    rows = [reconcile_point(q, ns.bits if m != "one-shot ldpc" else ns.bits // 4, mode=m, family=ns.family,
                            threads=ns.threads if m != "one-shot ldpc" else 1)
            for q in (0.04, 0.06, 0.08) for m in modes]
    pa = [pa_point(n, n // 4) for n in (10**5, 10**6, 4 * 10**6)]
    if ns.json:
        print(json.dumps({"reconcile": rows, "pa": pa}))
        return
    print("QBER  mode           code  k/frame  frames  f_design  f      FER     undet  tag-rej  rounds  it/frame  "
          "Mbit/s (CPU)  Mbit/s (wall)")
    for r in rows:
        print(f"{r['qber']:.2f}  {r['mode']:13s}  {r['code']}  {r['key_bits_per_frame']:7d}  {r['frames']:6d}  "
              f"{r['f_design']:.2f}      {r['f']:.3f}  {r['fer']:.4f}  {r['undetected']:5d}  {r['tag_rejects']:7d}  "
              f"{r['rounds']:6d}  "
              f"{r['iterations_per_frame']:8.0f}  {r['mbit_s']:12.3f}  {r['wall_mbit_s']:.3f}", flush=True)
    for p in pa:
        print(f"PA n={p['n']:.0e} l={p['l']:.0e}: {p['mbit_s']:.1f} Mbit/s (previous {p['baseline_mbit_s']:.1f}; "
              f"{p['ratio_to_one_rfft']:.1f} x one rfft)")


if __name__ == "__main__":
    main()
