"""The result of ``timetag estimate`` as typed records: :class:`Estimate` and its parts.

``Estimate.to_json()`` is the JSON object ``timetag estimate --json`` prints (same keys, same order, same values);
``Estimate.from_json(obj)`` reads one back.  Read access by key (``est["S"]``, ``est.get("bayes")``,
``"worst_case" in est``) goes through ``to_json()`` so that code written against the JSON object keeps working.

Values that cannot be computed are ``None`` (never NaN), as in :func:`~timetag.estimators.report.estimate_from_counts`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ..errors import EstimationError


def _plain(v):
    """Fresh JSON containers: a caller editing the returned object must not edit the record."""
    if hasattr(v, "to_json"):
        return v.to_json()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


class _Part:
    """JSON <-> record for a dataclass whose field order is the JSON key order.

    ``_parts``: field -> record class of a nested object; ``_part_maps``: field -> record class of the values of a
    nested mapping; ``_part_lists``: field -> record class of list items; ``_optional``: keys written only when
    the field is not None (the JSON object then lacks them, as before the records existed).
    """

    _parts: ClassVar[dict[str, type]] = {}
    _part_maps: ClassVar[dict[str, type]] = {}
    _part_lists: ClassVar[dict[str, type]] = {}
    _optional: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict:
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name in self._optional:
                continue
            out[f.name] = _plain(v)
        return out

    @classmethod
    def from_json(cls, obj: dict):
        return cls._build(cls._fields_from_json(obj))

    @classmethod
    def _fields_from_json(cls, obj: dict) -> dict:
        if not isinstance(obj, dict):
            raise EstimationError(f"{cls.__name__}: expected a JSON object, got {type(obj).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = [k for k in obj if k not in names]
        if unknown:
            raise EstimationError(f"{cls.__name__}: unknown key(s) {', '.join(map(repr, unknown))}")
        kw = {}
        for name in names:
            if name not in obj:
                continue  # a missing required key is reported by the constructor, with its name
            v = obj[name]
            if v is not None and name in cls._parts:
                v = cls._parts[name].from_json(v)
            elif v is not None and name in cls._part_maps:
                v = {k: cls._part_maps[name].from_json(x) for k, x in v.items()}
            elif v is not None and name in cls._part_lists:
                v = [cls._part_lists[name].from_json(x) for x in v]
            kw[name] = v
        return kw

    @classmethod
    def _build(cls, kw: dict):
        try:
            return cls(**kw)
        except TypeError as exc:
            raise EstimationError(f"{cls.__name__}: {exc}") from None


@dataclass
class Fidelity(_Part):
    V: list                      # visibility per Bob input y (None where it cannot be fitted)
    V_err: list
    F: float | None              # F >= (1 + (d^2 - 1) V_mean) / d^2
    F_err: float | None
    d: int


@dataclass
class Posterior(_Part):
    mean: float
    std: float
    median: float
    ci: list                     # central credible interval at ``level``
    level: float
    ci_physical: list | None = None     # ``ci`` cut to ``physical_range`` (key rates: floor 0; S: +-2 sqrt 2)
    physical_range: list | None = None  # [lo, hi], None for an open end

    _optional: ClassVar[tuple[str, ...]] = ("ci_physical", "physical_range")


@dataclass
class Bayes(_Part):
    S: Posterior
    Q0: Posterior
    Q1: Posterior
    Q: Posterior
    E: dict                      # "x,y" -> posterior std of E_xy
    key_rate_per_event: dict     # protocol -> Posterior
    samples: int
    seed: int | None
    prior: str | None = None     # name of the Beta prior per input pair (timetag.estimators.uncertainty.PRIORS)

    _optional: ClassVar[tuple[str, ...]] = ("prior",)
    _parts: ClassVar[dict[str, type]] = {"S": Posterior, "Q0": Posterior, "Q1": Posterior, "Q": Posterior}
    _part_maps: ClassVar[dict[str, type]] = {"key_rate_per_event": Posterior}


@dataclass
class WorstCase(_Part):
    prob_error: float
    S: float
    Q0: float
    Q1: float
    key_rate_per_key_round: dict  # protocol -> rate at the worst-case S, Q0, Q1
    positive: dict                # protocol -> bool


@dataclass
class OtherPolicy(_Part):
    """S, Q and the rates with the flag policy not chosen (keep <-> drop), to show what flagged rounds change."""
    policy: str
    rounds: int
    S: float | None
    Q: float | None
    key_rate_per_event: dict


@dataclass
class Clock(_Part):
    source: str                  # 'given', 'calibrated', 'calibrated+given', 'estimated' or 'estimated+given'
    setup: str | None
    calibrated: dict | None      # the setup's [clock] table, when one was used
    offset_ps: float
    drift: float
    label: str                   # one phrase for the table line


@dataclass
class JoinSummary(_Part):
    pairs: int
    unmatched_alice: int
    unmatched_bob: int
    offset_ps: float
    drift: float
    tolerance_ps: float
    method: str
    residual_rms_ps: float | None
    index_slips: int
    notes: list
    clock: Clock

    _parts: ClassVar[dict[str, type]] = {"clock": Clock}


@dataclass
class SiftStats(_Part):
    pairs: int
    used: int
    missing_setting_alice: int
    missing_setting_bob: int
    unassignable: int
    flagged_pairs: int
    flagged_used: int
    flag_policy: str
    key: int
    test: int
    other: int
    patterns: dict
    patterns_used: dict
    pattern_selection: list | None
    pattern_conflicts: int
    psi_minus_relabelled: int


@dataclass
class Files(_Part):
    alice: str
    bob: str
    setup_hash: str


@dataclass
class IncompleteInput(_Part):
    file: str
    role: str
    state: str
    reason: str
    rounds: int
    message: str


@dataclass
class EstimateWarning(_Part):
    """Something that makes the numbers fragile (few rounds per input pair, no error seen, S above 2 sqrt 2, an
    interval outside the physical range); see :func:`~timetag.estimators.report.sample_warnings`."""
    code: str
    message: str


@dataclass(kw_only=True)
class Estimate(_Part):
    """Every number of ``timetag estimate``; see :func:`~timetag.estimators.report.estimate_from_counts` for the
    counts-level part and :func:`~timetag.estimators.pipeline.estimate` for the join/sift/file part."""

    rounds: int
    test_rounds: int
    key_rounds: int
    N: dict                      # "x,y" -> rounds with that input pair
    E: dict                      # "x,y" -> correlator (None without rounds)
    E_err: dict
    P_same: dict
    S: float | None
    S_err: float | None
    Q0: float | None
    Q0_err: float | None
    Q1: float | None
    Q1_err: float | None
    Q: float | None
    Q_err: float | None
    H_key_given_E: dict          # protocol -> entropy bound
    key_rate_per_event: dict     # protocol -> asymptotic rate
    key_rate_per_key_round: dict
    thresholds_depolarising: dict
    min_block_length: float | str | None
    finite_key: dict             # the finite-key parameters used
    fidelity: Fidelity
    bayes: Bayes | None = None   # only with posterior samples
    worst_case: WorstCase | None = None
    flagged_other_policy: OtherPolicy
    join: JoinSummary
    sift: SiftStats
    files: Files
    incomplete_inputs: list = field(default_factory=list)  # of IncompleteInput; empty when every input completed
    intervals: dict | None = None  # 68.3 % and 95 % intervals, with the method (and prior) that made them
    warnings: list = field(default_factory=list)  # of EstimateWarning; empty when nothing is fragile
    plots: list | None = None    # figure files, when the caller drew them

    _parts: ClassVar[dict[str, type]] = {"fidelity": Fidelity, "bayes": Bayes, "worst_case": WorstCase,
                                         "flagged_other_policy": OtherPolicy, "join": JoinSummary,
                                         "sift": SiftStats, "files": Files}
    _part_lists: ClassVar[dict[str, type]] = {"incomplete_inputs": IncompleteInput, "warnings": EstimateWarning}
    _optional: ClassVar[tuple[str, ...]] = ("bayes", "worst_case", "intervals", "plots")

    @classmethod
    def from_report(cls, report: dict, **parts: Any) -> "Estimate":
        """From the counts-level report of :func:`~timetag.estimators.report.estimate_from_counts` (a dict) and
        the pipeline's own parts as records (``join=JoinSummary(...)``, ...)."""
        return cls._build({**cls._fields_from_json(report), **parts})

    # read access by key, for code written against the JSON object
    def __getitem__(self, key: str):
        return self.to_json()[key]

    def get(self, key: str, default=None):
        return self.to_json().get(key, default)

    def __contains__(self, key) -> bool:
        return key in self.to_json()

    def __iter__(self):
        return iter(self.to_json())

    def keys(self):
        return self.to_json().keys()

    def items(self):
        return self.to_json().items()


__all__ = ["Estimate", "Fidelity", "Bayes", "Posterior", "WorstCase", "OtherPolicy", "Clock", "JoinSummary",
           "SiftStats", "Files", "IncompleteInput", "EstimateWarning"]
