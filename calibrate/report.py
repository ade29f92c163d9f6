"""What calibrate changed: old -> new with uncertainty, plus the measured quantities."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Change:
    lab: str
    key: str                 # setup key path, e.g. 'delays_ps.3' or 'herald.window_start_ps'
    old: object
    new: object
    err: float | None = None
    unit: str = ""
    note: str = ""

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass
class CalibrationReport:
    changes: list[Change] = field(default_factory=list)
    measured: list[tuple[str, str]] = field(default_factory=list)   # (name, formatted value)
    warnings: list[str] = field(default_factory=list)
    results: dict = field(default_factory=dict)                      # raw result objects per lab/step

    def add(self, *a, **kw) -> None:
        self.changes.append(Change(*a, **kw))

    def measure(self, name: str, text: str) -> None:
        self.measured.append((name, text))

    def changed(self) -> list[Change]:
        return [c for c in self.changes if c.changed]

    def text(self, all_values: bool = False) -> str:
        lines = []
        rows = self.changes if all_values else self.changed()
        if rows:
            lines.append("changed values (old -> new +- uncertainty, unit; the uncertainty is one standard deviation "
                         "unless a note says what it is (the window's: the FOM grid step); 'unset': no value before; "
                         "drift: relative, s per s):")
            w = max(len(f"{c.lab}.{c.key}") for c in rows)
            for c in rows:
                err = f" +- {_fmt(c.err)}" if c.err is not None else ""  # ASCII: the report goes to logs too
                unit = f" {c.unit}" if c.unit else ""
                note = f"   ({c.note})" if c.note else ""
                mark = "" if c.changed else "  [unchanged]"
                old = "unset" if c.old is None else _fmt(c.old)
                lines.append(f"  {f'{c.lab}.{c.key}':<{w}}  {old} -> {_fmt(c.new)}{err}{unit}{mark}{note}")
        else:
            lines.append("no setup value changed")
        if self.measured:
            lines.append("measured:")
            w = max(len(n) for n, _ in self.measured)
            for n, t in self.measured:
                lines.append(f"  {n:<{w}}  {t}")
        for wmsg in self.warnings:
            lines.append(f"warning: {wmsg}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"changes": [dict(lab=c.lab, key=c.key, old=_plain(c.old), new=_plain(c.new), err=c.err,
                                 unit=c.unit, note=c.note) for c in self.changes],
                "measured": dict(self.measured), "warnings": list(self.warnings)}


def _plain(v):
    if isinstance(v, tuple):
        return list(v)
    return v


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "nan"
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 1e-3:
            return f"{v:.3g}"
        return f"{v:.2e}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)
