"""LiveFeed: the status callback's history, alarms (stall, overflow), payload caching, and that it never raises."""
from __future__ import annotations

import json

from dashboard_cases import lab_snapshot, setup_two_labs, status

from timetag.dashboard import LiveFeed, StaticFeed
from timetag.dashboard.feed import finite_key_progress


def _feed(**kw):
    return LiveFeed(setup_two_labs(), ("alice", "bob"), **kw)


def test_payload_before_any_status_is_valid_json():
    v, body = _feed().payload()
    d = json.loads(body)
    assert v == 0 and d["mode"] == "live" and set(d["labs"]) == {"alice", "bob"}
    assert d["labs"]["alice"]["series"] == {"n": 0, "cols": {}} and d["full"] is True


def test_each_status_is_one_version_with_its_rates_and_rounds():
    feed = _feed()
    for i in range(1, 4):
        feed(status(i))
    v, body = feed.payload()
    d = json.loads(body)
    assert v == 3 == d["version"]
    ser = d["labs"]["alice"]["series"]["cols"]
    assert ser["t"] == [1.0, 2.0, 3.0]
    assert ser["rounds"] == [10, 20, 30]
    assert ser["round_rate"] == [None, 10.0, 10.0]
    assert ser["ch:1"] == [600.0] * 3
    sv, sbody = feed.status()
    st = json.loads(sbody)
    assert sv == 3 and st["version"] == 3 and st["labs"]["bob"]["rounds"] == 30


def test_payload_is_built_once_per_version():
    feed = _feed()
    feed(status(1))
    first = feed.payload()[1]
    assert feed.payload()[1] is first  # the cached bytes, not a new build
    feed(status(2))
    assert feed.payload()[1] is not first


def test_a_lab_whose_device_time_stops_is_called_stalled_and_cleared_when_it_moves():
    feed = _feed(stall_after_s=3.0)
    for i in range(6):
        feed({"wall_s": float(i), "labs": {"alice": lab_snapshot("alice", t=float(i), rounds=i),
                                           "bob": lab_snapshot("bob", t=min(i, 1.0), rounds=1)}, "alarms": []})
    d = json.loads(feed.payload()[1])
    stalled = [a for a in d["alarms"] if "stalled" in a]
    assert len(stalled) == 1 and stalled[0].startswith("bob: source stalled: no data for 4 s")
    assert d["labs"]["bob"]["badges"] == ["STALLED"] and d["labs"]["alice"]["badges"] == []
    feed({"wall_s": 6.0, "labs": {"alice": lab_snapshot("alice", t=6.0, rounds=6),
                                  "bob": lab_snapshot("bob", t=6.0, rounds=6)}, "alarms": []})
    d = json.loads(feed.payload()[1])
    assert d["alarms"] == []
    assert [e["event"] for e in d["alarm_log"]] == ["raised", "cleared"]


def test_an_open_overflow_is_a_badge_and_the_runners_alarm_is_shown():
    feed = _feed()
    st = status(2, overflow_open=True)
    st["alarms"] = ["alice: device overflow in progress (tags being lost)"]
    feed(st)
    d = json.loads(feed.payload()[1])
    assert d["labs"]["alice"]["badges"] == ["OVERFLOW"]
    assert d["alarms"] == st["alarms"]
    assert d["alarm_log"][0]["alarm"] == st["alarms"][0]


def test_running_estimate_points_are_kept_per_new_pair_count():
    feed = _feed()
    for i, pairs in enumerate([100, 100, 250]):
        st = status(i + 1)
        st["estimate"] = {"pairs": pairs, "S": 2.5, "S_err": 0.1, "Q0": 0.05, "Q0_err": 0.01, "Q1": 0.04,
                          "Q1_err": 0.01, "key_rate": 0.08, "key_rate_ci": [0.01, 0.15]}
        feed(st)
    d = json.loads(feed.payload()[1])
    assert d["estimate_series"]["cols"]["pairs"] == [100, 250]
    assert d["estimate_series"]["cols"]["key_rate_hi"] == [0.15, 0.15]
    assert d["finite_key"]["rounds"] == 250 and d["finite_key"]["needed"] > 250


def test_a_broken_status_never_raises_into_the_run():
    feed = _feed()
    feed({"wall_s": "not a number"})
    d = json.loads(feed.payload()[1])
    assert d["errors"] and "dashboard feed" in d["errors"][0]


def test_finite_key_progress_without_key_and_without_numbers():
    assert finite_key_progress(None) is None
    assert finite_key_progress({"S": 2.5, "Q0": None, "Q1": 0.1}) is None
    no_key = finite_key_progress({"S": 2.0, "Q0": 0.2, "Q1": 0.2, "pairs": 10})
    assert no_key["reachable"] is False and no_key["fraction"] is None


def test_static_feed_has_one_version_and_a_status_of_the_labs():
    feed = StaticFeed({"mode": "finished", "labs": {"a": {"snapshot": {"rounds": 3}}}, "estimate": {"S": 2.1}})
    assert json.loads(feed.payload()[1])["version"] == 1
    st = json.loads(feed.status()[1])
    assert st["labs"]["a"]["rounds"] == 3 and st["estimate"]["S"] == 2.1


def test_a_page_that_has_a_version_gets_only_the_rows_after_it():
    feed = _feed()
    for i in range(1, 6):
        feed(status(i))
    full = json.loads(feed.payload()[1])
    feed(status(6))
    delta = json.loads(feed.payload(since=full["version"], gen=full["gen"])[1])
    assert delta["full"] is False and delta["version"] == 6
    assert delta["labs"]["alice"]["series"]["n"] == 1 and delta["labs"]["alice"]["series"]["cols"]["t"] == [6.0]
    # an unknown generation (the history was thinned since) or no version: everything again
    again = json.loads(feed.payload(since=full["version"], gen="9.9.9")[1])
    assert again["full"] is True and again["labs"]["alice"]["series"]["n"] == 6


def test_deltas_rebuild_the_whole_history_across_thinnings():
    """What the page does: full, then deltas (full again when the generation changes) -> the feed's history."""
    feed = _feed(maxlen=8)
    have: dict = {}
    version, gen = None, None
    for i in range(1, 60):
        feed(status(i))
        d = json.loads(feed.payload(since=version, gen=gen)[1])
        part = d["labs"]["alice"]
        rows = part["series"]["cols"].get("t", [])
        have = {"t": rows} if d["full"] else {"t": have["t"] + rows}
        version, gen = d["version"], d["gen"]
        shown = have["t"] + part["series_tail"]["cols"].get("t", [])
        assert shown[-1] == float(i)  # the plot always ends at the newest status
    kept = [r["t"] for r in feed._rates["alice"].rows()]
    assert shown == kept and len(kept) <= 9
