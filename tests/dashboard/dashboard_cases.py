"""Status snapshots shaped like :meth:`timetag.live.status.LabStats.snapshot` for the dashboard's tests."""
from __future__ import annotations

from functools import lru_cache

__all__ = ["lab_snapshot", "setup_two_labs", "status"]


@lru_cache(maxsize=1)
def setup_two_labs():
    from timetag.live.simdevice import SimDevice

    return SimDevice(preset="lmu2022", seed=1).matching_setup()


def lab_snapshot(lab: str, *, t: float, rounds: int, overflow_open: bool = False, rate: float = 1000.0) -> dict:
    return {
        "lab": lab, "device_time_s": t, "interval_s": 1.0, "tags": int(rate * t), "tag_rate": rate,
        "channel_rates": {"1": rate * 0.6, "2": rate * 0.4}, "channel_totals": {"1": int(0.6 * rate * t),
                                                                                  "2": int(0.4 * rate * t)},
        "watched_channels": ["1", "2"], "detector_channels": ["1"],
        "heralds": {"none": 0, "psi+": rounds, "psi-": 0, "other": 0},
        "herald_rates": {"none": 0.0, "psi+": 10.0, "psi-": 0.0, "other": 0.0},
        "rounds": rounds, "flags": {"lost_data": 1 if overflow_open else 0, "setting_missing": 0},
        "lost": {"overflow_intervals": int(overflow_open), "missed_events": 0, "errors": 0,
                 "overflow_open": overflow_open},
        "counts": {"n": rounds, "p_up": 0.5, "threshold": 4}, "outputs_up": rounds // 2,
        "since_last_herald_s": 0.1, "rate_baseline": rate,
    }


def status(i: int, **lab_kw) -> dict:
    return {"wall_s": float(i), "source": "test", "labs": {
        "alice": lab_snapshot("alice", t=float(i), rounds=10 * i, **lab_kw),
        "bob": lab_snapshot("bob", t=float(i), rounds=10 * i)}, "alarms": []}
