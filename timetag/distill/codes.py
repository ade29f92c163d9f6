"""The project's LDPC codes: progressive-edge-growth (PEG) construction, the stored family, versions.

Construction (Hu, Eleftheriou, Arnold, "Regular and irregular progressive edge-growth Tanner graphs", IEEE Trans.
Inf. Theory 51, 386 (2005)): variable nodes are taken in order of increasing degree; the first edge of a node goes
to a check of lowest current degree, each further edge to a check of lowest current degree among those *farthest*
from the node in the graph built so far (not reachable at all if there are such), found by a breadth-first search.
This maximises the local girth.  Ties are broken by a fixed pseudo-random order of the checks, drawn from
``numpy.random.default_rng(seed)``, so a code is a pure function of (n, m, degree distribution, seed): the stored
matrices can be rebuilt bit for bit by :func:`peg` (``python -m timetag.distill.codes --rebuild``).

Variable degree distributions (node perspective) are irregular, with degree-2 nodes fewer than the checks (no
cycle made only of degree-2 nodes), a majority of degree 3 and a tail of high-degree nodes, chosen per rate by
measuring the frame error rate on the binary symmetric channel at n = 8192 (``benchmarks/bench_distill.py``).
Check degrees come out concentrated (PEG always picks a lowest-degree check).

The family is versioned: ``FAMILY_VERSION`` names the construction; ``codes/family-<version>.npz`` holds each
code's column indices and ``codes/family-<version>.json`` their parameters and SHA-256, checked when loaded.  A
changed construction must get a new version (keys of old runs name the version their codes came from).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import _numba_cache

_numba_cache.use_user_cache_dir()

import numba  # noqa: E402

FAMILY_VERSION = "peg-8192-v1"
LONG_FAMILY_VERSION = "peg-16384-v1"   # the same construction and degrees, frames twice as long (f ~0.015 lower)
FAMILY_BITS = {FAMILY_VERSION: 8192, LONG_FAMILY_VERSION: 16384}
CODES_DIR = Path(__file__).with_name("codes")
FRAME_BITS = 8192

# rate -> (node-perspective fractions of variable degrees); the seed of each code is its index in the family
DEGREES: dict[float, dict[int, float]] = {
    0.50: {2: 0.40, 3: 0.42, 12: 0.18},
    0.60: {2: 0.33, 3: 0.50, 15: 0.17},
    0.70: {2: 0.20, 3: 0.62, 20: 0.18},
    0.80: {2: 0.12, 3: 0.73, 20: 0.15},
}


@numba.njit(cache=True)
def _peg_kernel(var_deg, m, check_order, max_cdeg):
    n = var_deg.shape[0]
    dmax = var_deg.max()
    var_adj = -np.ones((n, dmax), np.int64)
    chk_adj = -np.ones((m, max_cdeg), np.int64)
    chk_deg = np.zeros(m, np.int64)
    rank = np.empty(m, np.int64)          # position of a check in the tie-break order
    for i in range(m):
        rank[check_order[i]] = i
    seen_c = np.zeros(m, np.int64)        # BFS stamp of checks
    seen_v = np.zeros(n, np.int64)
    tmp_c = np.zeros(m, np.int64)
    stamp = 0
    tstamp = 0
    frontier = np.empty(n, np.int64)
    nxt = np.empty(n, np.int64)
    for j in range(n):
        for k in range(var_deg[j]):
            if k == 0:
                best = -1
                for c in range(m):
                    if chk_deg[c] >= max_cdeg:
                        continue
                    if best < 0 or chk_deg[c] < chk_deg[best] or (chk_deg[c] == chk_deg[best]
                                                                    and rank[c] < rank[best]):
                        best = c
            else:
                # BFS from j over the current graph, one level (variable nodes, then their checks) at a time;
                # stop when no new check is reached, or when the next level would reach every check
                stamp += 1
                nf = 1
                frontier[0] = j
                seen_v[j] = stamp
                reached = 0
                for kk in range(k):
                    c = var_adj[j, kk]
                    if seen_c[c] != stamp:
                        seen_c[c] = stamp
                        reached += 1
                while True:
                    nn = 0
                    for fi in range(nf):
                        v = frontier[fi]
                        for a in range(dmax):
                            c = var_adj[v, a]
                            if c < 0:
                                break
                            for b in range(chk_deg[c]):
                                w = chk_adj[c, b]
                                if seen_v[w] != stamp:
                                    seen_v[w] = stamp
                                    nxt[nn] = w
                                    nn += 1
                    if nn == 0:
                        break
                    tstamp += 1
                    newly = 0
                    for fi in range(nn):
                        v = nxt[fi]
                        for a in range(dmax):
                            c = var_adj[v, a]
                            if c < 0:
                                break
                            if seen_c[c] != stamp and tmp_c[c] != tstamp:
                                tmp_c[c] = tstamp
                                newly += 1
                    if newly == 0 or reached + newly >= m:
                        break
                    for fi in range(nn):
                        v = nxt[fi]
                        for a in range(dmax):
                            c = var_adj[v, a]
                            if c < 0:
                                break
                            if seen_c[c] != stamp:
                                seen_c[c] = stamp
                                reached += 1
                        frontier[fi] = v
                    nf = nn
                best = -1
                for c in range(m):
                    if seen_c[c] == stamp or chk_deg[c] >= max_cdeg:
                        continue
                    if best < 0 or chk_deg[c] < chk_deg[best] or (chk_deg[c] == chk_deg[best]
                                                                    and rank[c] < rank[best]):
                        best = c
                if best < 0:  # every check reachable at this depth: lowest degree among those not yet adjacent
                    for c in range(m):
                        adj = False
                        for kk in range(k):
                            if var_adj[j, kk] == c:
                                adj = True
                        if adj or chk_deg[c] >= max_cdeg:
                            continue
                        if best < 0 or chk_deg[c] < chk_deg[best] or (chk_deg[c] == chk_deg[best]
                                                                        and rank[c] < rank[best]):
                            best = c
            var_adj[j, k] = best
            chk_adj[best, chk_deg[best]] = j
            chk_deg[best] += 1
    return var_adj


def degree_sequence(n: int, fractions: dict[int, float]) -> np.ndarray:
    """Per-node variable degrees (sorted ascending, as PEG takes them) for node fractions summing to 1."""
    degs = sorted(fractions)
    counts = [int(round(fractions[d] * n)) for d in degs]
    counts[degs.index(3) if 3 in degs else 0] += n - sum(counts)
    return np.repeat(np.array(degs, np.int64), counts)


def peg(n: int, m: int, fractions: dict[int, float], seed: int) -> np.ndarray:
    """(n, dmax) int array: the checks of each variable node (-1 padded), by progressive edge growth."""
    var_deg = degree_sequence(n, fractions)
    order = np.random.default_rng(seed).permutation(m).astype(np.int64)
    max_cdeg = int(np.ceil(var_deg.sum() / m)) + 8
    return _peg_kernel(var_deg, m, order, max_cdeg)


@dataclass(frozen=True)
class Code:
    """One parity-check matrix H (m x n) of the family, as column lists and a CSR matrix."""
    name: str
    n: int
    m: int
    var_adj: np.ndarray          # (n, dmax) check indices per column, -1 padded
    sha256: str

    @property
    def rate(self) -> float:
        return 1.0 - self.m / self.n

    def csr(self, columns: np.ndarray | None = None):
        """H (or its sub-matrix of ``columns``, in that order) as a scipy CSR matrix of uint8."""
        from scipy.sparse import csc_matrix
        adj = self.var_adj if columns is None else self.var_adj[columns]
        deg = (adj >= 0).sum(axis=1)
        indptr = np.concatenate([[0], np.cumsum(deg)])
        idx = adj[adj >= 0]
        data = np.ones(len(idx), np.uint8)
        return csc_matrix((data, idx, indptr), shape=(self.m, len(adj))).tocsr()

    def syndrome(self, bits: np.ndarray) -> np.ndarray:
        """H x mod 2 for a full frame x (uint8 0/1, length n)."""
        adj = self.var_adj
        ok = adj >= 0
        cols = np.broadcast_to(np.arange(self.n)[:, None], adj.shape)[ok]
        on = bits[cols].astype(bool)
        return (np.bincount(adj[ok][on], minlength=self.m) & 1).astype(np.uint8)


def code_hash(var_adj: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(var_adj, dtype=np.int32).tobytes()).hexdigest()


def build_family(n: int = FRAME_BITS) -> dict[str, Code]:
    out = {}
    for i, (rate, fr) in enumerate(sorted(DEGREES.items())):
        m = int(round((1.0 - rate) * n))
        adj = peg(n, m, fr, seed=i + 1)
        name = f"R{int(round(rate * 100)):02d}"
        out[name] = Code(name, n, m, adj, code_hash(adj))
    return out


def _paths(version: str) -> tuple[Path, Path]:
    return CODES_DIR / f"family-{version}.npz", CODES_DIR / f"family-{version}.json"


def save_family(codes: dict[str, Code], version: str = FAMILY_VERSION) -> None:
    """Write ``codes`` as ``version`` (new files; the manifest's SHA-256 of each code is checked on loading)."""
    npz, meta = _paths(version)
    CODES_DIR.mkdir(exist_ok=True)
    np.savez_compressed(npz, **{c.name: c.var_adj.astype(np.int16 if c.m < 32768 else np.int32)
                                for c in codes.values()})
    info = {"version": version, "construction": "PEG (Hu et al. 2005), ties by default_rng(seed) check order",
            "frame_bits": int(next(iter(codes.values())).n),
            "codes": {c.name: {"n": c.n, "m": c.m, "rate": c.rate, "seed": i + 1,
                               "degrees": {str(k): v for k, v in DEGREES[r].items()}, "sha256": c.sha256}
                      for i, (r, c) in enumerate(zip(sorted(DEGREES), codes.values()))}}
    meta.write_text(json.dumps(info, indent=1) + "\n")


@lru_cache(maxsize=4)
def load_family(version: str = FAMILY_VERSION) -> dict[str, Code]:
    """The stored codes of ``version``, each checked against the SHA-256 of its manifest."""
    npz, meta = _paths(version)
    if not npz.exists() or not meta.exists():
        from ..errors import TimetagError
        raise TimetagError(f"LDPC code family {version!r} not found in {CODES_DIR} (rebuild with "
                           "python -m timetag.distill.codes --rebuild)")
    info = json.loads(meta.read_text())
    out = {}
    with np.load(npz) as z:
        for name, c in info["codes"].items():
            adj = z[name].astype(np.int64)
            h = code_hash(adj)
            if h != c["sha256"]:
                from ..errors import TimetagError
                raise TimetagError(f"{npz}: code {name} does not match its manifest (sha256 {h[:12]} vs "
                                   f"{c['sha256'][:12]}): the stored family is damaged")
            out[name] = Code(name, c["n"], c["m"], adj, h)
    return dict(sorted(out.items(), key=lambda kv: kv[1].rate))


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    import sys
    if "--rebuild" in sys.argv:  # --rebuild [VERSION]: the default family, or one named in FAMILY_BITS
        rest = sys.argv[sys.argv.index("--rebuild") + 1:]
        version = rest[0] if rest else FAMILY_VERSION
        fam = build_family(FAMILY_BITS[version])
        save_family(fam, version)
        for c in fam.values():
            print(c.name, c.n, c.m, c.sha256[:16])
