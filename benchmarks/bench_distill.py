"""Distillation benchmark: measured efficiency f and frame error rate vs QBER, throughput of reconciliation and
privacy amplification (one core).  ``python benchmarks/bench_distill.py [--bits N] [--json]``.

Per QBER (0.03, 0.06, 0.08): N random key bits for Alice, Bob's with i.i.d. errors at that QBER, frames planned
for the true QBER (design efficiency of :func:`timetag.distill.reconcile.default_f_design`), decoded by Bob.
f = (syndrome bits - punctured credit) / (bits in frames * h(Q)).  Throughput = bits in frames / decoding time.
Baseline for PA: the FFT alone (numpy's rfft of the same length), measured interleaved.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from timetag.distill.amplify import toeplitz_hash
from timetag.distill.reconcile import BobDecoder, alice_syndromes, h2, plan_frames


def reconcile_point(q, n_bits, seed=0, f_design=None):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n_bits, dtype=np.uint8)
    b = a ^ (rng.random(n_bits) < q).astype(np.uint8)
    plan = plan_frames(n_bits, q, f_design)
    t0 = time.perf_counter()
    syn = alice_syndromes(a, plan, rng)
    t1 = time.perf_counter()
    corr, ok, _ = BobDecoder(plan).correct(b, syn)
    t2 = time.perf_counter()
    n_in = plan.frames * plan.key_bits
    good = ok & (corr == a[:n_in].reshape(plan.frames, plan.key_bits)).all(axis=1)
    leak = plan.frames * plan.leak_per_frame
    return {"qber": q, "code": plan.code, "key_bits_per_frame": plan.key_bits, "frames": plan.frames,
            "f_design": plan.f_design, "f": leak / (n_in * h2(q)), "fer": float(1 - good.mean()),
            "undetected": int((ok & ~good).sum()), "syndrome_mbit_s": n_in / (t1 - t0) / 1e6,
            "decode_mbit_s": n_in / (t2 - t1) / 1e6}


def pa_point(n, l, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n, dtype=np.uint8)
    t = rng.integers(0, 2, n + l - 1, dtype=np.uint8)
    best, base = 1e9, 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        toeplitz_hash(a, t, l)
        t1 = time.perf_counter()
        np.fft.rfft(a.astype(float), 2 * n + l)
        t2 = time.perf_counter()
        best, base = min(best, t1 - t0), min(base, t2 - t1)
    return {"n": n, "l": l, "mbit_s": n / best / 1e6, "ratio_to_one_rfft": best / base}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", type=int, default=400_000)
    ap.add_argument("--json", action="store_true")
    ns = ap.parse_args()
    rows = [reconcile_point(q, ns.bits) for q in (0.03, 0.06, 0.08)]
    pa = [pa_point(n, n // 4) for n in (10**5, 10**6, 4 * 10**6)]
    if ns.json:
        print(json.dumps({"reconcile": rows, "pa": pa}))
        return
    print("QBER  code  k/frame  frames  f_design  f      FER     undetected  decode Mbit/s")
    for r in rows:
        print(f"{r['qber']:.2f}  {r['code']}  {r['key_bits_per_frame']:7d}  {r['frames']:6d}  {r['f_design']:.2f}"
              f"      {r['f']:.3f}  {r['fer']:.4f}  {r['undetected']:10d}  {r['decode_mbit_s']:.3f}")
    for p in pa:
        print(f"PA n={p['n']:.0e} l={p['l']:.0e}: {p['mbit_s']:.1f} Mbit/s ({p['ratio_to_one_rfft']:.1f} x one rfft)")


if __name__ == "__main__":
    main()
