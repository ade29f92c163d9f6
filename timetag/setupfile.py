"""The setup file: channel map, delays, windows and thresholds of one run (TOML).

One file describes both labs; the simulator writes it, ``calibrate`` updates it
and ``timetag process`` reads it.  Example (all times in picoseconds)::

    [meta]
    name = "lmu2022 simulation"
    schema = 1

    [labs.alice]
    role = "alice"                      # 'alice': BSM + 4 inputs; 'bob': 2 inputs, no BSM
    sync_channel = 1                    # excitation-attempt sync (absent for Bob)
    ready_channel = 6                   # hardware 'event ready' tag
    setting_channels = [7, 8, 9, 10]    # channel of input value 0, 1, 2, 3
    fluorescence_channels = [2, 3, 4, 5]
    delays_ps = { "1" = 0, "2" = 61230, ... }  # cable delay of every channel used (0 written out):
                                               # corrected time = raw time - delay
    bsm = [ { channel = 2, arm = "a", pol = "H" }, ... ]

    [labs.alice.herald]
    sync_reference = "next"     # window relative to the first sync AFTER the click
                                # ('previous': the last sync before it)
    window_start_ps = -120000   # acceptance window: click - sync in [start, stop)
    window_stop_ps = -60000
    coincidence_ps = 100000     # max time between the two clicks of a herald
    patterns = ["psi+"]         # which patterns make a round

    [labs.alice.round]
    trigger = "both"            # 'herald' (software), 'ready' (hardware) or 'both' (ready, cross-checked)
    ready_delay_ps = 1000000    # nominal 'ready' latency after the herald
    ready_tolerance_ps = 50000  # |ready - herald - delay| allowed for a match
    setting_window_ps = [0, 2000000]            # relative to the trigger, [start, stop)
    fluorescence_window_ps = [5000000, 25000000]
    threshold = 4               # output 'up' (1) when count >= threshold

    [labs.alice.device]         # optional: how `timetag live --source swabian` sets up the Time Tagger
    serial = "2138000ABC"       # default: the first one found
    resolution = "Standard"     # 'Standard', 'HighResA', 'HighResB', 'HighResC' (HighRes needs its licence)
    trigger_level_v = { "1" = 0.5, "2" = 0.08 }      # per channel, volts
    deadtime_ps = { "2" = 20000 }                    # per channel
    hardware_delay_ps = { "1" = 0 }                  # per channel, applied on the device (before the filter)
    event_divider = { "1" = 1 }                      # per channel, 1..65535
    conditional_filter = { trigger = [2, 3, 4, 5], filtered = [1] }  # record the sync only after a click
    test_signal_channels = [2, 3]                    # internal test signal, only for dry runs

Windows are half-open intervals ``[start, stop)`` relative to their reference
time, always on delay-corrected times (``raw - delays_ps[channel]``).  The herald
time is the corrected time of the later of the two clicks; the round's trigger is
the 'ready' tag (trigger 'ready'/'both') or the herald time + ``ready_delay_ps``
(trigger 'herald', or 'both' when the ready is missing).  Every mistake found on load is reported as a
:class:`SetupError` with the key path and the offending value.

Keys that decide which tags make a round or which bit it yields have no default: :func:`required_keys`
says which a lab must give (it depends on the trigger and on the BSM detectors).  Unknown keys are errors.
"""
from __future__ import annotations

import difflib
import hashlib
import numbers
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w

from .errors import SetupError
from .records import PATTERN_CODES

SCHEMA_VERSION = 1
ROLES = ("alice", "bob")
ARMS = ("a", "b")
POLS = ("H", "V")
TRIGGERS = ("herald", "ready", "both")
SYNC_REFERENCES = ("previous", "next")
RESOLUTIONS = ("Standard", "HighResA", "HighResB", "HighResC")  # the vendor's Resolution names
WINDOW_LIMIT_PS = 1 << 31  # the acceptance window lies within +-2**31 ps (2.1 ms) of its sync


@dataclass(frozen=True)
class BsmDetector:
    channel: int
    arm: str  # 'a' or 'b'
    pol: str  # 'H' or 'V'


@dataclass(frozen=True)
class HeraldConfig:
    sync_reference: str = "previous"
    window_start_ps: int = 30_000
    window_stop_ps: int = 110_000
    coincidence_ps: int = 100_000
    patterns: tuple[str, ...] = ("psi+",)

    @property
    def pattern_codes(self) -> tuple[int, ...]:
        return tuple(PATTERN_CODES[p] for p in self.patterns)


@dataclass(frozen=True)
class RoundConfig:
    trigger: str = "ready"
    ready_delay_ps: int = 1_000_000
    ready_tolerance_ps: int = 50_000
    setting_window_ps: tuple[int, int] = (0, 2_000_000)
    fluorescence_window_ps: tuple[int, int] = (5_000_000, 25_000_000)
    threshold: int = 4


@dataclass(frozen=True)
class HistogramConfig:
    """Side products of the herald stage (for calibration and plots)."""

    arrival_bin_ps: int = 500
    arrival_range_ps: tuple[int, int] = (-200_000, 200_000)  # click - sync, same reference as the window
    max_count: int = 256  # fluorescence count histogram has bins 0..max_count (last bin = overflow)


@dataclass(frozen=True)
class ConditionalFilter:
    """The Time Tagger's hardware conditional filter: each click on a trigger channel lets the next event of
    every filtered channel through; the filtered channels' other events are dropped on the device."""

    trigger: tuple[int, ...]
    filtered: tuple[int, ...]


@dataclass(frozen=True)
class DeviceConfig:
    """How a lab's Swabian Time Tagger is set up for a live run (``[labs.<name>.device]``, optional).

    Per-channel maps hold only the channels given; the others keep the device's defaults.  Without
    ``conditional_filter`` the filter is switched off; ``test_signal_channels`` get the internal test signal only
    in a dry run (``timetag live --test-signal``).
    """

    serial: str = ""
    resolution: str = "Standard"
    trigger_level_v: dict[int, float] = field(default_factory=dict)
    deadtime_ps: dict[int, int] = field(default_factory=dict)
    hardware_delay_ps: dict[int, int] = field(default_factory=dict)
    event_divider: dict[int, int] = field(default_factory=dict)
    conditional_filter: ConditionalFilter | None = None
    test_signal_channels: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        d: dict[str, Any] = {}
        if self.serial:
            d["serial"] = self.serial
        d["resolution"] = self.resolution
        for name in DEVICE_CHANNEL_MAPS:
            values = getattr(self, name)
            if values:
                d[name] = {str(k): v for k, v in sorted(values.items())}
        if self.conditional_filter is not None:
            d["conditional_filter"] = {"trigger": list(self.conditional_filter.trigger),
                                       "filtered": list(self.conditional_filter.filtered)}
        if self.test_signal_channels:
            d["test_signal_channels"] = list(self.test_signal_channels)
        return d


@dataclass(frozen=True)
class LabSetup:
    name: str
    role: str
    ready_channel: int | None = None
    sync_channel: int | None = None
    setting_channels: tuple[int, ...] = ()
    fluorescence_channels: tuple[int, ...] = ()
    bsm: tuple[BsmDetector, ...] = ()
    delays_ps: dict[int, int] = field(default_factory=dict)
    herald: HeraldConfig = field(default_factory=HeraldConfig)
    round: RoundConfig = field(default_factory=RoundConfig)
    histograms: HistogramConfig = field(default_factory=HistogramConfig)
    device: DeviceConfig | None = None

    @property
    def n_inputs(self) -> int:
        return len(self.setting_channels)

    def delay(self, channel: int) -> int:
        return int(self.delays_ps.get(int(channel), 0))

    @property
    def channels(self) -> tuple[int, ...]:
        """Every channel this lab's setup uses."""
        chans = set(self.setting_channels) | set(self.fluorescence_channels) | {d.channel for d in self.bsm}
        for c in (self.ready_channel, self.sync_channel):
            if c is not None:
                chans.add(c)
        return tuple(sorted(chans))


@dataclass(frozen=True)
class Setup:
    labs: dict[str, LabSetup]
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level tables, kept for round trips
    run: str = ""  # meta.run: names the run; setups that differ only by calibration share it

    def lab(self, name: str) -> LabSetup:
        try:
            return self.labs[name]
        except KeyError:
            raise SetupError(f"no lab {name!r} in the setup (labs: {', '.join(self.labs) or 'none'})", key="labs") from None

    # --- serialisation ---------------------------------------------------
    def to_dict(self) -> dict:
        meta: dict[str, Any] = {"name": self.name, "schema": SCHEMA_VERSION}
        if self.run:
            meta["run"] = self.run
        out: dict[str, Any] = {"meta": meta, "labs": {}}
        for key, lab in self.labs.items():
            d: dict[str, Any] = {"role": lab.role}
            if lab.sync_channel is not None:
                d["sync_channel"] = lab.sync_channel
            if lab.ready_channel is not None:
                d["ready_channel"] = lab.ready_channel
            d["setting_channels"] = list(lab.setting_channels)
            d["fluorescence_channels"] = list(lab.fluorescence_channels)
            d["delays_ps"] = {str(k): int(v) for k, v in sorted(lab.delays_ps.items())}
            if lab.bsm:
                d["bsm"] = [asdict(b) for b in lab.bsm]
            d["herald"] = _plain(asdict(lab.herald))
            d["round"] = _plain(asdict(lab.round))
            d["histograms"] = _plain(asdict(lab.histograms))
            if lab.device is not None:
                d["device"] = lab.device.to_dict()
            out["labs"][key] = d
        out.update(self.extra)
        return out

    def dumps(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def save(self, path) -> None:
        Path(path).write_text(self.dumps())

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical TOML text: identifies the processing parameters in outputs."""
        return hashlib.sha256(self.dumps().encode()).hexdigest()

    def with_lab(self, name: str, **changes) -> "Setup":
        """A copy with fields of one lab replaced (nested configs as whole dataclasses)."""
        labs = dict(self.labs)
        labs[name] = replace(labs[name], **changes)
        return replace(self, labs=labs)


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# --- loading and validation -------------------------------------------------
#
# Strict on purpose: a key whose value decides which tags make a round, or which bit a round yields, has no
# default.  A forgotten threshold or delay must stop the run with its name, not quietly borrow a number that
# suits some other lab.  Only bookkeeping may be left out: histogram binning, the heralding patterns (the
# paper's psi+), the meta table.

META_KEYS = ("name", "schema", "run")
LAB_KEYS = ("role", "sync_channel", "ready_channel", "setting_channels", "fluorescence_channels", "delays_ps",
            "bsm", "herald", "round", "histograms", "device")
BSM_KEYS = ("channel", "arm", "pol")
HERALD_KEYS = ("sync_reference", "window_start_ps", "window_stop_ps", "coincidence_ps", "patterns")
ROUND_KEYS = ("trigger", "ready_delay_ps", "ready_tolerance_ps", "setting_window_ps", "fluorescence_window_ps",
              "threshold")
HISTOGRAM_KEYS = ("arrival_bin_ps", "arrival_range_ps", "max_count")
DEVICE_CHANNEL_MAPS = ("trigger_level_v", "deadtime_ps", "hardware_delay_ps", "event_divider")
DEVICE_KEYS = ("serial", "resolution", *DEVICE_CHANNEL_MAPS, "conditional_filter", "test_signal_channels")
CONDITIONAL_FILTER_KEYS = ("trigger", "filtered")
# Bounds that hold for every Time Tagger model (the device's own ranges are checked when it is opened, before
# anything is set): a value outside them is a typo, refused when the setup is read.
TRIGGER_LEVEL_LIMIT_V = 5.0
MAX_DEADTIME_PS = 2**31 - 1  # the longest dead time of any model is 2147 us
MAX_EVENT_DIVIDER = 65535    # a 16-bit divider on the device
# Other top-level tables are kept as they are (Setup.extra); these names only serve to catch typos of them.
TOP_LEVEL_TABLES = ("meta", "labs", "clock", "simulation")

# Keys (under [labs.<name>]) every lab must give, and why each has no default.
ALWAYS_REQUIRED = {
    "role": "it decides the number of inputs and whether the lab heralds",
    "setting_channels": "they turn setting tags into input values",
    "fluorescence_channels": "their clicks are counted for the output bit",
    "delays_ps": "every window lies on delay-corrected times",
    "round.trigger": "it decides what makes a round",
    "round.setting_window_ps": "it decides which setting tag belongs to a round",
    "round.fluorescence_window_ps": "it decides which clicks are counted for the output bit",
    "round.threshold": "it decides the output bits",
}
# Keys a lab with BSM detectors must give: they decide which clicks herald.
HERALD_REQUIRED = {
    "sync_channel": "the BSM clicks are time-filtered against the sync",
    "herald.sync_reference": "it decides which sync the acceptance window is measured from",
    "herald.window_start_ps": "the acceptance window decides which clicks can herald",
    "herald.window_stop_ps": "the acceptance window decides which clicks can herald",
    "herald.coincidence_ps": "it decides which pairs of clicks are heralds",
}


def required_keys(lab_raw: dict) -> dict[str, str]:
    """Every key (path under ``[labs.<name>]``) this lab must give, with the reason it has no default.

    What is needed depends on the lab's trigger and on whether it has BSM detectors.  A trigger that is
    present but not valid adds nothing here: its own check names it.
    """
    rnd = lab_raw.get("round")
    trigger = rnd.get("trigger") if isinstance(rnd, dict) else None
    heralds = trigger in ("herald", "both")
    need = dict(ALWAYS_REQUIRED)
    if trigger in ("ready", "both"):
        need["ready_channel"] = f"trigger {trigger!r} takes the rounds from the 'ready' tags"
    if heralds:
        need["bsm"] = f"trigger {trigger!r} heralds on the BSM detectors"
        need["round.ready_delay_ps"] = f"trigger {trigger!r} places a round without its 'ready' at herald + this delay"
    if trigger == "both":
        need["round.ready_tolerance_ps"] = "trigger 'both' matches a 'ready' to a herald within this tolerance"
    if heralds or lab_raw.get("bsm"):
        need.update(HERALD_REQUIRED)
    return need


def load_setup(path) -> Setup:
    path = Path(path)
    if path.is_dir():
        raise SetupError("is a directory, expected a setup TOML file", path=path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SetupError(f"cannot read setup file: {exc.strerror}", path=path) from None
    except UnicodeDecodeError as exc:  # a tag or rounds file given as --setup, say
        raise SetupError(f"not a text (TOML) file: byte {exc.start} is {exc.object[exc.start:exc.start + 1]!r}, "
                         "not UTF-8 text", path=path) from None
    return loads_setup(text, path=path)


def loads_setup(text: str, path=None) -> Setup:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"not valid TOML: {exc}", path=path) from None
    return setup_from_dict(data, path=path)


def setup_from_dict(data: dict, path=None) -> Setup:
    v = _Validator(path)
    _check_top_level_names(v, data)
    meta = v.table("meta", data.get("meta", {}))
    v.known("meta", meta, META_KEYS)
    schema = meta.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        v.fail("meta.schema", schema, f"unsupported schema version (this timetag reads {SCHEMA_VERSION})")
    labs_raw = data.get("labs")
    if not isinstance(labs_raw, dict) or not labs_raw:
        v.fail("labs", labs_raw, "the setup must define at least one lab under [labs.<name>]")
    labs = {name: _lab_from_dict(v, name, raw) for name, raw in labs_raw.items()}
    extra = {k: val for k, val in data.items() if k not in ("meta", "labs")}
    run = meta.get("run", "")
    if not isinstance(run, str):
        v.fail("meta.run", run, "the run id is a string")
    return Setup(labs=labs, name=str(meta.get("name", "")), extra=extra, run=run)


def _check_top_level_names(v: "_Validator", data: dict) -> None:
    # unknown top-level tables are legitimate (kept for round trips), but '[lab.alice]' or '[clok]' is a typo
    for name in data:
        if name in TOP_LEVEL_TABLES:
            continue
        near = difflib.get_close_matches(name, TOP_LEVEL_TABLES, n=1, cutoff=0.75)
        if near:
            raise SetupError(f"unknown table (did you mean [{near[0]}]?)", key=name, path=v.path)


class _Validator:
    def __init__(self, path):
        self.path = path

    def fail(self, key, value, why):
        raise SetupError(f"{why} (got {value!r})", key=key, path=self.path)

    def missing(self, key, why, also=(), table=None):
        """``also``: more missing keys, relative to ``table`` (default: the table that holds ``key``)."""
        table = table or key.rpartition(".")[0]
        more = f"; also missing in [{table}]: {', '.join(also)}" if also else ""
        raise SetupError(f"is required (no default: {why}){more}", key=key, path=self.path)

    def table(self, key, value) -> dict:
        if not isinstance(value, dict):
            self.fail(key, value, "must be a table")
        return value

    def int_(self, key, value, *, min_=None, allow_none=False):
        if value is None and allow_none:
            return None
        # Integral: a setup built in Python may hold numpy integers (validate_lab)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            self.fail(key, value, "must be an integer")
        if min_ is not None and value < min_:
            self.fail(key, value, f"must be >= {min_}")
        return int(value)

    def choice(self, key, value, choices):
        if value not in choices:
            self.fail(key, value, f"must be one of {', '.join(map(repr, choices))}")
        return value

    def window(self, key, value):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            self.fail(key, value, "must be a [start, stop] pair of integers (ps)")
        a, b = (self.int_(key, x) for x in value)
        if b <= a:
            self.fail(key, value, "stop must be after start")
        return (a, b)

    def known(self, key, raw: dict, allowed):
        for k in raw:
            if k not in allowed:
                near = difflib.get_close_matches(str(k), allowed, n=2, cutoff=0.6)
                hint = f"did you mean {' or '.join(map(repr, near))}? " if near else ""
                raise SetupError(f"unknown key ({hint}known here: {', '.join(allowed)})",
                                 key=f"{key}.{k}", path=self.path)


def _lab_from_dict(v: _Validator, name: str, raw: dict) -> LabSetup:
    k = f"labs.{name}"
    v.table(k, raw)
    _check_known_keys(v, k, raw)
    _check_required(v, k, raw)
    role = v.choice(f"{k}.role", raw["role"], ROLES)
    sync = v.int_(f"{k}.sync_channel", raw.get("sync_channel"), allow_none=True)
    ready = v.int_(f"{k}.ready_channel", raw.get("ready_channel"), allow_none=True)
    settings = _channel_list(v, f"{k}.setting_channels", raw["setting_channels"])
    n_expected = 4 if role == "alice" else 2
    if len(settings) != n_expected:
        v.fail(f"{k}.setting_channels", list(settings),
               f"role {role!r} needs {n_expected} setting channels (input 0..{n_expected - 1})")
    fluo = _channel_list(v, f"{k}.fluorescence_channels", raw["fluorescence_channels"])
    if not fluo:
        v.fail(f"{k}.fluorescence_channels", [], "at least one fluorescence channel is needed for the read-out")
    bsm = _bsm_from_list(v, f"{k}.bsm", raw.get("bsm", []))
    herald = _herald_from_dict(v, f"{k}.herald", raw.get("herald", {}))
    rnd = _round_from_dict(v, f"{k}.round", raw["round"])
    hist = _hist_from_dict(v, f"{k}.histograms", raw.get("histograms", {}))
    if rnd.trigger in ("herald", "both") and len(bsm) < 2:
        v.fail(f"{k}.bsm", len(bsm), f"trigger {rnd.trigger!r} needs the BSM detectors (at least 2)")
    _check_channel_overlaps(v, k, sync, ready, settings, fluo, bsm)
    used = _used_channels(sync, ready, settings, fluo, bsm)
    delays = _delays_from_dict(v, f"{k}.delays_ps", raw["delays_ps"], used)
    device = _device_from_dict(v, f"{k}.device", raw["device"]) if "device" in raw else None
    lab = LabSetup(name=name, role=role, ready_channel=ready, sync_channel=sync, setting_channels=settings,
                   fluorescence_channels=fluo, bsm=bsm, delays_ps=delays, herald=herald, round=rnd, histograms=hist,
                   device=device)
    if device is not None and device.conditional_filter is not None:
        _check_conditional_filter(v, k, lab, device.conditional_filter)
    return lab


def _check_known_keys(v: _Validator, k: str, raw: dict) -> None:
    # before the required keys: 'treshold' is better reported as a typo than as a missing 'threshold'
    v.known(k, raw, LAB_KEYS)
    for sub, allowed in (("herald", HERALD_KEYS), ("round", ROUND_KEYS), ("histograms", HISTOGRAM_KEYS)):
        if sub in raw:
            v.known(f"{k}.{sub}", v.table(f"{k}.{sub}", raw[sub]), allowed)
    for i, d in enumerate(_list(v, f"{k}.bsm", raw.get("bsm", []))):
        v.known(f"{k}.bsm[{i}]", v.table(f"{k}.bsm[{i}]", d), BSM_KEYS)
    if "device" in raw:
        dev = v.table(f"{k}.device", raw["device"])
        v.known(f"{k}.device", dev, DEVICE_KEYS)
        if "conditional_filter" in dev:
            v.known(f"{k}.device.conditional_filter",
                    v.table(f"{k}.device.conditional_filter", dev["conditional_filter"]), CONDITIONAL_FILTER_KEYS)


def _check_required(v: _Validator, k: str, raw: dict) -> None:
    need = required_keys(raw)
    missing = [key for key in need if not _has(raw, key)]
    if missing:
        v.missing(f"{k}.{missing[0]}", need[missing[0]], also=missing[1:], table=k)


def _has(raw: dict, dotted: str) -> bool:
    head, _, rest = dotted.partition(".")
    if head not in raw:
        return False
    return not rest or not isinstance(raw[head], dict) or _has(raw[head], rest)


def _list(v, key, value):
    if not isinstance(value, (list, tuple)):
        v.fail(key, value, "must be a list")
    return value


def _channel_list(v, key, value) -> tuple[int, ...]:
    return tuple(v.int_(key, c) for c in _list(v, key, value))


def _bsm_from_list(v, key, value) -> tuple[BsmDetector, ...]:
    bsm = []
    for i, d in enumerate(_list(v, key, value)):
        kk = f"{key}[{i}]"
        for name in BSM_KEYS:
            if name not in d:
                v.missing(f"{kk}.{name}", "it places the detector in the Bell-state measurement")
        bsm.append(BsmDetector(v.int_(f"{kk}.channel", d["channel"]), v.choice(f"{kk}.arm", d["arm"], ARMS),
                               v.choice(f"{kk}.pol", d["pol"], POLS)))
    if len({(d.arm, d.pol) for d in bsm}) != len(bsm):
        v.fail(key, [asdict(d) for d in bsm], "two BSM detectors share the same arm and polarisation")
    return tuple(bsm)


def _check_channel_overlaps(v, k, sync, ready, settings, fluo, bsm) -> None:
    roles = {}
    for label, chans in (("sync_channel", [sync]), ("ready_channel", [ready]), ("setting_channels", settings),
                         ("bsm", [d.channel for d in bsm])):
        for c in chans:
            if c is None:
                continue
            if c in roles:  # also two BSM detectors on one channel: one click cannot be two detectors
                v.fail(f"{k}.{label}", c, f"channel already used as {roles[c]}")
            roles[c] = label
    for c in settings:
        if c in fluo:
            v.fail(f"{k}.setting_channels", c, "a setting channel cannot also be a fluorescence channel")


def _used_channels(sync, ready, settings, fluo, bsm) -> dict[int, str]:
    """Channel -> the key that uses it (the first one, for messages)."""
    used: dict[int, str] = {}
    for label, chans in (("sync_channel", [sync]), ("ready_channel", [ready]), ("setting_channels", settings),
                         ("fluorescence_channels", fluo), ("bsm", [d.channel for d in bsm])):
        for c in chans:
            if c is not None:
                used.setdefault(c, label)
    return used


def _delays_from_dict(v, k, raw, used: dict[int, str]) -> dict[int, int]:
    if not isinstance(raw, dict):
        v.fail(k, raw, "must be a table channel -> delay in ps")
    delays: dict[int, int] = {}
    for ch, d in raw.items():
        try:
            chn = int(ch)
        except ValueError:
            v.fail(k, ch, "keys must be channel numbers")
        if chn in delays:
            v.fail(f"{k}.{ch}", ch, f"channel {chn} has two delays")
        delays[chn] = v.int_(f"{k}.{ch}", d)
    # a missing entry would silently mean 0, and a forgotten cable delay shifts every window: 0 is written out
    missing = [c for c in sorted(used) if c not in delays]
    if missing:
        c = missing[0]
        v.missing(f"{k}.{c}", f"every channel the lab uses needs its delay, and channel {c} is in {used[c]}; "
                  f"write \"{c}\" = 0 if it has none", also=[str(m) for m in missing[1:]])
    return delays


def _herald_from_dict(v, k, raw) -> HeraldConfig:
    d = HeraldConfig()  # the window defaults only reach labs without BSM detectors (no heralds); patterns may default
    pats = tuple(_list(v, f"{k}.patterns", raw.get("patterns", list(d.patterns))))
    return _check_herald(v, k, HeraldConfig(raw.get("sync_reference", d.sync_reference),
                                            raw.get("window_start_ps", d.window_start_ps),
                                            raw.get("window_stop_ps", d.window_stop_ps),
                                            raw.get("coincidence_ps", d.coincidence_ps), pats))


def _round_from_dict(v, k, raw) -> RoundConfig:
    d = RoundConfig()  # only the 'ready' latency and tolerance fall back, where the trigger does not use them
    return _check_round(v, k, RoundConfig(raw["trigger"], raw.get("ready_delay_ps", d.ready_delay_ps),
                                          raw.get("ready_tolerance_ps", d.ready_tolerance_ps),
                                          raw["setting_window_ps"], raw["fluorescence_window_ps"], raw["threshold"]))


def _hist_from_dict(v, k, raw) -> HistogramConfig:
    d = HistogramConfig()
    return _check_histograms(v, k, HistogramConfig(raw.get("arrival_bin_ps", d.arrival_bin_ps),
                                                   raw.get("arrival_range_ps", list(d.arrival_range_ps)),
                                                   raw.get("max_count", d.max_count)))


# The rules of the [herald], [round] and [histograms] tables, written once: the loader applies them to what it
# read, validate_lab to a setup built in Python.  Each returns the table with its values normalised.

def _check_herald(v, k, h: HeraldConfig) -> HeraldConfig:
    ref = v.choice(f"{k}.sync_reference", h.sync_reference, SYNC_REFERENCES)
    start = v.int_(f"{k}.window_start_ps", h.window_start_ps)
    stop = v.int_(f"{k}.window_stop_ps", h.window_stop_ps)
    if stop <= start:
        v.fail(f"{k}.window_stop_ps", stop, f"acceptance window must end after it starts ({start})")
    if ref == "previous" and start < 0:
        v.fail(f"{k}.window_start_ps", start, "with sync_reference 'previous' the window lies after the sync (>= 0)")
    if ref == "next" and stop > 0:
        v.fail(f"{k}.window_stop_ps", stop, "with sync_reference 'next' the window lies before the sync (<= 0)")
    for key, val in (("window_start_ps", start), ("window_stop_ps", stop)):
        if abs(val) >= WINDOW_LIMIT_PS:
            v.fail(f"{k}.{key}", val, "the acceptance window must lie within +-2**31 ps (2.1 ms) of the sync")
    coin = v.int_(f"{k}.coincidence_ps", h.coincidence_ps, min_=0)
    pats = tuple(h.patterns)
    for p in pats:
        v.choice(f"{k}.patterns", p, ("psi+", "psi-"))
    if not pats:
        v.fail(f"{k}.patterns", [], "at least one heralding pattern is needed")
    return HeraldConfig(ref, start, stop, coin, pats)


def _check_round(v, k, r: RoundConfig) -> RoundConfig:
    return RoundConfig(
        trigger=v.choice(f"{k}.trigger", r.trigger, TRIGGERS),
        ready_delay_ps=v.int_(f"{k}.ready_delay_ps", r.ready_delay_ps, min_=0),
        ready_tolerance_ps=v.int_(f"{k}.ready_tolerance_ps", r.ready_tolerance_ps, min_=0),
        setting_window_ps=v.window(f"{k}.setting_window_ps", r.setting_window_ps),
        fluorescence_window_ps=v.window(f"{k}.fluorescence_window_ps", r.fluorescence_window_ps),
        threshold=v.int_(f"{k}.threshold", r.threshold, min_=1),
    )


def _check_histograms(v, k, g: HistogramConfig) -> HistogramConfig:
    return HistogramConfig(
        arrival_bin_ps=v.int_(f"{k}.arrival_bin_ps", g.arrival_bin_ps, min_=1),
        arrival_range_ps=v.window(f"{k}.arrival_range_ps", g.arrival_range_ps),
        max_count=v.int_(f"{k}.max_count", g.max_count, min_=1),
    )


def validate_lab(lab: LabSetup, path=None) -> None:
    """The setup file's rules for the windows, thresholds and histograms of a lab, for a :class:`LabSetup` built
    in Python (a loaded one has passed them already): :class:`SetupError` naming ``labs.<name>.<key>``.  The
    engine runs it before compiling a lab, so no value the loader would refuse reaches a kernel."""
    v = _Validator(path)
    k = f"labs.{lab.name}"
    _check_herald(v, f"{k}.herald", lab.herald)
    _check_round(v, f"{k}.round", lab.round)
    _check_histograms(v, f"{k}.histograms", lab.histograms)


# --- the device table ---------------------------------------------------------


def _device_from_dict(v, k, raw) -> DeviceConfig:
    serial = raw.get("serial", "")
    if not isinstance(serial, str):
        v.fail(f"{k}.serial", serial, "must be a string (the serial number printed on the Time Tagger)")
    resolution = v.choice(f"{k}.resolution", raw.get("resolution", "Standard"), RESOLUTIONS)
    levels = _channel_map(v, f"{k}.trigger_level_v", raw.get("trigger_level_v", {}),
                          lambda key, x: _trigger_level(v, key, x))
    dead = _channel_map(v, f"{k}.deadtime_ps", raw.get("deadtime_ps", {}),
                        lambda key, x: _int_in(v, key, x, 1, MAX_DEADTIME_PS))
    delay = _channel_map(v, f"{k}.hardware_delay_ps", raw.get("hardware_delay_ps", {}), v.int_)
    divider = _channel_map(v, f"{k}.event_divider", raw.get("event_divider", {}),
                           lambda key, x: _int_in(v, key, x, 1, MAX_EVENT_DIVIDER))
    cf = None
    if "conditional_filter" in raw:
        ck = f"{k}.conditional_filter"
        cf_raw = raw["conditional_filter"]
        for name in CONDITIONAL_FILTER_KEYS:
            if name not in cf_raw:
                v.missing(f"{ck}.{name}", "the filter needs both its trigger and its filtered channels")
        trig = _device_channels(v, f"{ck}.trigger", cf_raw["trigger"], non_empty=True)
        filt = _device_channels(v, f"{ck}.filtered", cf_raw["filtered"], non_empty=True)
        both = sorted(set(trig) & set(filt))
        if both:
            v.fail(f"{ck}.filtered", both, "a channel cannot be both a trigger and a filtered channel")
        cf = ConditionalFilter(trig, filt)
    test = _device_channels(v, f"{k}.test_signal_channels", raw.get("test_signal_channels", []))
    return DeviceConfig(serial=serial, resolution=resolution, trigger_level_v=levels, deadtime_ps=dead,
                        hardware_delay_ps=delay, event_divider=divider, conditional_filter=cf,
                        test_signal_channels=test)


def _device_channel(v, key, value) -> int:
    # rising edges are channels 1, 2, ...; falling edges -1, -2, ...: there is no channel 0
    c = v.int_(key, value)
    if c == 0:
        v.fail(key, value, "is not a Time Tagger channel (inputs are 1, 2, ...; falling edges -1, -2, ...)")
    return c


def _device_channels(v, key, value, non_empty=False) -> tuple[int, ...]:
    chans = tuple(_device_channel(v, key, c) for c in _list(v, key, value))
    if non_empty and not chans:
        v.fail(key, [], "needs at least one channel")
    if len(set(chans)) != len(chans):
        v.fail(key, list(chans), "names a channel twice")
    return chans


def _channel_map(v, k, raw, convert) -> dict:
    if not isinstance(raw, dict):
        v.fail(k, raw, 'must be a table channel -> value, e.g. { "1" = ... }')
    out: dict[int, Any] = {}
    for ch, value in raw.items():
        try:
            chn = int(ch)
        except ValueError:
            v.fail(k, ch, "keys must be channel numbers")
        chn = _device_channel(v, f"{k}.{ch}", chn)
        if chn in out:
            v.fail(f"{k}.{ch}", ch, f"channel {chn} is given twice")
        out[chn] = convert(f"{k}.{ch}", value)
    return out


def _int_in(v, key, value, lo, hi) -> int:
    x = v.int_(key, value, min_=lo)
    if x > hi:
        v.fail(key, value, f"must be <= {hi}")
    return x


def _trigger_level(v, key, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        v.fail(key, value, "must be a number of volts")
    x = float(value)
    if not abs(x) <= TRIGGER_LEVEL_LIMIT_V:  # also refuses nan
        v.fail(key, value, f"must be within +-{TRIGGER_LEVEL_LIMIT_V:g} V")
    return x


def _check_conditional_filter(v, k, lab: LabSetup, cf: ConditionalFilter) -> None:
    """The filter decides which tags exist at all, so it must agree with how the lab's rounds are made."""
    ck = f"{k}.device.conditional_filter"
    roles = _used_channels(lab.sync_channel, lab.ready_channel, lab.setting_channels, lab.fluorescence_channels,
                           lab.bsm)
    for c in cf.filtered:
        if c in roles and c != lab.sync_channel:
            v.fail(f"{ck}.filtered", c, f"channel {c} is the lab's {roles[c]}: the filter would drop tags that "
                   "decide rounds (only the sync may be filtered)")
    if lab.sync_channel is None or lab.sync_channel not in cf.filtered:
        return
    # Only the first sync after a click is recorded: the acceptance window can only be measured from it.
    if lab.herald.sync_reference != "next":
        v.fail(f"{k}.herald.sync_reference", lab.herald.sync_reference,
               "the conditional filter on the sync channel records only the sync after a click: "
               "the window must be measured from it ('next')")
    missing = [d.channel for d in lab.bsm if d.channel not in cf.trigger]
    if missing:
        v.fail(f"{ck}.trigger", list(cf.trigger), f"every BSM detector must open the filter, or its clicks have no "
               f"sync to be measured from (missing: {', '.join(map(str, missing))})")
    # The device lets through the first sync after the click in the stream's own time (before the delay
    # correction): a click the window accepts must come before its sync there too, or that sync is dropped.
    stop = lab.herald.window_stop_ps
    for d in lab.bsm:
        shift = lab.delay(d.channel) - lab.delay(lab.sync_channel)
        if stop + shift > 0:
            v.fail(f"{k}.herald.window_stop_ps", stop,
                   f"with the conditional filter, a click of channel {d.channel} accepted at the end of the window "
                   f"lies after its sync on the device (delays_ps: {lab.delay(d.channel)} for the click, "
                   f"{lab.delay(lab.sync_channel)} for the sync), so the device drops that sync: the window must "
                   f"stop at or before {-shift}")


def edit_setup_text(old_text: str, new: Setup) -> str:
    """``new`` written as an edit of ``old_text``: the values that differ are replaced in place and new keys added,
    so the user's comments, order and layout stay (``timetag calibrate`` rewrites a setup a person wrote).

    The result must read back as ``new`` (same hash); where an edit cannot say it (a key ``new`` drops, a value whose
    TOML form changed type), the canonical text of ``new`` is returned instead."""
    import tomlkit

    try:
        doc = tomlkit.parse(old_text)
    except Exception:  # tomlkit's parse errors have no common base class; the canonical text is always right
        return new.dumps()
    _merge_into(doc, new.to_dict())
    text = tomlkit.dumps(doc)
    try:
        if loads_setup(text).hash == new.hash:
            return text
    except SetupError:
        pass
    return new.dumps()


def _merge_into(table, values: dict) -> None:
    for key, value in values.items():
        current = table.get(key)
        if isinstance(value, dict) and hasattr(current, "items"):
            _merge_into(current, value)
        elif current is None or _plain_toml(current) != value:
            table[key] = value


def _plain_toml(item):
    unwrap = getattr(item, "unwrap", None)
    return unwrap() if unwrap is not None else item
