"""The page: one HTML document and its script, written here (kept in Python strings so that they install with
the package without a package-data entry).  plotly.js draws the plots; everything else is plain DOM.

Element ids the tests read: ``rounds-<lab>`` (rounds so far), ``est-S`` (running S; ``data-value`` holds the
unrounded number), ``alarms``, and ``data-version`` on ``<body>`` (the status version drawn).
"""
from __future__ import annotations

from .script import SCRIPT

__all__ = ["html", "SCRIPT"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#222}
header{background:#1f2d3d;color:#fff;padding:8px 16px;display:flex;flex-wrap:wrap;gap:18px;align-items:baseline}
header h1{font-size:18px;margin:0 12px 0 0}
.mode{font-weight:bold;padding:2px 8px;border-radius:4px;background:#2e7d32}
.mode.finished{background:#546e7a}.mode.stale{background:#c62828}
main{padding:10px 16px}
#alarms{margin:6px 0 10px 0}
.alarm{background:#c62828;color:#fff;padding:6px 10px;margin:3px 0;border-radius:4px;font-weight:bold}
.ok{background:#2e7d32;color:#fff;padding:4px 10px;border-radius:4px;display:inline-block}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
.card{background:#fff;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.15);padding:10px 12px}
.card h2{font-size:16px;margin:0 0 6px 0}
.badge{background:#c62828;color:#fff;font-size:12px;padding:2px 6px;border-radius:3px;margin-left:6px}
table.kv{border-collapse:collapse;font-size:13px;width:100%}
table.kv td{padding:2px 6px;border-bottom:1px solid #eee;vertical-align:top}
table.kv td:first-child{color:#555;width:34%}
.plot{height:230px}
.big{display:flex;gap:22px;flex-wrap:wrap;margin:4px 0 8px 0}
.big div{font-size:13px;color:#555}.big span{display:block;font-size:22px;color:#111;font-variant-numeric:tabular-nums}
.bar{background:#e0e0e0;border-radius:4px;height:16px;overflow:hidden}.bar div{background:#1565c0;height:100%}
table.list{border-collapse:collapse;font-size:12px}table.list td,table.list th{padding:2px 8px;border-bottom:1px solid #eee}
.muted{color:#777;font-size:12px}
"""



def html(poll_ms: int) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>timetag dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{_STYLE}</style>
<script src="static/plotly.min.js"></script>
<script src="static/dashboard.js"></script>
</head>
<body data-version="0" data-poll-ms="{int(poll_ms)}">
<header><h1 id="title">timetag</h1><span id="mode" class="mode">…</span><span id="runline"></span>
<span id="freshness" class="muted"></span></header>
<main>
<div id="alarms"></div>
<div id="labs" class="grid"></div>
<div class="grid" style="margin-top:12px">
 <div class="card" id="estimate-card"><h2>Running estimate (both labs)</h2><div class="big" id="est-big"></div>
  <div id="plot-est-S" class="plot"></div><div id="plot-est-Q" class="plot"></div>
  <div id="plot-est-key" class="plot"></div></div>
 <div class="card"><h2>Finite-key progress</h2><div id="finite-key"></div>
  <h2 style="margin-top:14px">Clock between the labs</h2><div id="clock"></div>
  <h2 style="margin-top:14px">Alarm log</h2><div id="alarm-log" class="muted"></div>
  <div id="extras"></div></div>
</div>
</main>
<script>timetagDashboard.start();</script>
</body></html>
"""
