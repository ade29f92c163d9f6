"""The dashboard's HTTP server: read-only, a thread per connection, plotly.js from the installed package.

Routes (GET and HEAD only: the page cannot change a run): ``/`` the page, ``/static/dashboard.js`` and
``/static/plotly.min.js``, ``/api/dashboard`` (everything the page draws), ``/api/status`` (the runner's own
status snapshot, as ``--json-lines`` prints it).  ``/api/...`` answers 304 when the client already has the
current version (``If-None-Match``), so a page polling every half second costs nothing between status updates.

A token, when set, is required on every request (``?token=``, ``Authorization: Bearer``, or the cookie the page
gets on its first visit).  Connections time out after ``timeout_s`` and run on daemon threads: a browser that
stops reading ties up its own thread only, never the acquisition loop.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from ..errors import TimetagError
from . import page

__all__ = ["DashboardServer", "parse_address", "is_loopback", "plotly_js_path", "new_token"]

DEFAULT_PORT = 8765


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``HOST`` -> (host, port); port 0 picks a free one."""
    text = (text or "").strip()
    host, port_text = default_host, str(DEFAULT_PORT)
    if text.startswith("[") and "]" in text:  # [::1]:8765
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else port_text
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        host = host or default_host
    elif text.isdigit():
        port_text = text
    elif text:
        host = text
    try:
        port = int(port_text)
    except ValueError:
        raise TimetagError(f"--web must be HOST:PORT (got {text!r}: the port is not a number)") from None
    if not 0 <= port <= 65535:
        raise TimetagError(f"--web port must be in 0..65535 (got {port})")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(18)


def plotly_js_path() -> Path:
    """plotly.js as the ``plotly`` Python package ships it (the ``web`` extra)."""
    try:
        import plotly
    except ImportError:
        raise TimetagError("the dashboard needs plotly: pip install 'timetag[web]'") from None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise TimetagError(f"plotly is installed but has no {path.name} at {path.parent}: reinstall plotly")
    return path


class DashboardServer:
    """Serve ``feed`` (a :class:`~.feed.LiveFeed` or :class:`~.feed.StaticFeed`) on ``host:port``.

    ``start()`` binds and serves on a daemon thread; ``close()`` stops.  ``url`` includes the token.
    """

    def __init__(self, feed, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, token: str | None = None,
                 timeout_s: float = 10.0, poll_ms: int = 500):
        self.feed, self.host, self.port = feed, host, int(port)
        self.token = token or None
        self.timeout_s, self.poll_ms = float(timeout_s), int(poll_ms)
        self._plotly = plotly_js_path()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def start(self) -> "DashboardServer":
        handler = type("Handler", (_Handler,), {"dashboard": self, "timeout": self.timeout_s})
        server_cls = _Server6 if ":" in self.host else _Server
        try:
            self._httpd = server_cls((self.host, self.port), handler)
        except OSError as exc:
            raise TimetagError(f"--web {self.host}:{self.port}: cannot listen there ({exc.strerror or exc})") from None
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.25},
                                        name="timetag-dashboard", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def authorised(self, query: dict, headers) -> bool:
        if self.token is None:
            return True
        offered = [*(query.get("token") or [])]
        auth = headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            offered.append(auth[7:])
        for part in (headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "timetag_token":
                offered.append(value)
        return any(hmac.compare_digest(o.encode(), self.token.encode()) for o in offered)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung browser connection never keeps the process alive
    allow_reuse_address = True


class _Server6(_Server):
    import socket as _socket

    address_family = _socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    dashboard: DashboardServer
    server_version = "timetag-dashboard"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # the terminal belongs to the run's own view

    def do_HEAD(self):
        self._answer(head=True)

    def do_GET(self):
        self._answer(head=False)

    def _refuse(self):
        self.send_error(405, "read-only dashboard")

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

    def _answer(self, head: bool) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        d = self.dashboard
        if not d.authorised(query, self.headers):
            return self._send(403, b"a token is required: open the URL printed by timetag (with ?token=...)\n",
                              "text/plain; charset=utf-8", head=head)
        cookie = None
        if d.token and query.get("token"):
            cookie = f"timetag_token={d.token}; Path=/; HttpOnly; SameSite=Strict"
        route = url.path
        if route in ("/", "/index.html"):
            return self._send(200, page.html(d.poll_ms).encode(), "text/html; charset=utf-8", head=head,
                              cookie=cookie, cache="no-store")
        if route == "/static/dashboard.js":
            return self._send(200, page.SCRIPT.encode(), "text/javascript; charset=utf-8", head=head,
                              cache="no-cache")
        if route == "/static/plotly.min.js":
            return self._send(200, d._plotly.read_bytes(), "text/javascript; charset=utf-8", head=head,
                              cache="max-age=86400")
        if route in ("/api/dashboard", "/api/status"):
            if route == "/api/dashboard":
                since = (query.get("since") or [""])[0]
                version, body = d.feed.payload(since=int(since) if since.isdigit() else None,
                                               gen=(query.get("gen") or [None])[0])
            else:
                version, body = d.feed.status()
            etag = f'"{version}"'
            if self.headers.get("If-None-Match") == etag:
                return self._send(304, b"", None, head=True, etag=etag)
            return self._send(200, body, "application/json", head=head, etag=etag, cache="no-cache")
        return self._send(404, b"not found\n", "text/plain; charset=utf-8", head=head)

    def _send(self, code, body: bytes, ctype, *, head=False, etag=None, cache=None, cookie=None) -> None:
        try:
            self.send_response(code)
            if ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            if etag:
                self.send_header("ETag", etag)
            if cache:
                self.send_header("Cache-Control", cache)
            if cookie:
                self.send_header("Set-Cookie", cookie)
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the browser went away: its problem, not the run's
