"""Build a live source from the command line's ``--source`` spec."""
from __future__ import annotations

from pathlib import Path

from ..errors import SetupError, TimetagError
from ..formats._common import check_bad_record_options
from ..setupfile import Setup
from .sources import Source

SOURCE_HELP = ("sim | swabian | swabian-fake[:FILE] | replay:FILE | follow:FILE")


def parse_speed(text: str | float | None) -> float | None:
    """'max' / 'inf' / 0 -> None (unpaced); otherwise a positive factor."""
    if text is None:
        return 1.0
    if isinstance(text, str) and text.strip().lower() in ("max", "inf", "unpaced", "0"):
        return None
    try:
        v = float(text)
    except ValueError:
        raise TimetagError(f"--speed must be a positive number or 'max' (got {text!r})") from None
    if v == 0 or v == float("inf"):
        return None
    if not v > 0:  # negative, or nan (which no comparison catches)
        raise TimetagError(f"--speed must be positive (got {text!r})")
    return v


def lab_roles(setup: Setup) -> tuple[str, str]:
    """Names of the Alice-role and Bob-role labs (for the two-lab simulated device)."""
    by_role = {}
    for name, lab in setup.labs.items():
        by_role.setdefault(lab.role, name)
    if "alice" not in by_role or "bob" not in by_role:
        raise SetupError(f"the simulated device feeds two labs; the setup has roles "
                         f"{sorted({lab.role for lab in setup.labs.values()})} (need 'alice' and 'bob')", key="labs")
    return by_role["alice"], by_role["bob"]


def single_lab(setup: Setup, lab: str | None, what: str) -> str:
    if lab is not None:
        setup.lab(lab)
        return lab
    if len(setup.labs) == 1:
        return next(iter(setup.labs))
    raise TimetagError(f"{what} is one lab: choose it with --lab ({' | '.join(setup.labs)})")


def parse_overflows(specs) -> list[tuple[int, int]]:
    """'BEGIN_S:END_S' device-time seconds -> [(begin_ps, end_ps)]."""
    out = []
    for s in specs or ():
        try:
            a, b = (float(x) for x in s.split(":"))
        except ValueError:
            raise TimetagError(f"--inject-overflow must be BEGIN_S:END_S in device seconds (got {s!r})") from None
        if b <= a:
            raise TimetagError(f"--inject-overflow {s!r}: the end must be after the begin")
        out.append((int(a * 1e12), int(b * 1e12)))
    return out


def build_source(spec: str, setup: Setup, *, lab: str | None = None, speed: float | None = 1.0, seed: int = 1,
                 preset: str = "lmu2022", serial: str = "", idle_timeout: float | None = None,
                 overflows=(), sim_params: dict | None = None, on_bad_record: str = "fail",
                 max_jump_ps: int | None = None, test_signal: bool = False,
                 stream_buffer: int | None = None) -> tuple[Source, tuple[str, ...]]:
    """(source, labs to process) for a ``--source`` value.

    ``idle_timeout`` (follow): None or 0 waits for data as long as the acquisition runs.  ``on_bad_record``,
    ``max_jump_ps`` (replay, follow): what a bad record does, as for :func:`timetag.formats.open_tags`.
    ``test_signal`` (swabian, swabian-fake): a dry run on the device's internal test signal (the lab's
    ``device.test_signal_channels``); ``stream_buffer``: events the device's stream holds between two polls.
    """
    bad_opts = dict(zip(("on_bad_record", "max_jump_ps"), check_bad_record_options(on_bad_record, max_jump_ps)))
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("replay", "follow") and not arg:
        raise TimetagError(f"--source {kind}:FILE needs a file (got {spec!r})")
    if kind == "sim":
        from .simdevice import SimDevice

        labs = lab_roles(setup)
        if lab:
            setup.lab(lab)
        src = SimDevice(speed=speed, preset=preset, seed=seed, labs=labs, sim_params=sim_params)
        src.simulator()  # built now: a bad preset or parameter is refused before the run makes its files
        return src, ((lab,) if lab else labs)
    if kind == "replay":
        from .replay import ReplaySource

        name = single_lab(setup, lab, "a replayed file")
        return ReplaySource(_openable(arg, bad_opts), lab=name, speed=speed, **bad_opts), (name,)
    if kind == "follow":
        from .replay import follow_source

        name = single_lab(setup, lab, "a followed file")
        return follow_source(Path(arg), lab=name, idle_timeout=idle_timeout or None, **bad_opts), (name,)
    if kind in ("swabian", "swabian-fake"):
        from .swabian import SwabianSource

        name = single_lab(setup, lab, "a time tagger")
        channels = setup.lab(name).channels
        device = setup.lab(name).device
        if test_signal and (device is None or not device.test_signal_channels):
            raise SetupError("--test-signal needs the channels to feed: test_signal_channels = [...] in this table",
                             key=f"labs.{name}.device")
        if stream_buffer is not None and not stream_buffer >= 1:
            raise TimetagError(f"--stream-buffer must be >= 1 event (got {stream_buffer})")
        module = None
        if kind == "swabian-fake":
            module = _fake_module(setup, name, arg, speed, seed, preset, overflows, sim_params,
                                  serial=serial or (device.serial if device is not None else ""))
        elif overflows:
            raise TimetagError("--inject-overflow only applies to --source swabian-fake")
        buffer_opt = {"n_max_events": int(stream_buffer)} if stream_buffer is not None else {}
        src = SwabianSource(channels, lab=name, serial=serial, device=device, dry_run=test_signal, module=module,
                            **buffer_opt)
        # the device opened and set up now: a missing package or device, or a set-up it refuses, ends the run
        # before it makes its files
        src.connect()
        if kind == "swabian-fake":
            src.speed = module._clock.speed  # the fake device's clock pace: lag is measured against it
            src.description = f"fake Swabian Time Tagger ({arg or 'simulated tags'}), channels {list(channels)}"
        return src, (name,)
    raise TimetagError(f"unknown --source {spec!r} (expected {SOURCE_HELP})")


def _existing(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise TimetagError(f"{p}: no such file")
    return p


def _openable(path: str, read_opts: dict) -> Path:
    """A replayed file, opened once before the run: a file that cannot be read (empty, unknown format, damaged
    header) is refused before the run makes a rounds file."""
    from .replay import open_tag_reader

    p = _existing(path)
    close = getattr(open_tag_reader(p, chunk_size=1, **read_opts), "close", None)
    if close:
        close()
    return p


def _fake_module(setup, name, arg, speed, seed, preset, overflows, sim_params=None, serial=""):
    from .fake_swabian import FakeTimeTaggerModule, WallClock

    if arg:
        from .replay import open_tag_reader

        tags = iter(open_tag_reader(_existing(arg), chunk_size=200_000))
    else:
        from .simdevice import SimDevice

        sim = SimDevice(speed=None, preset=preset, seed=seed, labs=lab_roles(setup), sim_params=sim_params)
        idx = 0 if setup.lab(name).role == "alice" else 1
        tags = (b.chunks[sim.labs[idx]] for b in sim)
    # speed None (unpaced) has no meaning for a device clock: run it fast instead.  A file-fed fake
    # reports itself finished once the file is used up (end_time_ps=0); a simulator-fed one runs on.
    return FakeTimeTaggerModule(tags, overflows=overflows, clock=WallClock(speed or 100.0),
                                end_time_ps=0 if arg else None, devices=(serial or "1740000FAK",))
