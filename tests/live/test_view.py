"""The live view and the headless status lines render what the status says."""
from __future__ import annotations

import io
import json

import numpy as np

from live_cases import ToyPipeline, make_stream, toy_setup
from timetag.chunk import OVERFLOW_BEGIN, split
from timetag.live.jsonlines import JsonLinesWriter
from timetag.live.runner import LiveRunner
from timetag.live.sources import ChunkSource
from timetag.live.status import alarms, count_summary
from timetag.live.view import render_text


def _status(tmp_path, **kw):
    setup = toy_setup()
    whole = make_stream(30, seed=11, **kw)
    statuses = []
    LiveRunner(ChunkSource(split(whole, range(100, len(whole), 100)), lab="alice"), setup, tmp_path,
               pipeline_factory=ToyPipeline, status_interval=1e-9, on_status=statuses.append).run()
    return statuses[-1], whole


def test_view_text_shows_rates_rounds_flags_counts_and_alarms(tmp_path):
    status, whole = _status(tmp_path, lost=[(500_000_000, OVERFLOW_BEGIN)])  # an overflow left open
    text = render_text(status)
    snap = status["labs"]["alice"]
    assert "lab alice" in text
    for ch, total in snap["channel_totals"].items():
        assert any(line.split()[:1] == [ch] and line.split()[-1] == str(total) for line in text.splitlines()), ch
    assert f"rounds  {snap['rounds']}" in " ".join(text.split("  ")) or f"rounds {snap['rounds']}" in " ".join(text.split())
    c = snap["counts"]
    assert f"mean {c['mean']:.2f}" in text and f"threshold {c['threshold']}" in text
    assert "lost_data" in text  # the flag names with counts
    assert "ALARMS" in text and "overflow in progress" in text
    assert f"alice {status['rounds_on_disk']['alice']}" in text


def test_view_shows_estimate_panel_with_uncertainties():
    status = {"wall_s": 3.0, "source": "test", "labs": {}, "rounds_on_disk": {},
              "estimate": {"pairs": 1234, "S": 2.578, "S_err": 0.075, "Q0": 0.078, "Q0_err": 0.009,
                           "key_rate": {"value": 0.07, "err": 0.02}},
              "alarms": []}
    text = render_text(status)
    assert "S = 2.5780 ± 0.0750" in text
    assert "Q0 = 0.0780 ± 0.0090" in text
    assert "key rate = 0.0700 ± 0.0200" in text
    assert "pairs used: 1234" in text and "no alarms" in text


def test_view_shows_the_key_rate_interval_and_small_sample_warnings():
    status = {"wall_s": 3.0, "source": "test", "labs": {}, "rounds_on_disk": {},
              "estimate": {"pairs": 40, "S": 2.9, "S_err": 0.3, "key_rate": 0.1, "key_rate_ci": [0.0, 0.31],
                           "warnings": ["only 9 rounds for input pair (0, 1)"]}, "alarms": []}
    text = render_text(status)
    assert "key rate 95 % interval [0.0000, 0.3100] bit/event" in text
    assert "warning: only 9 rounds for input pair (0, 1)" in text


def test_alarms_for_dark_detector_rate_jump_and_no_heralds():
    snap = {"lab": "bob", "interval_s": 1.0, "channel_rates": {"2": 0.0, "3": 1000.0}, "detector_channels": ["2", "3"],
            "tag_rate": 1000.0, "rate_baseline": 10000.0, "lost": {}, "since_last_herald_s": 45.0, "heralds": {}}
    al = " | ".join(alarms(snap))
    assert "dark on channel(s) 2" in al
    assert "rate jumped" in al
    assert "no heralds for 45 s" in al
    quiet = dict(snap, channel_rates={"2": 900.0, "3": 1000.0}, rate_baseline=1100.0, since_last_herald_s=1.0)
    assert alarms(quiet) == []


def test_count_summary_matches_direct_computation():
    rng = np.random.default_rng(0)
    counts = rng.poisson(3, size=500)
    hist = np.bincount(counts, minlength=257)
    s = count_summary(hist, threshold=4)
    assert s["n"] == 500 and abs(s["mean"] - counts.mean()) < 1e-12
    assert s["p_up"] == np.mean(counts >= 4)
    assert s["median"] == int(np.median(counts))
    assert sum(s["coarse"]) == 500


def test_json_lines_are_valid_json_one_per_status(tmp_path):
    status, _ = _status(tmp_path)
    buf = io.StringIO()
    w = JsonLinesWriter(buf)
    w(status)
    w(dict(status, lag_s=float("nan")))
    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    obj = json.loads(lines[0])
    assert obj["kind"] == "status" and obj["labs"]["alice"]["rounds"] == status["labs"]["alice"]["rounds"]
    assert json.loads(lines[1])["lag_s"] is None


def test_live_view_updates_a_terminal(tmp_path):
    from rich.console import Console

    from timetag.live.view import LiveView

    status, _ = _status(tmp_path)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, color_system=None)
    with LiveView(console) as view:
        view(status)
    assert "lab alice" in buf.getvalue() and f"on disk: alice {status['rounds_on_disk']['alice']}" in buf.getvalue()


def test_view_says_where_raw_tags_go_and_when_none_are_kept():
    status = {"wall_s": 1.0, "source": "sim", "labs": {}, "alarms": [],
              "raw_tags": {"alice": {"files": 2, "current": "alice.1.dump", "bytes": 3e6, "tags": 10}}}
    assert "raw tags: alice -> alice.1.dump (2 file(s), 3 MB)" in render_text(status)
    status["raw_tags"] = {}
    assert "raw tags: none kept by this run" in render_text(status)
