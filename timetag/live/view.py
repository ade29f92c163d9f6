"""The terminal view of a live run (rich), refreshed about once a second from the runner's status snapshots.

:func:`render` builds the renderable from one status dict (pure: snapshot tests print it to a recording
console); :class:`LiveView` is the status callback that keeps a ``rich.live.Live`` display up to date.
"""
from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

_SPARK = " ▁▂▃▄▅▆▇█"
_EST_KEYS = (("S", "S"), ("Q0", "Q0"), ("Q1", "Q1"), ("key_rate", "key rate"), ("r", "key rate"))


def _rate(x) -> str:
    if x is None:
        return "–"
    for unit, f in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= f:
            return f"{x / f:.2f} {unit}/s"
    return f"{x:.2f} /s"


def _spark(values) -> str:
    if not values:
        return ""
    top = max(values) or 1
    return "".join(_SPARK[min(8, int(round(8 * v / top)))] for v in values)


def _lab_table(snap: dict) -> Table:
    t = Table(expand=False, show_edge=False, pad_edge=False)
    t.add_column("channel", justify="right")
    t.add_column("rate", justify="right")
    t.add_column("total", justify="right")
    rates, totals = snap.get("channel_rates", {}), snap.get("channel_totals", {})
    for ch in sorted(rates, key=int):
        style = "red" if ch in snap.get("watched_channels", []) and not rates.get(ch) and snap.get("interval_s") else ""
        t.add_row(ch, Text(_rate(rates.get(ch)), style=style), str(totals.get(ch, 0)))
    return t


def _lab_summary(snap: dict) -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    her = snap.get("heralds", {})
    hr = snap.get("herald_rates", {})
    t.add_row("heralds", "  ".join(f"{p}: {her[p]} ({_rate(hr.get(p))})" for p in her if p != "none" or her[p]))
    flags = {k: v for k, v in snap.get("flags", {}).items() if v}
    t.add_row("rounds", f"{snap.get('rounds', 0)}   up: {snap.get('outputs_up', 0)}")
    t.add_row("flags", ", ".join(f"{k} {v}" for k, v in flags.items()) or "none")
    c = snap.get("counts", {})
    if c.get("n"):
        p_up = "–" if c.get("p_up") is None else f"{c['p_up']:.3f}"
        t.add_row("fluorescence", f"n {c['n']}  mean {c['mean']:.2f}  median {c['median']}  max {c['max']}  "
                                  f"threshold {c.get('threshold')}  P(up) {p_up}  "
                                  f"[{_spark(c.get('coarse', []))}] 0..{c.get('coarse_edges', [0])[-1] - 1}")
    else:
        t.add_row("fluorescence", "no rounds yet")
    lost = snap.get("lost", {})
    t.add_row("lost data", f"{lost.get('overflow_intervals', 0)} overflow interval(s), "
                           f"{lost.get('missed_events', 0)} missed, {lost.get('errors', 0)} error(s)"
                           + ("  [OVERFLOW NOW]" if lost.get("overflow_open") else ""))
    return t


def _fmt_est(est: dict, key: str) -> str | None:
    if key not in est or est[key] is None:
        return None
    v = est[key]
    err = None
    if isinstance(v, dict):
        v, err = v.get("value"), v.get("err", v.get("sigma", v.get("std")))
    else:
        for suffix in ("_err", "_sigma", "_std"):
            if est.get(key + suffix) is not None:
                err = est[key + suffix]
                break
    if not isinstance(v, (int, float)):
        return str(v)
    return f"{v:.4f}" + (f" ± {err:.4f}" if isinstance(err, (int, float)) else "")


def _estimate_panel(est: dict | None):
    if est is None:
        return None
    rows = []
    seen = set()
    for key, label in _EST_KEYS:
        s = _fmt_est(est, key)
        if s is not None and label not in seen:
            rows.append(f"{label} = {s}")
            seen.add(label)
    ci = est.get("key_rate_ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
        rows.append(f"key rate 95 % interval [{ci[0]:.4f}, {ci[1]:.4f}] bit/event")
    rows.append(f"pairs used: {est.get('pairs', 0)}")
    if est.get("note"):
        rows.append(str(est["note"]))
    rows.extend(f"warning: {w}" for w in est.get("warnings") or [])
    return Panel("\n".join(rows), title="running estimate (both labs)", expand=False)


def render(status: dict):
    """The whole view for one status snapshot."""
    lat = status.get("latency_s") or {}
    head = Text()
    head.append(f"{status.get('source', '')}   ", style="bold")
    head.append(f"wall {status.get('wall_s', 0):.1f} s   ")
    if status.get("lag_s") is not None:
        head.append(f"lag {status['lag_s']:.2f} s (max {status.get('lag_s_max', 0):.2f})   ",
                    style="red" if status["lag_s"] > 2 else "")
    if status.get("load") is not None:
        head.append(f"load {status['load']:.0%}   ", style="red" if status["load"] > 0.9 else "")
    if lat:
        head.append(f"latency median {lat['median']:.2f} s p99 {lat['p99']:.2f} s   ")
    if (status.get("idle_s") or 0) >= 1.0:
        head.append(f"idle for {status['idle_s']:.0f} s   ", style="yellow")
    disk = status.get("rounds_on_disk", {})
    head.append("on disk: " + ", ".join(f"{k} {v}" for k, v in disk.items()))
    parts = [head]
    for snap in status.get("labs", {}).values():
        title = Text(f"lab {snap['lab']}  (device time {snap.get('device_time_s', 0):.3f} s)", style="bold cyan")
        parts.append(Group(title, _lab_table(snap), _lab_summary(snap)))
    est = _estimate_panel(status.get("estimate"))
    if est is not None:
        parts.append(est)
    raw = {lab: r for lab, r in (status.get("raw_tags") or {}).items() if r}
    if raw:
        parts.append(Text("raw tags: " + "; ".join(
            f"{lab} -> {r['current']}" + (f" ({r['files']} file(s), {r['bytes'] / 1e6:,.0f} MB)" if r.get("bytes")
                                          is not None else "") for lab, r in raw.items()), style="dim"))
    elif status.get("raw_tags") is not None:
        parts.append(Text("raw tags: none kept by this run", style="yellow"))
    src = status.get("source_stats") or {}
    if src:
        parts.append(Text("device: " + ", ".join(f"{k} {v}" for k, v in src.items()), style="dim"))
    al = status.get("alarms", [])
    parts.append(Panel("\n".join(al), title="ALARMS", style="red", expand=False) if al
                 else Text("no alarms", style="green"))
    return Group(*parts)


def render_text(status: dict, width: int = 110) -> str:
    """The view as plain text (tests, logs)."""
    import io

    console = Console(record=True, width=width, color_system=None, force_terminal=False, file=io.StringIO())
    console.print(render(status))
    return console.export_text()


class LiveView:
    """Status callback driving a rich Live display; use as a context manager around the run."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console()
        self._live = Live(Text("starting..."), console=self.console, refresh_per_second=2, transient=False)

    def __enter__(self):
        self._live.__enter__()
        return self

    def __exit__(self, *exc):
        self._live.__exit__(*exc)

    def __call__(self, status: dict) -> None:
        self._live.update(render(status), refresh=True)
