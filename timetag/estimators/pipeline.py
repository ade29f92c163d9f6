"""Two rounds files (or RoundsData) -> join -> sift -> every estimator: the :class:`~.result.Estimate` of
`timetag estimate` (its ``to_json()`` is the command's JSON object)."""
from __future__ import annotations

import math
from pathlib import Path

from ..custody import describe
from ..errors import EstimationError, IncompleteError
from ..roundsfile import RoundsData, incomplete_message, read_rounds
from ..setupfile import Setup, load_setup
from .counts import tally
from .join import join_rounds, sift
from .report import estimate_from_counts
from .result import Clock, Estimate, Files, IncompleteInput, JoinSummary, OtherPolicy, SiftStats


def _load(obj, what: str, accept_incomplete: bool = False):
    if isinstance(obj, RoundsData):
        if not obj.complete and not accept_incomplete:
            raise IncompleteError(incomplete_message(_name(obj), obj.completion, obj.completion_reason,
                                                     len(obj.rounds)))
        return obj
    if isinstance(obj, (str, Path)):
        return read_rounds(obj, accept_incomplete=accept_incomplete)
    raise EstimationError(f"{what}: expected a rounds file path or RoundsData, got {type(obj).__name__}")


def incomplete_inputs(*datas) -> list[dict]:
    """The inputs whose run did not complete (accepted with ``accept_incomplete``): file, lab, state, reason,
    the rounds it holds, and one sentence saying so (the ``!`` line of `timetag estimate`)."""
    out = []
    for d in datas:
        if d.complete:
            continue
        name = _name(d)
        short = Path(name).name if getattr(d, "path", None) is not None else name
        out.append({"file": name, "role": d.role, "state": str(d.completion), "reason": d.completion_reason,
                    "rounds": int(len(d.rounds)),
                    "message": f"{short} is incomplete ({describe(d.completion, d.completion_reason)}); the result "
                               f"covers only its {len(d.rounds)} rounds"})
    return out


def _name(d) -> str:
    return str(d.path) if getattr(d, "path", None) is not None else f"<{d.role or 'rounds'} data>"


def check_pair(a, b, same_run: bool = False):
    """Order two RoundsData as (alice, bob) by role and refuse mismatched inputs with clear messages
    (``same_run``: the caller vouches that the two files are one run, whatever their setups say)."""
    roles = (a.role.lower(), b.role.lower())
    if roles == ("bob", "alice"):
        a, b = b, a
    elif roles[0] == roles[1] and roles[0]:
        raise EstimationError(f"both rounds files are from the same lab (role {roles[0]!r}): "
                              f"{_name(a)} and {_name(b)}; give one Alice and one Bob file")
    elif set(roles) - {"alice", "bob", ""}:
        bad = [r for r in roles if r not in ("alice", "bob", "")]
        raise EstimationError(f"unknown role {bad[0]!r} in rounds file(s) {_name(a)}, {_name(b)}; "
                              "expected 'alice' and 'bob'")
    if not same_run:
        _check_same_run(a, b)
    for d in (a, b):
        if len(d.rounds) == 0:
            raise EstimationError(f"{_name(d)}: rounds file is empty (no rounds)")
    return a, b


def _clock_number(table: dict, key: str, where: str) -> float:
    v = table.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise EstimationError(f"{where}: [clock] {key} must be a finite number, got {v!r}")
    return float(v)


def clock_from_setup(setup) -> tuple[dict | None, str, str]:
    """The ``[clock]`` table of a setup (path or Setup) written by ``timetag calibrate``.

    Returns (table or None, the setup's name for messages, its hash).  The table must give ``offset_ps``
    and ``drift`` (model ``t_bob = t_alice + offset_ps + drift * t_alice``).
    """
    if isinstance(setup, (str, Path)):
        where = str(setup)
        setup = load_setup(setup)
    elif isinstance(setup, Setup):
        where = f"setup {setup.name!r}" if setup.name else "setup"
    else:
        raise EstimationError(f"setup: expected a setup TOML path or Setup, got {type(setup).__name__}")
    table = setup.extra.get("clock")
    if table is None:
        return None, where, setup.hash
    if not isinstance(table, dict):
        raise EstimationError(f"{where}: [clock] must be a table with offset_ps and drift, got {table!r}")
    return ({"offset_ps": _clock_number(table, "offset_ps", where), "drift": _clock_number(table, "drift", where),
             **{k: _finite(table[k]) for k in ("offset_err_ps", "drift_err", "pairs") if k in table}},
            where, setup.hash)


def _finite(v):
    # the table goes into strict JSON: NaN/inf uncertainties (an under-determined fit) become None
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def resolve_clock(offset_ps=None, drift=None, clock: dict | None = None, clock_name: str = "") -> tuple:
    """(offset_ps, drift, info): explicit values win over the calibrated ``clock`` table, per parameter.

    ``info`` says where each number came from: source 'given', 'calibrated', 'calibrated+given' or
    'estimated' (the join fits the clock from the trigger times; 'estimated+given' with a given drift).
    """
    info = {"source": "estimated", "setup": None, "calibrated": None}
    if clock is not None:
        info["setup"] = clock_name or None
        info["calibrated"] = dict(clock)
        both_given = offset_ps is not None and drift is not None
        if not both_given:
            info["source"] = "calibrated" if offset_ps is None and drift is None else "calibrated+given"
        if offset_ps is None:
            offset_ps = clock["offset_ps"]
        if drift is None:
            drift = clock["drift"]
        if both_given:
            info["source"] = "given"
    elif offset_ps is not None:
        info["source"] = "given"
    elif drift is not None:
        info["source"] = "estimated+given"  # the join fits the offset with the given slope
    return offset_ps, drift, info


def estimate(alice, bob, flagged: str = "keep", samples: int = 20000, seed: int | None = 0, *,
             offset_ps: float | None = None, drift: float | None = None, tolerance_ps: float | None = None,
             prob_error: float = 0.03, finite_key: dict | None = None, strict: bool = True,
             clock: dict | None = None, setup=None, patterns=None, accept_incomplete: bool = False,
             same_run: bool = False) -> Estimate:
    """Join, sift and estimate: the numbers of :func:`estimate_from_counts` plus ``join``, ``sift``, ``files``
    and ``flagged_other_policy`` (S, Q, rates with the other flag policy), as an :class:`~.result.Estimate`
    (``to_json()``: the JSON object of ``timetag estimate --json``; ``est["S"]`` works too).

    Clock for the join, per parameter: explicit ``offset_ps`` / ``drift`` first, then ``clock`` (a dict
    with ``offset_ps`` and ``drift``), then the ``[clock]`` table of ``setup`` (path or Setup, as written by
    ``timetag calibrate``), else estimated from the trigger times.  The two files must be one run: their setups
    name the same ``[meta] run`` or are the same setup, unless ``same_run`` says so.  ``join['clock']`` reports the choice.
    Psi- rounds are relabelled into the Psi+ frame (see :mod:`.patterns`); ``patterns`` selects heralds.

    An input whose run did not complete (interrupted, failed, recovered) raises
    :class:`~timetag.errors.IncompleteError` unless ``accept_incomplete``; then ``incomplete_inputs`` lists it
    (file, state, reason, rounds) -- the key is always there, empty when every input is complete.
    """
    a, b = check_pair(_load(alice, "alice", accept_incomplete), _load(bob, "bob", accept_incomplete), same_run)
    incomplete = incomplete_inputs(a, b)
    notes = []
    if a.setup_hash and b.setup_hash and a.setup_hash != b.setup_hash:
        run = f"run {a.run!r}" if a.run and a.run == b.run else "one run (--same-run)"
        notes.append(f"{run} processed with two setups: {a.setup_hash[:12]} ({_name(a)}) and "
                     f"{b.setup_hash[:12]} ({_name(b)})")
    clock_name = ""
    if clock is not None:
        if not isinstance(clock, dict):
            raise EstimationError(f"clock: expected a dict with offset_ps and drift, got {type(clock).__name__}")
        clock = {"offset_ps": _clock_number(clock, "offset_ps", "clock argument"),
                 "drift": _clock_number(clock, "drift", "clock argument")}
    elif setup is not None:
        clock, clock_name, shash = clock_from_setup(setup)
        if clock is None:
            notes.append(f"{clock_name} has no [clock] table (run timetag calibrate): clock estimated from the "
                         "trigger times")
        rh = a.setup_hash or b.setup_hash
        if rh and shash != rh:
            notes.append(f"{clock_name} is not the setup these rounds were processed with (hash {shash[:12]} vs "
                         f"{rh[:12]}); only its [clock] table is used")
    offset_ps, drift, clock_info = resolve_clock(offset_ps, drift, clock, clock_name)
    j = join_rounds(a, b, offset_ps=offset_ps, drift=drift, tolerance_ps=tolerance_ps)
    if clock_info["source"].startswith("calibrated") and j.n_pairs < 0.5 * min(len(a.rounds), len(b.rounds)):
        notes.append(f"few pairs with the calibrated clock of {clock_name or 'the clock argument'}: it may not "
                     "belong to this run; without it the clock is estimated from the trigger times")
    j.notes[:0] = notes
    if j.n_pairs == 0:
        raise EstimationError(f"no rounds of {_name(a)} and {_name(b)} could be paired in time "
                              f"(offset {j.offset_ps:.0f} ps, drift {j.drift:.3g} from clock "
                              f"{_clock_label(clock_info, j)}, tolerance {j.tolerance_ps:.0f} ps)")
    sf = sift(a, b, j, flagged, patterns)
    if strict and sf.stats["test"] == 0:
        raise EstimationError(f"no test rounds (Alice input X in {{2,3}}) among {j.n_pairs} joined rounds of "
                              f"{_name(a)} and {_name(b)}: CHSH S cannot be estimated")
    if strict and sf.stats["key"] == 0:
        raise EstimationError(f"no key rounds (X = Y in {{0,1}}) among {j.n_pairs} joined rounds of "
                              f"{_name(a)} and {_name(b)}: the QBER cannot be estimated")
    report = estimate_from_counts(tally(sf.x, sf.y, sf.a, sf.b), samples=samples, seed=seed,
                                  prob_error=prob_error, finite_key=finite_key)
    other = "drop" if flagged == "keep" else "keep"
    so = sift(a, b, j, other, patterns)
    ro = estimate_from_counts(tally(so.x, so.y, so.a, so.b), samples=0)
    clock_info.update(offset_ps=float(j.offset_ps), drift=float(j.drift), label=_clock_label(clock_info, j))
    joined = JoinSummary(**j.summary(), clock=Clock(**clock_info))
    if sf.stats["pattern_conflicts"]:
        joined.notes.append(f"{sf.stats['pattern_conflicts']} pairs carry different herald patterns in the "
                            "two files; Alice's (the BSM's) was used")
    return Estimate.from_report(
        report,
        flagged_other_policy=OtherPolicy(policy=other, rounds=ro["rounds"], S=ro["S"], Q=ro["Q"],
                                         key_rate_per_event=ro["key_rate_per_event"]),
        join=joined,
        sift=SiftStats(**sf.stats),
        files=Files(alice=_name(a), bob=_name(b), setup_hash=a.setup_hash or b.setup_hash),
        incomplete_inputs=[IncompleteInput(**inc) for inc in incomplete])


def _clock_label(info: dict, j) -> str:
    """One phrase for the table line: where the join's clock came from."""
    if info["source"].startswith("estimated"):
        return f"estimated from the triggers ({j.method})" + (", drift given" if "given" in info["source"] else "")
    if info["source"] == "given":
        return "given" + (f" (overrides [clock] of {info['setup']})" if info["setup"] else "")
    src = f"[clock] of {info['setup']}" if info["setup"] else "calibrated"
    return src if info["source"] == "calibrated" else f"{src}, partly overridden"


def _check_same_run(a, b) -> None:
    """Two rounds files belong together when their setups name the same run (``[meta] run``, kept by
    ``calibrate``), or, for setups that name none, when the setups are the same."""
    if a.run and b.run:
        if a.run != b.run:
            raise EstimationError(f"rounds files come from different runs: run {a.run!r} in {_name(a)} "
                                  f"but {b.run!r} in {_name(b)}")
        return
    if a.setup_hash and b.setup_hash and a.setup_hash != b.setup_hash:
        raise EstimationError(f"rounds files come from different runs: setup hash {a.setup_hash[:12]} in {_name(a)} "
                              f"but {b.setup_hash[:12]} in {_name(b)}; if they are one run processed with two "
                              "setups (e.g. one recalibrated), name the run in both setups ([meta] run = \"...\") "
                              "or pass --same-run")
