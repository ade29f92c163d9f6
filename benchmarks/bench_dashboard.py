"""The dashboard's cost to a live run: tags/s of `timetag live --source sim --speed max` with and without --web.

* ``dashboard_web_vs_plain_ratio``: tags/s with ``--web`` (and a client polling ``api/dashboard`` twice a second,
  as an open page does) divided by tags/s of the same run without it; runs interleaved (plain, web, web, plain,
  ...) so that a noisy neighbour hurts both alike; best of the repeats.  The dashboard only keeps the status the
  runner already makes, so the ratio should be ~1.
* ``live_sim_max_tags_per_s`` / ``live_sim_max_web_tags_per_s``: the absolute rates (reported, not judged).

The rate is the run's own count: tags processed / the runner's wall time (the summary of ``--json-lines``), so
interpreter start-up and imports are not in it.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

ARGS = ["live", "--source", "sim", "--speed", "max", "--speedup", "1000", "--seed", "7", "--no-raw", "--json-lines",
        "--status-interval", "1.0"]


def _poll(url: str, stop: threading.Event, counter: list) -> None:
    """What an open page does: ask for the dashboard every 0.5 s (If-None-Match: 304 between status updates)."""
    etag = None
    while not stop.wait(0.5):
        req = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                r.read()
                etag = r.headers.get("ETag")
                counter[0] += 1
        except urllib.error.HTTPError as e:
            if e.code != 304:
                raise
            counter[1] += 1
        except OSError:
            pass  # the run is ending


def _one(out: Path, duration: float, web: bool) -> dict:
    argv = [sys.executable, "-m", "timetag", *ARGS, "--duration", str(duration), "--out", str(out)]
    if web:
        argv += ["--web", "127.0.0.1:0"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, counter, poller = threading.Event(), [0, 0], None
    err_lines: list[str] = []

    def read_err():
        nonlocal poller
        for line in proc.stderr:
            err_lines.append(line)
            m = re.match(r"dashboard: (http://\S+)", line)
            if m and poller is None:
                poller = threading.Thread(target=_poll, args=(m.group(1) + "api/dashboard", stop, counter),
                                          daemon=True)
                poller.start()

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    stdout = proc.stdout.read()  # not communicate(): it would read stderr too, racing the reader for the URL
    proc.wait(timeout=300)
    stop.set()
    reader.join(10)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {''.join(err_lines)[-1000:]}")
    summary = next(d for d in map(_json, reversed(stdout.splitlines())) if d.get("kind") == "summary")
    if web and counter[0] == 0:
        raise RuntimeError("--web: the poller got no dashboard payload")
    return {"tags": summary["tags"], "wall_s": summary["wall_s"], "rate": summary["tags"] / summary["wall_s"],
            "payloads": counter[0], "not_modified": counter[1]}


def _json(line: str) -> dict:
    try:
        d = json.loads(line)
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def run(quick: bool = True) -> list[dict]:
    duration, repeats = (8.0, 2) if quick else (20.0, 3)
    plain, web = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):  # interleaved, alternating which goes first (no order bias)
            for with_web in ((False, True) if i % 2 == 0 else (True, False)):
                (web if with_web else plain).append(_one(Path(tmp) / f"{i}{with_web}", duration, web=with_web))
    best_plain = max(r["rate"] for r in plain)
    best_web = max(r["rate"] for r in web)
    ratio = best_web / best_plain
    med = sorted(w["rate"] / p["rate"] for w, p in zip(web, plain))[len(web) // 2]
    # a regression lowers both; one of them alone below 0.8 was load on the shared machine (CI, 2 repeats: best
    # 0.77 with median 0.99 in one run)
    regressed = max(ratio, med) < 0.8
    return [
        {"name": "dashboard_web_vs_plain_ratio", "value": ratio, "median": med, "unit": "x",
         "baseline": f"live --source sim --speed max without --web, same config, interleaved, {duration:g} s runs",
         "target": ">= 0.95", "gross_regression": regressed},
        {"name": "live_sim_max_tags_per_s", "value": best_plain, "unit": "tags/s", "baseline": "absolute",
         "target": "", "gross_regression": False},
        {"name": "live_sim_max_web_tags_per_s", "value": best_web, "unit": "tags/s",
         "baseline": f"absolute; a client polling every 0.5 s got {sum(r['payloads'] for r in web)} payloads, "
                     f"{sum(r['not_modified'] for r in web)} not-modified answers",
         "target": "", "gross_regression": False},
    ]


if __name__ == "__main__":
    for row in run(quick="--full" not in sys.argv):
        print(json.dumps(row))
