"""Opening a Swabian Time Tagger and setting it up from the setup's ``[labs.<name>.device]`` table.

:func:`open_tagger` turns the vendor library's failures into one line each (no device, device busy, licence,
USB error, unknown serial).  :func:`apply` sets the device as the table says and returns what the device then
reports (its getters and its own ``getConfiguration()`` record), for the run's provenance.  Both work on the
vendor module or on :mod:`.fake_swabian`, which has the same API.

Order of the checks: the setup loader refuses values no Time Tagger takes (:mod:`timetag.setupfile`); here every
value is checked against the opened device's own ranges before the first setter is called, so a refused table
leaves the device as it was.
"""
from __future__ import annotations

import json

from ..errors import SetupError, TimetagError
from ..setupfile import DEVICE_CHANNEL_MAPS, DeviceConfig

# The vendor library raises RuntimeError for a failed call; SWIG raises ValueError/TypeError for arguments
# it cannot convert or the library refuses.
VENDOR_ERRORS = (RuntimeError, ValueError, TypeError)


class DeviceError(TimetagError):
    """The Time Tagger cannot be opened or set up as asked."""


def open_tagger(module, serial: str = "", resolution: str = "Standard"):
    """``createTimeTagger(serial, resolution)``; every failure a :class:`DeviceError` in one line."""
    name = f"the Swabian Time Tagger{' ' + serial if serial else ''}"
    try:
        found = [str(s) for s in module.scanTimeTagger()]
    except VENDOR_ERRORS as exc:
        raise DeviceError(f"cannot open {name}: {explain_open_failure(str(exc), serial, [])}") from None
    try:
        return module.createTimeTagger(serial, getattr(module.Resolution, resolution))
    except VENDOR_ERRORS as exc:
        raise DeviceError(f"cannot open {name}: {explain_open_failure(str(exc), serial, found, resolution)}") \
            from None


def explain_open_failure(message: str, serial: str, found: list[str], resolution: str = "Standard") -> str:
    """The vendor's message for a failed ``createTimeTagger`` as what happened and what to do.

    ``found``: what ``scanTimeTagger()`` listed just before.  The library says "not attached or already in use"
    for both a missing and a busy device; the scan tells them apart where it can (it lists connected devices
    that no program has opened, and may list ones another program holds).
    """
    text = " ".join(message.split())
    low = text.lower()
    connected = f"connected: {', '.join(found)}" if found else "none connected"
    if "licen" in low:
        what = f" for resolution {resolution}" if resolution != "Standard" and "highres" in low else ""
        return f"licence missing or invalid{what}: {text}"
    if "not a valid time tagger serial" in low:
        return f"{serial!r} is not a valid Time Tagger serial number ({connected})"
    if "attached or already in use" in low:
        if serial and serial not in found:
            return f"no Time Tagger {serial} is connected ({connected}), or another program is using it"
        if found:
            which = serial or ", ".join(found)
            return (f"device busy: {which} is in use by another program (Time Tagger Lab, a script, another "
                    "timetag live): close it there")
        return ("no Time Tagger found: none is connected by USB and powered, or another program is using it")
    if "usb" in low:
        return f"USB error: {text} (check the cable, use a USB 3 port, or unplug and replug the device)"
    return text


def apply(tagger, device: DeviceConfig | None, *, lab: str = "", stream_channels=(), dry_run: bool = False) -> dict:
    """Set the device up as ``device`` says and return the applied record (what the device reports afterwards).

    ``device`` None: nothing is set; the record still says how the device is set.  ``dry_run``: switch on the
    internal test signal of ``device.test_signal_channels``; otherwise a test signal on a streamed channel is
    refused (its tags would not be the experiment's).
    """
    key = f"labs.{lab}.device" if lab else "device"
    if dry_run and (device is None or not device.test_signal_channels):
        raise SetupError("a dry run needs the channels to feed with the test signal", key=f"{key}.test_signal_channels")
    _check_channels(tagger, device, key, stream_channels)
    if device is not None:
        _check_ranges(tagger, device, key)
        _set(tagger, device, key, dry_run)
    record = read_back(tagger, device, stream_channels)
    record["dry_run"] = bool(dry_run)
    if device is not None:
        _verify(record, device, key)
    if not dry_run:
        on = [c for c in stream_channels if record["channels"].get(str(c), {}).get("test_signal")]
        if on:
            raise DeviceError(f"the Time Tagger's internal test signal is on for channel(s) {', '.join(map(str, on))}: "
                              "their tags would not be the experiment's (a dry run is --test-signal)")
    return record


def configured_channels(device: DeviceConfig | None) -> list[int]:
    if device is None:
        return []
    chans: set[int] = set(device.test_signal_channels)
    for name in DEVICE_CHANNEL_MAPS:
        chans |= set(getattr(device, name))
    if device.conditional_filter is not None:
        chans |= set(device.conditional_filter.trigger) | set(device.conditional_filter.filtered)
    return sorted(chans)


def _check_channels(tagger, device: DeviceConfig | None, key: str, stream_channels) -> None:
    """Every channel named (streamed or configured) is an input of this device; only getters are called."""
    model = _describe(tagger)
    inputs = {abs(int(c)) for c in _call(tagger.getChannelList, key, model)}
    for c in sorted(set(configured_channels(device)) | {int(c) for c in stream_channels}, key=abs):
        if abs(c) not in inputs:  # a falling edge -c is the same input as c
            raise SetupError(f"channel {c} is not an input of {model} (inputs 1..{max(inputs, default=0)})",
                             key=_channel_key(key, device, c))


def _check_ranges(tagger, device: DeviceConfig, key: str) -> None:
    """Every value within what this device takes; only getters are called."""
    model = _describe(tagger)
    ranges = (("trigger_level_v", tagger.getTriggerLevelRange, "V"), ("deadtime_ps", tagger.getDeadtimeRange, "ps"),
              ("hardware_delay_ps", tagger.getDelayHardwareRange, "ps"))
    for name, get_range, unit in ranges:
        for c, value in sorted(getattr(device, name).items()):
            k = f"{key}.{name}.{c}"
            lo, hi = _call(get_range, k, model, c)
            if not lo <= value <= hi:
                raise SetupError(f"must be within [{lo:g}, {hi:g}] {unit} on {model} (got {value!r})", key=k)


def _set(tagger, device: DeviceConfig, key: str, dry_run: bool) -> None:
    model = _describe(tagger)
    for c, v in sorted(device.trigger_level_v.items()):
        _call(tagger.setTriggerLevel, f"{key}.trigger_level_v.{c}", model, c, v)
    for c, v in sorted(device.deadtime_ps.items()):
        _call(tagger.setDeadtime, f"{key}.deadtime_ps.{c}", model, c, v)
    # before the filter: the hardware delay moves tags before the conditional filter sees them
    for c, v in sorted(device.hardware_delay_ps.items()):
        _call(tagger.setDelayHardware, f"{key}.hardware_delay_ps.{c}", model, c, v)
    for c, v in sorted(device.event_divider.items()):
        _call(tagger.setEventDivider, f"{key}.event_divider.{c}", model, c, v)
    cf = device.conditional_filter
    if cf is None:  # the table describes the device: no filter written means none, whatever was set before
        _call(tagger.clearConditionalFilter, f"{key}.conditional_filter", model)
    else:
        _call(tagger.setConditionalFilter, f"{key}.conditional_filter", model, list(cf.trigger), list(cf.filtered))
    if device.test_signal_channels:
        _call(tagger.setTestSignal, f"{key}.test_signal_channels", model, list(device.test_signal_channels),
              bool(dry_run))


def read_back(tagger, device: DeviceConfig | None, stream_channels=()) -> dict:
    """How the device is set, from its getters (each streamed and each configured channel) and its own record."""
    chans = sorted(set(configured_channels(device)) | {int(c) for c in stream_channels}, key=lambda c: (abs(c), c))
    per_channel = {}
    for c in chans:
        per_channel[str(c)] = {
            "trigger_level_v": _maybe(tagger.getTriggerLevel, c),
            "deadtime_ps": _maybe(tagger.getDeadtime, c),
            "hardware_delay_ps": _maybe(tagger.getDelayHardware, c),
            "event_divider": _maybe(tagger.getEventDivider, c),
            "test_signal": _maybe(tagger.getTestSignal, c),
        }
    trig, filt = _maybe(tagger.getConditionalFilterTrigger), _maybe(tagger.getConditionalFilterFiltered)
    raw = _maybe(tagger.getConfiguration)
    try:
        configuration = json.loads(raw) if raw is not None else None
    except ValueError:  # kept as the device said it, even if it is not the JSON it is documented to be
        configuration = raw
    return {
        "serial": _maybe(tagger.getSerial),
        "model": _maybe(tagger.getModel),
        "resolution": device.resolution if device is not None else "Standard",
        "requested": device.to_dict() if device is not None else None,
        "channels": per_channel,
        "conditional_filter": {"trigger": [int(c) for c in trig or ()], "filtered": [int(c) for c in filt or ()]},
        "configuration": configuration,
    }


def _verify(record: dict, device: DeviceConfig, key: str) -> None:
    """The settings that decide which tags exist must read back as set (trigger levels and dead times are
    rounded by the device: recorded, not compared)."""
    cf = record["conditional_filter"]
    want = device.conditional_filter
    want_sets = (set(want.trigger), set(want.filtered)) if want is not None else (set(), set())
    if (set(cf["trigger"]), set(cf["filtered"])) != want_sets:
        raise DeviceError(f"[{key}.conditional_filter] the Time Tagger reports trigger {cf['trigger']}, filtered "
                          f"{cf['filtered']} after being set to {sorted(want_sets[0])}, {sorted(want_sets[1])}")
    for name in ("hardware_delay_ps", "event_divider"):
        for c, v in getattr(device, name).items():
            got = record["channels"][str(c)][name]
            if got != v:
                raise DeviceError(f"[{key}.{name}.{c}] the Time Tagger reports {got} after being set to {v}")


def _call(method, key: str, model: str, *args):
    try:
        return method(*args)
    except VENDOR_ERRORS as exc:
        raise DeviceError(f"[{key}] {model} refused {method.__name__}({', '.join(map(repr, args))}): "
                          f"{' '.join(str(exc).split())}") from None


def _maybe(getter, *args):
    # a getter the model lacks (e.g. the hardware delay of a Time Tagger 20) leaves a gap in the record
    try:
        value = getter(*args)
    except VENDOR_ERRORS:
        return None
    if isinstance(value, (tuple, list)):
        return list(value)
    return value


def _describe(tagger) -> str:
    model, serial = _maybe(tagger.getModel), _maybe(tagger.getSerial)
    return " ".join(x for x in (model or "the Time Tagger", serial or "") if x)


def _channel_key(key: str, device: DeviceConfig | None, c: int) -> str:
    if device is None:
        return key.rpartition(".device")[0] or key
    for name in DEVICE_CHANNEL_MAPS:
        if c in getattr(device, name):
            return f"{key}.{name}.{c}"
    if device.conditional_filter is not None:
        if c in device.conditional_filter.trigger:
            return f"{key}.conditional_filter.trigger"
        if c in device.conditional_filter.filtered:
            return f"{key}.conditional_filter.filtered"
    if c in device.test_signal_channels:
        return f"{key}.test_signal_channels"
    return key.rpartition(".device")[0] or key
