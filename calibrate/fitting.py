"""Binned Poisson maximum-likelihood fits (Levenberg-damped Fisher scoring).

Every calibration fit here is a model of expected counts per histogram bin, so
one small optimiser serves them all: it maximises the Poisson likelihood (not
a chi-square, which biases low-count bins) and returns the covariance from the
Fisher information at the optimum.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from timetag.errors import CalibrationError

_FLOOR = 1e-300


@dataclass(frozen=True)
class FitResult:
    theta: np.ndarray
    cov: np.ndarray
    nll: float        # -log L up to a constant (sum m - n log m)
    deviance: float   # 2 sum [n log(n/m) - (n - m)]: ~ chi2(dof) for a good fit
    dof: int
    iterations: int

    @property
    def err(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.cov), 0, None))


def _nll(m, n):
    m = np.maximum(m, _FLOOR)
    return float(np.sum(m - n * np.log(m)))


def _deviance(m, n):
    m = np.maximum(m, _FLOOR)
    pos = n > 0
    return float(2 * (np.sum(n[pos] * np.log(n[pos] / m[pos])) - np.sum(n - m)))


def _jacobian(model, theta, m0, steps):
    J = np.empty((m0.size, theta.size))
    for i in range(theta.size):
        t = theta.copy()
        t[i] += steps[i]
        J[:, i] = (model(t) - m0) / steps[i]
    return J


def poisson_fit(model: Callable[[np.ndarray], np.ndarray], theta0, counts, *, max_iter: int = 200,
                rtol: float = 1e-10, what: str = "fit") -> FitResult:
    """Maximise sum n log m - m over theta; ``model(theta)`` gives expected counts per bin.

    Parameters should be of order one (use logs / natural units) for the finite-difference Jacobian.
    """
    with np.errstate(all="ignore"):  # trial points may overflow: they are rejected as non-finite
        return _poisson_fit(model, theta0, counts, max_iter, rtol, what)


def _poisson_fit(model, theta0, counts, max_iter, rtol, what) -> FitResult:
    n = np.asarray(counts, dtype=np.float64).ravel()
    theta = np.asarray(theta0, dtype=np.float64).copy()
    m = np.asarray(model(theta), dtype=np.float64).ravel()
    if not np.all(np.isfinite(m)):
        raise CalibrationError(f"{what}: the starting point gives a non-finite model")
    nll = _nll(m, n)
    lam = 1e-3
    it = 0
    steps = 1e-6 * np.maximum(1.0, np.abs(theta))
    for it in range(1, max_iter + 1):
        J = _jacobian(model, theta, m, steps)
        w = 1.0 / np.maximum(m, 1e-12)
        g = J.T @ ((n - m) * w)
        H = J.T @ (J * w[:, None])
        improved = False
        for _ in range(30):
            A = H + lam * np.diag(np.maximum(np.diag(H), 1e-12))
            try:
                step = np.linalg.solve(A, g)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            t_new = theta + step
            m_new = np.asarray(model(t_new), dtype=np.float64).ravel()
            if np.all(np.isfinite(m_new)):
                nll_new = _nll(m_new, n)
                if nll_new <= nll:
                    improved = True
                    break
            lam *= 10
        if not improved:
            break
        gain = nll - nll_new
        decrement = float(g @ step)      # ~ twice the gain still to come along this direction
        theta, m, nll = t_new, m_new, nll_new
        lam = max(lam / 10, 1e-9)
        # converged when the log-likelihood no longer moves in absolute terms (its scale, ~ the total count,
        # says nothing about how far the optimum is: a relative test stops in long curved valleys)
        if gain == 0.0 or (gain <= max(rtol * 1e4, 1e-9) and decrement <= 1e-5):
            break
    J = _jacobian(model, theta, m, steps)
    H = J.T @ (J / np.maximum(m, 1e-12)[:, None])
    try:
        cov = np.linalg.pinv(H)
    except np.linalg.LinAlgError:
        cov = np.full_like(H, np.nan)
    return FitResult(theta, cov, nll, _deviance(m, n), int(n.size - theta.size), it)
