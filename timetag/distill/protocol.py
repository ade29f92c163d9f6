"""The one-process form: both role drivers of :mod:`.party`, in two threads, over an in-memory channel.

One protocol, two transports: ``timetag distill ALICE BOB`` (this module) and ``timetag distill --role alice
--listen`` / ``--role bob --connect`` (:func:`.party.run_over_socket`) run the same driver, exchange the same
messages and produce the same transcript and keys for the same seed.  Each driver uses only its own party's rounds
and the messages; this module adds what only an observer of both labs knows (the raw keys' error rates per basis,
whether the final keys are equal) to Alice's report, with Bob's corrected QBER and measured f.

Randomness: ``seed=None`` (the default, and the only secure choice) draws every random choice from
``os.urandom``; an integer seed makes a run reproducible (numpy PCG64 streams), for tests and benchmarks only --
the report says which (``seeds``).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .channel import ChannelError, memory_pair
from .party import Coins, Options, PartyResult, default_sample_bits, run_party
from .reconcile import AUTO_FAMILY, DEFAULT_MAX_ITER, require_ldpc
from .report import DistillReport
from .transcript import Transcript

__all__ = ["distill", "DistillResult", "Coins", "default_sample_bits", "run_both"]


@dataclass
class DistillResult:
    alice_key: np.ndarray
    bob_key: np.ndarray
    report: DistillReport
    transcript: Transcript


def run_both(alice, bob, opts: Options, *, alice_kw: dict | None = None, bob_kw: dict | None = None
             ) -> tuple[PartyResult, PartyResult]:
    """Alice in this thread, Bob in another, over a :func:`~.channel.memory_pair`.  An error of either side
    closes its end (the other then stops too); the first error that is not the consequence of the other side's
    (a closed channel) is raised."""
    ca, cb = memory_pair()
    box: dict = {}

    def bob_main():
        try:
            box["bob"] = run_party("bob", bob, cb, opts, **(bob_kw or {}))
        except BaseException as exc:  # noqa: BLE001 -- handed to the main thread
            box["bob_exc"] = exc
        finally:
            cb.close()

    th = threading.Thread(target=bob_main, name="distill-bob", daemon=True)
    th.start()
    exc_a = None
    try:
        box["alice"] = run_party("alice", alice, ca, opts, **(alice_kw or {}))
    except BaseException as exc:  # noqa: BLE001
        exc_a = exc
    finally:
        ca.close()
        th.join()
    exc_b = box.get("bob_exc")
    for exc in (exc_a, exc_b):
        if exc is not None and not isinstance(exc, ChannelError):
            raise exc
    if exc_a is not None or exc_b is not None:
        raise exc_a if exc_a is not None else exc_b
    return box["alice"], box["bob"]


def distill(alice, bob, *, eps_sec: float = 1e-5, eps_cor: float = 1e-10, qber: float | None = None,
            sample_bits: int | None = None, f_design: float | None = None, seed: int | None = None,
            flagged: str = "keep", patterns=None, offset_ps=None, drift=None, setup=None,
            accept_incomplete: bool = False, family: str = AUTO_FAMILY, max_iter: int = DEFAULT_MAX_ITER,
            ds_method: str = "hoeffding", blind: bool = True, decoder: str = "layered", learn: bool = True,
            tamper=None) -> DistillResult:
    """Distil a shared secret key from Alice's and Bob's rounds (paths or RoundsData).

    ``qber``: design QBER of the codes (e.g. from calibration); without it a sample of ``sample_bits`` key bits
    (default n_k / 200 in [500, 2000] with blind rounds, else n_k / 50 up to 10000) is disclosed by both and
    charged.  ``tamper(bob_bits)`` (tests) may change
    Bob's corrected bits before verification.  Returns the keys (0/1 uint8 arrays), the report and the transcript.
    """
    from ..estimators.pipeline import _load, check_pair

    opts = Options(eps_sec=eps_sec, eps_cor=eps_cor, qber=qber, sample_bits=sample_bits, f_design=f_design,
                   flagged=flagged, patterns=patterns, family=family, max_iter=max_iter, ds_method=ds_method,
                   blind=blind, decoder=decoder, learn=learn)
    if decoder == "ldpc":
        require_ldpc()
    a, b = check_pair(_load(alice, "alice", accept_incomplete), _load(bob, "bob", accept_incomplete))
    ra, rb = run_both(a, b, opts, alice_kw={"seed": seed, "offset_ps": offset_ps, "drift": drift, "setup": setup,
                                            "accept_incomplete": accept_incomplete},
                      bob_kw={"tamper": tamper, "accept_incomplete": accept_incomplete})
    rep = ra.report
    rep.role = "both"
    rep.qber_corrected, rep.f_measured = rb.report.qber_corrected, rb.report.f_measured
    for basis, name in ((0, "Q0"), (1, "Q1")):  # an observer of both labs: the raw keys' error rate per basis
        sel = ra.key_basis == basis
        setattr(rep, name, float(np.mean(ra.raw_key[sel] != rb.raw_key[sel])) if sel.any() else None)
    rep.keys_equal = bool(len(ra.key) == len(rb.key) and np.array_equal(ra.key, rb.key))
    rep.timings_s = {**rep.timings_s, **{f"bob_{k}": v for k, v in rb.report.timings_s.items()}}
    return DistillResult(ra.key, rb.key, rep, ra.transcript)
