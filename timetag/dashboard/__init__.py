"""The campaign dashboard: a read-only web page of a live run (``timetag live --web``) or of finished runs
(``timetag serve``), both labs on one page.

The page is drawn in the browser by plotly.js, served from the installed ``plotly`` package (the machine may be
offline: no CDN); the server is the standard library's threading HTTP server.  The live runner already publishes a
status snapshot every ``--status-interval``; :class:`LiveFeed` is one more status callback that keeps a bounded
history of those snapshots, and the server only reads what the feed holds, so a slow or dead browser never waits
on the acquisition loop nor makes it wait.  See ``docs/dashboard.md``.
"""
from __future__ import annotations

from .feed import LiveFeed, StaticFeed
from .finished import finished_payload
from .server import DashboardServer, parse_address

__all__ = ["DashboardServer", "LiveFeed", "StaticFeed", "finished_payload", "parse_address"]
