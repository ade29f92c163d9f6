"""Asymptotic (Devetak-Winter) key rates of the DIQKD protocols, as functions of S and the QBERs.

r = H(key | E) - H(A | B), H(A | B) = (h(Q0) + h(Q1)) / 2 (error correction in the two key bases);
per event multiply by the probability of a key round, P(X = Y) = 1/4 for uniform inputs.

Bounds on H(key | E) as functions of the CHSH value S:

``original``      Pironio et al., NJP 11, 045021 (2009): 1 - h((1 + sqrt((S/2)^2 - 1)) / 2).
``random_basis``  two key bases used with probability 1/2 each (Schwonnek et al. 2021); closed form of
                  Masini, Pironio & Woodhead, Quantum 6, 843 (2022), evaluated in complex arithmetic and
                  convexified in S (lower convex hull on [2, 2 sqrt 2]) -- the raw curve is slightly
                  concave just above S = 2, and a bound on H(key|E) must be convex to hold for mixtures.
``tan_affine``    E. Tan (PhD thesis, 2021, eq. 3.28): 1.190 (S - 2) - 0.00454, a certified affine
                  bound used as a cross-check of the closed form.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

S_MAX = 2.0 * np.sqrt(2.0)
PROTOCOLS = ("random_basis", "original", "tan_affine", "random_basis_raw")
P_KEY_UNIFORM = 0.25  # P(X = Y in {0,1}) with X uniform on 4 values and Y on 2


def binary_entropy(p):
    """h(p) in bits; h(0) = h(1) = 0; values outside [0, 1] are clipped."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -p * np.log2(p) - (1 - p) * np.log2(1 - p)
    out = np.where((p <= 0) | (p >= 1), 0.0, out)
    return out if out.ndim else float(out)


def _clip_S(S):
    return np.clip(np.asarray(S, dtype=float), 2.0, S_MAX)


def entropy_original(S):
    S = _clip_S(S)
    return 1.0 - binary_entropy((1.0 + np.sqrt(np.maximum((S / 2) ** 2 - 1.0, 0.0))) / 2.0)


def _mpw_e2(S):
    """E2(S) of the Masini-Pironio-Woodhead closed form (real part of a complex expression)."""
    S = np.asarray(S, dtype=complex)
    S2 = S * S
    S4 = S2 * S2
    K = 1024 - 352 * S2 + 49 * S4
    R = (262144 - 135168 * S2 + 9264 * S4 + 928 * S4 * S2 + 27 * S4 * S4
         + 3 * np.sqrt(3) * np.sqrt(S4 * (112 - 32 * S2 + S4) ** 2 * (-32768 + 3584 * S2 + 27 * S4))) ** (1 / 3)
    A = np.sqrt(6144 + 384 * S2 + 9 * S4 + 384 * K / R + 96 * R)
    C = np.sqrt(2048 + 128 * S2 + 3 * S4 + 128 * K / R + 32 * R)
    B = np.sqrt(-1024 - 64 * S2 + 3 * (32 + S2) ** 2 - 64 * K / R - 16 * R - 3 * np.sqrt(3) * S2 * (32 + S2) ** 2 / C)
    x = (96 + 3 * S2 - A + np.sqrt(6) * B) / 96
    E2 = (x * x + 1) / (1 - x) + (S2 / 4) * (1 + x) / (1 - x) - S * (1 + x) / (1 - x) * np.sqrt((1 + x) / 2)
    return np.real(E2)


def entropy_random_basis_raw(S):
    S = _clip_S(S)
    with np.errstate(invalid="ignore", divide="ignore"):
        e2 = np.where(S > 2.0, _mpw_e2(S), 0.0)
    return 1.0 - binary_entropy((1.0 + np.sqrt(np.clip(e2, 0.0, 1.0))) / 2.0)


@lru_cache(maxsize=1)
def _hull(n: int = 4001) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the lower convex hull of the raw closed-form curve on [2, 2 sqrt 2]."""
    s = np.linspace(2.0, S_MAX, n)
    h = entropy_random_basis_raw(s)
    hull: list[int] = []
    for i in range(n):  # Andrew's monotone chain, lower half
        while len(hull) >= 2:
            i0, i1 = hull[-2], hull[-1]
            cross = (s[i1] - s[i0]) * (h[i] - h[i0]) - (h[i1] - h[i0]) * (s[i] - s[i0])
            if cross <= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    idx = np.array(hull)
    return s[idx], h[idx]


def entropy_random_basis(S):
    hs, hh = _hull()
    out = np.interp(_clip_S(S), hs, hh)
    return out if np.ndim(out) else float(out)


def entropy_tan_affine(S):
    S = _clip_S(S)
    return np.maximum(1.190 * (S - 2.0) - 0.00454, 0.0)


_ENTROPY = {
    "random_basis": entropy_random_basis,
    "random_basis_raw": entropy_random_basis_raw,
    "original": entropy_original,
    "tan_affine": entropy_tan_affine,
}


def entropy_bound(S, protocol: str = "random_basis"):
    """Lower bound on H(key | E) per key round at CHSH value S (0 for S <= 2; S is clipped to 2 sqrt 2)."""
    try:
        f = _ENTROPY[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}") from None
    out = f(S)
    return out if np.ndim(out) else float(out)


def key_rate(S, Q0, Q1=None, *, protocol: str = "random_basis", per: str = "event", p_key: float = P_KEY_UNIFORM):
    """Asymptotic secret key rate H(key|E) - (h(Q0) + h(Q1))/2; per key round or per event (x p_key).

    Negative values mean no key; they are returned as such (not clipped) so that margins are visible.
    """
    if Q1 is None:
        Q1 = Q0
    r = entropy_bound(S, protocol) - (binary_entropy(Q0) + binary_entropy(Q1)) / 2.0
    if per == "event":
        r = r * p_key
    elif per != "round":
        raise ValueError(f"per must be 'event' or 'round', got {per!r}")
    return r if np.ndim(r) else float(r)


def depolarising_S(q):
    """CHSH value of a Psi+ state through a depolarising channel with error rate q: 2 sqrt2 (1 - 2q)."""
    return S_MAX * (1.0 - 2.0 * np.asarray(q, dtype=float))


def threshold_depolarising(protocol: str = "random_basis") -> dict:
    return dict(_threshold_depolarising(protocol))


@lru_cache(maxsize=None)
def _threshold_depolarising(protocol: str) -> tuple:
    """Largest depolarising error rate q (Q0 = Q1 = q, S = 2 sqrt2 (1 - 2q)) with a positive rate."""
    from scipy.optimize import brentq  # here: importing scipy.optimize costs every command a sixth of a second

    q = brentq(lambda q: key_rate(depolarising_S(q), q, protocol=protocol, per="round"), 1e-6, 0.1464, xtol=1e-12)
    return (("Q", float(q)), ("S", float(depolarising_S(q))))


def threshold_S(Q0, Q1=None, protocol: str = "random_basis") -> float:
    """Smallest S giving a positive rate at the given QBERs (NaN if none up to 2 sqrt 2)."""
    f = lambda s: key_rate(s, Q0, Q1, protocol=protocol, per="round")  # noqa: E731
    if f(S_MAX) <= 0:
        return float("nan")
    from scipy.optimize import brentq

    return float(brentq(f, 2.0, S_MAX, xtol=1e-12))
