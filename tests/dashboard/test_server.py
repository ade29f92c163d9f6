"""The server: read-only routes, the token, 304 between versions, plotly.js from the installed package, addresses."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from dashboard_cases import setup_two_labs, status

from timetag.dashboard import DashboardServer, LiveFeed, parse_address
from timetag.dashboard.server import is_loopback
from timetag.errors import TimetagError

pytest.importorskip("plotly", reason="the dashboard serves plotly.js from the plotly package (extra 'web')")


def _get(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture()
def served():
    feed = LiveFeed(setup_two_labs(), ("alice", "bob"))
    feed(status(1))
    with DashboardServer(feed, "127.0.0.1", 0) as server:
        yield feed, f"http://127.0.0.1:{server.port}/"


def test_page_script_plotly_and_the_status(served):
    feed, base = served
    code, headers, body = _get(base)
    assert code == 200 and b"timetagDashboard.start()" in body and headers["Content-Type"].startswith("text/html")
    assert _get(base + "static/dashboard.js")[2].startswith(b"\nvar timetagDashboard")
    code, _, js = _get(base + "static/plotly.min.js")
    assert code == 200 and len(js) > 1_000_000 and b"plotly" in js[:2000].lower()
    code, headers, body = _get(base + "api/status")
    assert code == 200 and json.loads(body)["labs"]["alice"]["rounds"] == 10 and headers["ETag"] == '"1"'


def test_api_answers_304_until_a_new_status(served):
    feed, base = served
    assert _get(base + "api/dashboard", {"If-None-Match": '"1"'})[0] == 304
    feed(status(2))
    code, headers, body = _get(base + "api/dashboard", {"If-None-Match": '"1"'})
    assert code == 200 and headers["ETag"] == '"2"' and json.loads(body)["version"] == 2


def test_the_page_cannot_change_anything(served):
    _, base = served
    for method in ("POST", "PUT", "DELETE"):
        assert _get(base + "api/status", method=method)[0] == 405
    assert _get(base + "nothing-here")[0] == 404


def test_a_token_is_required_on_every_route_when_set():
    feed = LiveFeed(setup_two_labs(), ("alice", "bob"))
    with DashboardServer(feed, "127.0.0.1", 0, token="s3cret") as server:
        base = f"http://127.0.0.1:{server.port}/"
        assert server.url.endswith("/?token=s3cret")
        for route in ("", "api/status", "api/dashboard", "static/plotly.min.js"):
            assert _get(base + route)[0] == 403, route
            assert _get(base + route + "?token=wrong")[0] == 403, route
        code, headers, _ = _get(base + "?token=s3cret")
        assert code == 200 and "timetag_token=s3cret" in headers["Set-Cookie"]
        assert _get(base + "api/status", {"Cookie": "timetag_token=s3cret"})[0] == 200
        assert _get(base + "api/status", {"Authorization": "Bearer s3cret"})[0] == 200


def test_a_port_in_use_is_one_clear_error():
    feed = LiveFeed(setup_two_labs(), ("alice", "bob"))
    with DashboardServer(feed, "127.0.0.1", 0) as first:
        with pytest.raises(TimetagError, match="cannot listen"):
            DashboardServer(feed, "127.0.0.1", first.port).start()


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9000", ("127.0.0.1", 9000)), (":9000", ("127.0.0.1", 9000)), ("9000", ("127.0.0.1", 9000)),
    ("0.0.0.0:0", ("0.0.0.0", 0)), ("[::1]:8000", ("::1", 8000)), ("lab-pc", ("lab-pc", 8765)),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["host:port", "127.0.0.1:70000"])
def test_parse_address_refuses(text):
    with pytest.raises(TimetagError, match="--web"):
        parse_address(text)


def test_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("lab-pc")
