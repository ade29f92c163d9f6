"""`timetag live --web` and `timetag serve` as a user runs them (subprocesses; no browser needed)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from dashboard_browser import Served, wait_for
from estimate_cases import labs, write_pair

pytest.importorskip("plotly", reason="the dashboard serves plotly.js from the plotly package (extra 'web')")


def _status(run: Served) -> dict:
    with urllib.request.urlopen(run.api("api/status"), timeout=10) as r:
        return json.loads(r.read())


def test_live_web_serves_the_runners_status_as_it_goes(tmp_path):
    run = Served(["live", "--source", "sim", "--out", str(tmp_path / "run"), "--speed", "20", "--speedup", "1000",
                  "--duration", "30", "--no-raw", "--quiet", "--web", ":0"])
    try:
        first = wait_for(lambda: (s := _status(run)).get("labs") and s, 60, "a first status")
        later = wait_for(lambda: (s := _status(run))["version"] > first["version"] + 1 and s, 20, "two more statuses")
        assert later["labs"]["alice"]["rounds"] >= first["labs"]["alice"]["rounds"]
        assert later["labs"]["alice"]["tags"] > first["labs"]["alice"]["tags"]
    finally:
        code = run.stop()
    assert code == 130  # Ctrl-C: the run's files are kept and marked interrupted
    assert not any(line.startswith("t=") for line in run.out), "--quiet printed status lines"
    assert (tmp_path / "run" / "alice_rounds.h5").is_file()


def test_live_web_on_a_taken_port_refuses_before_any_file(tmp_path):
    feed_run = Served(["serve", str(_pair(tmp_path / "served")), "--web", "127.0.0.1:0", "--duration", "60"])
    try:
        port = feed_run.url.rsplit(":", 1)[1].strip("/")
        r = subprocess.run([sys.executable, "-m", "timetag", "live", "--source", "sim", "--out", str(tmp_path / "run"),
                            "--duration", "2", "--web", f"127.0.0.1:{port}"], capture_output=True, text=True,
                           timeout=120)
    finally:
        feed_run.stop()
    assert r.returncode == 2 and "cannot listen" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_non_loopback_web_gets_a_token(tmp_path):
    run = Served(["serve", str(_pair(tmp_path)), "--web", "0.0.0.0:0", "--duration", "60"])
    try:
        assert "?token=" in run.url
        bare = run.url.split("?")[0] + "api/status"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bare, timeout=10)
        assert err.value.code == 403
        assert _status(run)["labs"]["lab1"]["rounds"] == 400
    finally:
        assert run.stop() == 0


def test_serve_stops_after_its_duration_and_says_what_it_serves(tmp_path):
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "timetag", "serve", str(_pair(tmp_path)), "--web", ":0",
                        "--duration", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "dashboard: http://127.0.0.1:" in r.stderr and "serving 2 lab(s)" in r.stdout
    assert time.monotonic() - t0 < 60


@pytest.mark.parametrize("argv, message", [
    (["serve", "{tmp}", "--web", ":0"], "no rounds file found"),
    (["serve", "{tmp}/missing", "--web", ":0"], "no such file or folder"),
    (["serve", "{tmp}", "--web", "host:port"], "the port is not a number"),
    (["live", "--source", "sim", "--out", "{tmp}/run", "--web", "1.2.3.4:99999"], "0..65535"),
])
def test_user_mistakes_are_one_line(tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    r = subprocess.run([sys.executable, "-m", "timetag", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr


def _pair(folder):
    folder.mkdir(parents=True, exist_ok=True)
    A, B = labs(n=400)
    write_pair(folder, A, B)
    return folder
