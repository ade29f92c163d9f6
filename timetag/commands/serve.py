"""`timetag serve`: the dashboard page of finished runs (rounds files, estimates, calibrations, scans)."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import List, Optional

import typer


def register(app):
    @app.command("serve", no_args_is_help=True)
    def serve(
        paths: List[Path] = typer.Argument(..., help="Folders (searched recursively) and files: rounds files "
                                           "(.h5), estimate JSON (timetag estimate --json), scan.json, "
                                           "calibrated setups (.toml with a [clock] table)."),
        web: str = typer.Option("127.0.0.1:8765", "--web", help="HOST:PORT to serve the page on (':PORT' or "
                                "'PORT' = 127.0.0.1; port 0 picks a free one)."),
        web_token: Optional[str] = typer.Option(None, "--web-token", show_default="none on loopback, a random "
                                                "one otherwise", help="Token required on every request "
                                                "(?token=...). A non-loopback --web without one gets a random "
                                                "token, printed in the URL."),
        samples: int = typer.Option(2000, "--samples", min=0, help="Posterior samples per point of the running "
                                    "estimate (error bars; 0: none)."),
        duration: Optional[float] = typer.Option(None, "--duration", "-d", show_default="until Ctrl-C",
                                                 help="Stop serving after this many seconds."),
    ):
        """Serve the dashboard page of finished runs: the same views as `timetag live --web`, read from files.

        The first Alice/Bob pair of rounds files found is drawn (rates over the run, histograms with the window
        and threshold, S, Q0, Q1 and key rate against the number of rounds, finite-key progress, clock);
        every other file found is listed. Incomplete runs are shown and said so. Read-only; Ctrl-C stops.
        Example:

          timetag serve timetag-demo --web 127.0.0.1:8765
        """
        from .. import interrupts
        from ..dashboard import DashboardServer, StaticFeed, finished_payload
        from ..dashboard.server import is_loopback, new_token, parse_address, plotly_js_path
        from ..errors import TimetagError

        if duration is not None and not duration > 0:
            raise TimetagError(f"--duration must be > 0 seconds (got {duration})")
        host, port = parse_address(web)
        plotly_js_path()  # a missing extra is said before the files are read
        payload = finished_payload(paths, samples=samples)
        if not payload["labs"]:
            raise TimetagError(f"no rounds file found in {', '.join(map(str, paths))}")
        if web_token is None and not is_loopback(host):
            web_token = new_token()
        server = DashboardServer(StaticFeed(payload), host, port, token=web_token).start()
        print(f"dashboard: {server.url}", file=sys.stderr, flush=True)
        print(f"serving {len(payload['labs'])} lab(s) of {payload['title']}; Ctrl-C stops", flush=True)
        try:
            end = None if duration is None else time.monotonic() + duration
            while end is None or time.monotonic() < end:
                time.sleep(0.2)
                interrupts.check()  # a Ctrl-C swallowed elsewhere (timetag.interrupts) still stops serving
        except KeyboardInterrupt:
            pass  # the normal way to stop a server: not an error
        finally:
            server.close()
