"""The typed result of a distillation run and its JSON form (``DIR/report.json``)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


@dataclass
class DistillReport:
    rounds_alice: int
    rounds_bob: int
    pairs: int
    used: int
    key_rounds: int
    test_rounds: int
    S: float
    qber_sample: float | None          # the disclosed sample's error rate (None with a given design QBER)
    qber_corrected: float | None       # errors corrected / bits in decoded frames (Bob's; None in Alice's)
    Q0: float | None                   # per basis, from both raw keys (an observer of both labs)
    Q1: float | None
    eps_sec: float
    eps_cor: float
    code: dict = field(default_factory=dict)
    frames: int = 0
    frames_failed: int = 0
    syndrome_bits: int = 0             # sent, all frames
    punctured_credit: int = 0
    revealed_bits: int = 0             # punctured bits revealed in blind rounds (each takes its credit back)
    frame_tag_bits: int = 0            # 16-bit tag per frame (a wrong codeword is caught per frame)
    error_count_bits: int = 0          # Bob's announced error counts after a batch (ceil log2(bits + 1) each)
    leak_ec: int = 0                   # syndrome - punctured credit + revealed + frame tags + error counts + status
    sample_bits: int = 0               # disclosed (both parties)
    hash_bits: int = 0                 # verification tags + result bit
    discarded_bits: int = 0            # key bits dropped (failed frames, tail; sample positions: in its leak)
    leak_total: int = 0                # every leaking bit of the transcript
    f_measured: float | None = None    # (syndrome - credit + revealed + tags + counts) / (frame bits h(Q corrected))
    bound: float | None = None         # the finite-key length l from the bound (may be <= 0)
    final_length: int = 0
    keys_equal: bool | None = None     # one-process runs only: the two final keys compared
    verified: bool | None = None
    seeds: dict = field(default_factory=dict)
    timings_s: dict = field(default_factory=dict)
    message: str = ""                  # why there is no key (empty when there is one)
    rounds_needed: float | None = None  # for a positive key at this S, Q and efficiency
    role: str = "both"                 # 'alice' or 'bob' (two-party form: what that party knows) or 'both'
    auth: dict = field(default_factory=dict)  # authentication of the public messages (see channel.py)
    auth_bits: int = 0                 # key consumed by authenticating them (256 bits per message tag)
    net_length: int = 0                # final_length - auth_bits: the key gained after paying authentication
    theorem: str = ("finite-key bound of timetag.estimators.finitekey (Tan et al., Quantum 2022, collective "
                    "attacks) with the measured leak; eps_sec for smoothing, estimation and PA; total eps_sec + "
                    "eps_cor")

    def to_json(self) -> dict:
        return _clean(asdict(self))
