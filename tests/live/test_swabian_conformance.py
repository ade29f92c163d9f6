"""The fake Time Tagger against the installed vendor package: every name the fake offers must be the vendor's, with
the same parameters, defaults, property-or-method kind, enum values and return types; and every vendor name the
adapter uses must be one the fake offers (so that it is compared here).

The vendor module is SWIG-generated: most functions carry an ``inspect.signature`` with C++ type names as string
annotations; overloaded ones are ``(*args, **kwargs)`` and their parameters are read from the docstring's
``:type name:`` lines (one list per ``*Overload N:*``).  C++ return types are mapped to what the fake declares
(``std::vector<int>`` -> ``tuple[int, ...]``, ``ArgOutCallback<T>`` -> a numpy array of dtype T, ...).
"""
from __future__ import annotations

import enum
import inspect
import re

import numpy as np
import pytest

from timetag.live import fake_swabian as fake
from timetag.live.fake_swabian import FAKE_ONLY, VENDOR_API, FakeTimeTaggerModule, StepClock

TT = pytest.importorskip("Swabian.TimeTagger")

FAKE_CLASSES = {name: getattr(fake, name) for name in VENDOR_API if name != "module"}

# C++ scalar types as the fake declares them in Python
SCALARS = {"void": "None", "None": "None", "bool": "bool", "double": "float", "float": "float", "int": "int",
           "long long": "int", "unsigned int": "int", "uint64_t": "int", "uint32_t": "int", "int64_t": "int",
           "std::string": "str", "std::string const &": "str"}
# element types of the numpy arrays SWIG returns for ArgOutCallback< T,size_t >
ARRAY_DTYPES = {"long long": np.int64, "int64_t": np.int64, "int32_t": np.int32, "uint8_t": np.uint8,
                "uint16_t": np.uint16, "double": np.float64}
VENDOR_CLASSES = ("TimeTagger", "TimeTaggerBase", "TimeTagStreamBuffer", "TimeTagStream", "FileWriter")


def python_type(cpp: str) -> str:
    """The fake's annotation for a vendor C++ type name (fails on a type this table does not know yet)."""
    cpp = cpp.strip().strip("'\"")
    if cpp in SCALARS:
        return SCALARS[cpp]
    m = re.fullmatch(r"std::vector< (.+?),std::allocator< .* > >", cpp)
    if m:
        return f"tuple[{python_type(m.group(1))}, ...]"
    if re.fullmatch(r"ArgOutCallback< (.+?),size_t >", cpp):
        return "np.ndarray"
    if cpp in VENDOR_CLASSES:
        return "TimeTagger" if cpp == "TimeTaggerBase" else cpp
    raise AssertionError(f"no Python type known for the vendor's C++ type {cpp!r}: extend SCALARS")


def vendor_overloads(func) -> list[list[tuple[str, bool]]]:
    """[(parameter, optional), ...] per overload, ``self`` left out."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        sig = None
    kinds = {p.kind for p in sig.parameters.values()} if sig else set()
    if sig is not None and not kinds & {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}:
        return [[(p.name, p.default is not inspect.Parameter.empty) for p in sig.parameters.values()
                 if p.name != "self"]]
    doc = func.__doc__ or ""
    parts = re.split(r"\*Overload \d+:\*", doc)
    parts = parts[1:] if len(parts) > 1 else parts
    out = []
    for part in parts:
        out.append([(name, "optional" in kind) for name, kind in re.findall(r":type (\w+):([^\n]*)", part)])
    assert out, f"{func}: neither a signature nor documented parameters"
    return out


def vendor_defaults(func) -> dict:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in sig.parameters.values() if p.default is not inspect.Parameter.empty}


def vendor_return(func) -> str | None:
    try:
        ann = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        return None
    return None if ann is inspect.Signature.empty else str(ann)


def fake_params(func) -> list[tuple[str, bool]]:
    return [(p.name, p.default is not inspect.Parameter.empty) for p in inspect.signature(func).parameters.values()
            if p.name != "self"]


def fake_return(func) -> str:
    return str(func.__annotations__.get("return", "")).strip("'\"")


def check_callable(where: str, real, mine) -> None:
    overloads = vendor_overloads(real)
    assert fake_params(mine) in overloads, f"{where}: parameters {fake_params(mine)}, the vendor's {overloads}"
    mine_defaults = {p.name: p.default for p in inspect.signature(mine).parameters.values()}
    for name, default in vendor_defaults(real).items():
        assert mine_defaults.get(name) == default, f"{where}: default of {name} {mine_defaults.get(name)!r}, " \
                                                   f"the vendor's {default!r}"
    ret = vendor_return(real)
    if ret is not None and not where.endswith(".__init__"):
        assert fake_return(mine) == python_type(ret), f"{where}: returns {fake_return(mine)!r}, the vendor {ret!r}"


# --- module level ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VENDOR_API["module"])
def test_module_names_match_the_vendor(name):
    assert hasattr(TT, name), f"the vendor package has no {name}"
    real, mine = getattr(TT, name), getattr(FakeTimeTaggerModule([]), name)
    if isinstance(real, type) and issubclass(real, enum.Enum):
        assert isinstance(mine, type) and issubclass(mine, enum.Enum), name
        for base in (enum.IntFlag, enum.IntEnum):
            assert issubclass(real, base) == issubclass(mine, base), f"{name}: enum kind"
        assert {k: int(v) for k, v in real.__members__.items()} == {k: int(v) for k, v in mine.__members__.items()}
    elif isinstance(real, type):
        assert isinstance(mine, type), f"{name} is a class in the vendor package"
    else:
        assert callable(real) and callable(mine) and not isinstance(mine, type), name
        check_callable(name, real, mine)


# --- classes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, name", [(c, n) for c in FAKE_CLASSES for n in VENDOR_API[c]])
def test_class_members_match_the_vendor(cls, name):
    real_cls, mine_cls = getattr(TT, cls), FAKE_CLASSES[cls]
    assert hasattr(real_cls, name), f"the vendor's {cls} has no {name}"
    real, mine = inspect.getattr_static(real_cls, name), inspect.getattr_static(mine_cls, name)
    for c in real_cls.__mro__:  # getattr_static stops at the first class that has it
        if name in vars(c):
            real = vars(c)[name]
            break
    if isinstance(real, property):
        assert isinstance(mine, property), f"{cls}.{name} is a property in the vendor package"
        ann = {}
        for c in reversed(real_cls.__mro__):
            ann.update(getattr(c, "__annotations__", {}))
        assert fake_return(mine.fget) == python_type(ann[name]), f"{cls}.{name}: type"
    else:
        assert callable(real) and not isinstance(mine, property), f"{cls}.{name} is a method in the vendor package"
        check_callable(f"{cls}.{name}", real, mine)


def test_buffer_arrays_have_the_vendor_dtypes():
    from live_cases import make_stream

    mod = FakeTimeTaggerModule(make_stream(3), clock=StepClock(10**11, t0_ps=-(10**11)))
    buf = mod.TimeTagStream(mod.createTimeTagger(), 1000, [2, 3, 6]).getData()
    assert buf.size > 0
    for name in ("getTimestamps", "getChannels", "getEventTypes", "getMissedEvents"):
        cpp = re.fullmatch(r"ArgOutCallback< (.+?),size_t >", vendor_return(getattr(TT.TimeTagStreamBuffer, name)))
        arr = getattr(buf, name)()
        assert isinstance(arr, np.ndarray) and arr.dtype == ARRAY_DTYPES[cpp.group(1)], name


def test_a_buffer_cannot_be_constructed_in_either():
    with pytest.raises(AttributeError, match="No constructor defined"):
        TT.TimeTagStreamBuffer()
    with pytest.raises(AttributeError, match="No constructor defined"):
        fake.TimeTagStreamBuffer()


def test_vendor_functions_return_tuples_for_vectors():
    # the one vector-returning call that works without a device: SWIG gives a tuple, so the fake does too
    assert isinstance(TT.scanTimeTagger(), tuple)
    assert isinstance(FakeTimeTaggerModule([]).scanTimeTagger(), tuple)


def test_the_fake_offers_nothing_public_beyond_the_vendor_names_and_its_own_listed_ones():
    mod = FakeTimeTaggerModule([])
    public = {n for n in dir(mod) if not n.startswith("_")}
    assert public == set(VENDOR_API["module"]) | set(FAKE_ONLY["module"])
    for cls, names in VENDOR_API.items():
        if cls == "module":
            continue
        declared = {n for n in vars(FAKE_CLASSES[cls]) if not n.startswith("_")}
        assert declared <= set(names) | {"__init__"}, f"{cls}: {sorted(declared - set(names))} not compared"


# --- what the adapter uses --------------------------------------------------------------------------------------


class _Recorder:
    """Wraps the fake module and everything it hands out, logging each vendor name used as (owner, name)."""

    def __init__(self, target, owner: str, log: set):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_log", log)

    def __getattr__(self, name):
        self._log.add((self._owner, name))
        return _wrap(getattr(self._target, name), self._log, owner_of_result=name)

    def __setattr__(self, name, value):
        raise AssertionError(f"the adapter sets {self._owner}.{name}")

    def __call__(self, *args, **kwargs):
        result = self._target(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
        return _wrap(result, self._log)


def _unwrap(x):
    if isinstance(x, _Recorder):
        return object.__getattribute__(x, "_target")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    return x


def _wrap(value, log, owner_of_result=None):
    if isinstance(value, type) and value.__module__ == fake.__name__:
        return _Recorder(value, value.__name__, log)  # a vendor class (or enum): its attributes are logged too
    if type(value).__module__ == fake.__name__ and not isinstance(value, enum.Enum):
        return _Recorder(value, type(value).__name__, log)  # an instance: the tagger, a stream, a buffer
    if callable(value) and not isinstance(value, type):
        def call(*args, **kwargs):
            return _wrap(value(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()}), log)
        return call
    return value


def test_every_vendor_name_the_adapter_uses_is_in_the_fake_and_compared(tmp_path):
    from live_cases import make_stream
    from timetag.live.swabian import SwabianSource
    from timetag.setupfile import ConditionalFilter, DeviceConfig

    whole = make_stream(20, seed=1)
    inner = FakeTimeTaggerModule(whole, overflows=[(300_000_000, 320_000_000)], errors=[500_000_000],
                                 clock=StepClock(50_000_000, t0_ps=-50_000_000), end_time_ps=int(whole.time[-1]) + 1)
    log: set = set()
    device = DeviceConfig(resolution="HighResA", trigger_level_v={2: 0.1}, deadtime_ps={2: 5000},
                          hardware_delay_ps={3: 100}, event_divider={3: 1},
                          conditional_filter=ConditionalFilter((2,), (9,)), test_signal_channels=(10,))
    src = SwabianSource([2, 3, 6, 7, 8, 9, 10], module=_Recorder(inner, "module", log), device=device,
                        poll_interval=0.0, n_max_events=8, raw_path=tmp_path / "a.ttbin", raw_max_file_size=1 << 20)
    src.provenance()
    assert sum(len(b.chunks["alice"]) for b in src) > 0
    src.close()
    assert inner.full_buffers > 0 and inner.file_writers  # every path ran
    # and the other paths: a table without a filter, a run of a given device time
    inner = FakeTimeTaggerModule(whole, clock=StepClock(50_000_000, t0_ps=-50_000_000))
    src = SwabianSource([2, 3], module=_Recorder(inner, "module", log), device=DeviceConfig(), poll_interval=0.0,
                        duration_device_s=0.0005)
    assert len(list(src)) == 10
    src.close()
    used = {(owner, name) for owner, name in log if not (owner in ("TagType", "Resolution", "ChannelEdge"))}
    enums_used = {(owner, name) for owner, name in log if owner in ("TagType", "Resolution", "ChannelEdge")}
    for owner, name in sorted(used):
        listed = VENDOR_API["module" if owner == "module" else owner]
        assert name in listed, f"the adapter uses {owner}.{name}, which the fake does not declare as vendor API"
        real_owner = TT if owner == "module" else getattr(TT, owner)
        assert hasattr(real_owner, name), f"the adapter uses {owner}.{name}, which the vendor package lacks"
    for owner, name in enums_used:
        assert name in getattr(TT, owner).__members__, f"{owner}.{name}"
    for expected in (("TimeTagStreamBuffer", "size"), ("TimeTagStreamBuffer", "tStart"),
                     ("TimeTagger", "setConditionalFilter"), ("TimeTagger", "clearConditionalFilter")):
        assert expected in used
