"""`timetag live`: process a live source (tagger, simulated device, replayed or growing file) as it runs."""
from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import List, Optional

import typer


def register(app):
    @app.command("live", no_args_is_help=True)
    def live(
        source: str = typer.Option(..., "--source", help=(
            "Where tags come from: 'sim' (simulated two-lab device, paced to the wall clock), 'swabian' "
            "(a connected Swabian Time Tagger; needs `pip install Swabian-TimeTagger`), 'swabian-fake[:FILE]' "
            "(a stand-in device fed by the simulator or FILE), 'replay:FILE' (a recorded file at --speed), "
            "'follow:FILE' (a dump, PTU, quTAG or SWMR HDF5 file still being written, read as it grows; "
            "name.dump -> name.1.dump -> ... followed).")),
        setup: Optional[Path] = typer.Option(None, "--setup", "-s", show_default="none: sim only",
                                             help="Setup TOML (channel map, windows, thresholds). "
                                             "Required, except with --source sim, which then uses the setup that "
                                             "fits the simulated link (saved as <out>/setup.toml)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder: <lab>_rounds.h5 per lab processed."),
        lab: Optional[str] = typer.Option(None, "--lab", "-l", show_default="every lab of the source", help=(
            "Lab of the setup to process. A file or a tagger is one lab (required when the setup has several); "
            "with --source sim, restricts processing to that lab.")),
        duration: Optional[float] = typer.Option(None, "--duration", "-d", help="Stop after this many wall-clock "
                                                 "seconds (default: until the source ends or Ctrl-C)."),
        speed: str = typer.Option("1", "--speed", help="Pace of sim/replay/fake sources: device seconds per wall "
                                  "second ('max' = as fast as processing allows)."),
        no_view: bool = typer.Option(False, "--no-view", help="No terminal view: one plain status line per interval."),
        json_lines: bool = typer.Option(False, "--json-lines", help="One JSON status object per line per interval "
                                        "on stdout (for automation); implies --no-view."),
        flush_interval: float = typer.Option(0.5, "--flush-interval", help="Seconds between flushes of the rounds "
                                             "files (at most 1 s: a killed run loses at most this much)."),
        status_interval: float = typer.Option(1.0, "--status-interval", help="Seconds between status updates."),
        seed: int = typer.Option(1, "--seed", min=0, help="Random seed of the simulated device."),
        preset: str = typer.Option("lmu2022", "--preset", "-p", help="Simulator preset for sim / swabian-fake."),
        speedup: Optional[float] = typer.Option(None, "--speedup", show_default="1, or the preset's",
                                                help="sim / swabian-fake: multiply the "
                                                "entanglement (herald) rate of the simulated link, for demos."),
        serial: str = typer.Option("", "--serial", help="Serial number of the Time Tagger (default: the lab's "
                                   "[device] serial, else the first found)."),
        test_signal: bool = typer.Option(False, "--test-signal", help="swabian / swabian-fake: a dry run on the "
                                         "Time Tagger's internal test signal, fed into the lab's [device] "
                                         "test_signal_channels (without it, a test signal found on a streamed "
                                         "channel stops the run)."),
        stream_buffer: Optional[int] = typer.Option(None, "--stream-buffer", help="swabian / swabian-fake: events "
                                                    "the time-tag stream holds between two polls (default 20000000; "
                                                    "a full buffer loses tags: the rounds they touch are flagged)."),
        idle_timeout: float = typer.Option(0.0, "--idle-timeout", min=0, help="follow: end the run after this "
                                           "many seconds without the file growing (default 0 = wait as long as the "
                                           "acquisition runs; the status shows 'idle for N s')."),
        on_bad_record: str = typer.Option("fail", "--on-bad-record", help="replay/follow: what a bad record "
                                          "(time going backwards, negative or too far ahead, unknown record type) "
                                          "does: 'fail' ends the run there (rounds kept, files marked failed); "
                                          "'lost' turns it into lost data (rounds it touches flagged) and goes on."),
        max_jump_ps: Optional[int] = typer.Option(None, "--max-jump-ps", min=1, help="replay/follow: a tag later "
                                                  "than the previous one by more than this is a bad record "
                                                  "(default: no limit)."),
        inject_overflow: List[str] = typer.Option([], "--inject-overflow", help="swabian-fake: an overflow interval "
                                                  "BEGIN_S:END_S in device seconds (repeatable)."),
        raw: Optional[bool] = typer.Option(None, "--raw/--no-raw", help="Keep the raw tag stream in <out>/raw/ "
                                           "(<lab>.dump, then <lab>.1.dump, ...), from which `timetag process` "
                                           "re-derives every round. Default: on, except for replay: (the replayed "
                                           "file is the raw record already). With --no-raw the rounds of this run "
                                           "cannot be re-derived or re-processed later."),
        raw_format: str = typer.Option("dump", "--raw-format", help="Format of the raw tag files: 'dump' (Swabian "
                                       "16-byte records, with the lost-data events; readable as it is after a "
                                       "kill) or 'h5' (timetag HDF5 tags)."),
        raw_rotate_mb: float = typer.Option(1024.0, "--raw-rotate-mb", help="Start the next raw tag file "
                                            "(<lab>.1.dump, <lab>.2.dump, ...) once one holds this many MiB of "
                                            "records."),
        web: Optional[str] = typer.Option(None, "--web", show_default="off", help="Serve a read-only dashboard "
                                          "page of the run at HOST:PORT (':PORT' or 'PORT' = 127.0.0.1; port 0 "
                                          "picks a free one), updated every status interval; its URL goes to "
                                          "stderr. Needs `pip install 'timetag[web]'`."),
        web_token: Optional[str] = typer.Option(None, "--web-token", show_default="none on loopback, a random "
                                                "one otherwise", help="Token the dashboard requires on every "
                                                "request (?token=...). A non-loopback --web without one gets a "
                                                "random token, printed in the URL."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No terminal view and no status lines: only "
                                   "the closing summary (and the dashboard's URL with --web)."),
    ):
        """Process tags live: rounds are appended to the rounds files and flushed at least every second.

        Rounds go to <out>/<lab>_rounds.h5.partial while the run goes on and are renamed to <lab>_rounds.h5 at the end, with how the run ended (complete, interrupted, failed) written last. The raw tags go to <out>/raw/<lab>.dump (rotated into <lab>.1.dump, ...; not for replay: unless --raw), from which `timetag process` re-derives the same rounds. Ctrl-C stops cleanly, prints what was kept and exits 130 (the files are marked interrupted); an error exits non-zero (marked failed). A killed process (even SIGKILL) leaves the .partial file holding every round up to the last flush: `timetag recover` saves it (its raw tags are in raw/<lab>.dump.partial, plain records: rename it). An existing output is never overwritten. Falling behind the device (backlog, device overflows) is measured and shown. Examples:

          timetag live --source sim --out demo --speed 20 --speedup 1000

          timetag live --source sim --setup setup.toml --out run1 --speed 10

          timetag live --source replay:alice.dump --setup setup.toml --lab alice --out re --speed max --no-view

          timetag live --source follow:/data/today.dump --setup setup.toml --lab bob --out live --json-lines
        """
        from ..custody import Completion
        from ..errors import TimetagError
        from ..live.factory import build_source, parse_overflows, parse_speed
        from ..live.jsonlines import JsonLinesWriter
        from ..live.runner import LiveRunner
        from ..setupfile import load_setup

        if not 0 < flush_interval <= 1.0:
            raise TimetagError(f"--flush-interval must be in (0, 1] seconds (got {flush_interval})")
        # 'not x > 0' also refuses nan, which passes every comparison
        if not status_interval > 0:
            raise TimetagError(f"--status-interval must be > 0 (got {status_interval})")
        if duration is not None and not duration > 0:
            raise TimetagError(f"--duration must be > 0 seconds (got {duration})")
        if not 0 < raw_rotate_mb < float("inf"):
            raise TimetagError(f"--raw-rotate-mb must be a positive number of MiB (got {raw_rotate_mb})")
        if on_bad_record not in ("fail", "lost"):  # said with the flag's name, as `process` says it
            raise TimetagError(f"--on-bad-record must be 'fail' or 'lost' (got {on_bad_record!r})")
        if raw_format not in ("dump", "h5"):
            raise TimetagError(f"--raw-format must be 'dump' or 'h5' (got {raw_format!r})")
        sim_params = {"speedup": speedup} if speedup is not None else {}
        if setup is None:
            if source.strip().lower() != "sim":
                raise TimetagError("--setup is required (only --source sim can derive the setup itself)")
            from ..live.simdevice import SimDevice

            st = SimDevice(preset=preset, seed=seed, sim_params=sim_params).matching_setup()
        else:
            st = load_setup(setup)
        # the dashboard's port is taken before anything else: a port in use refuses the run before a device is
        # opened or a file written
        dashboard = _start_dashboard(st, web, web_token) if web is not None else None
        try:
            src, labs = build_source(source, st, lab=lab, speed=parse_speed(speed), seed=seed, preset=preset,
                                     serial=serial, idle_timeout=idle_timeout or None,
                                     overflows=parse_overflows(inject_overflow), sim_params=sim_params,
                                     on_bad_record=on_bad_record, max_jump_ps=max_jump_ps, test_signal=test_signal,
                                     stream_buffer=stream_buffer)
            if setup is None:  # written once the source is accepted: a refused run leaves no setup behind
                from ..custody import AtomicOutput

                with AtomicOutput(out / "setup.toml", flag="choose another --out (a live run never replaces its files)") as o:
                    o.partial.write_text(st.dumps())
            callbacks = []
            jl = JsonLinesWriter(sys.stdout) if json_lines else None
            view = None
            if jl is not None:
                callbacks.append(jl)
            elif quiet:
                pass
            elif no_view or not sys.stdout.isatty():
                callbacks.append(_plain_line)
            else:
                from ..live.view import LiveView

                view = LiveView()
                callbacks.append(view)
            runner = LiveRunner(src, st, out, labs=labs, duration=duration, flush_interval=flush_interval,
                                status_interval=status_interval, on_status=callbacks, raw_tags=raw,
                                raw_format=raw_format, raw_rotate_bytes=max(int(raw_rotate_mb * 2**20), 16))
            if dashboard is not None:
                dashboard.feed.attach(runner)
        except BaseException:
            if dashboard is not None:
                dashboard.close()
            raise

        def _on_signal(signum, frame):
            if runner._stop_requested:  # second Ctrl-C: stop at once (the files are still closed properly)
                raise KeyboardInterrupt
            runner.stop("interrupted (Ctrl-C)" if signum == signal.SIGINT else f"stopped by signal {signum}")

        old_int = signal.signal(signal.SIGINT, _on_signal)
        old_term = signal.signal(signal.SIGTERM, _on_signal)
        try:
            if view is not None:
                with view:
                    result = runner.run()
            else:
                result = runner.run()
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
            if dashboard is not None:
                dashboard.close()
        if jl is not None:
            jl.write({"kind": "summary", "rounds": result.rounds, "paths": {k: str(v) for k, v in result.paths.items()},
                      "wall_s": result.wall_s, "tags": result.tags, "interrupted": result.interrupted,
                      "completion": str(result.state), "reason": result.reason,
                      "latency_s": result.final_status.get("latency_s"), "lag_s_max": result.final_status.get("lag_s_max"),
                      "alarms": result.final_status.get("alarms", []),
                      "raw_tags": {k: [str(p) for p in v] for k, v in result.raw_files.items()}})
        stream = sys.stderr if jl is not None else sys.stdout
        for line in result.summary_lines():
            print(line, file=stream)
        if result.state is Completion.INTERRUPTED:
            raise typer.Exit(130 if "Ctrl-C" in result.reason else 143)


def _start_dashboard(setup, web: str, token: str | None):
    """The dashboard served on a daemon thread; its feed becomes a status callback of the runner once that exists
    (``feed.attach``; see timetag.dashboard)."""
    from ..dashboard import DashboardServer, LiveFeed
    from ..dashboard.server import is_loopback, new_token, parse_address

    host, port = parse_address(web)
    if token is None and not is_loopback(host):
        token = new_token()  # a page reachable from the network is not readable by whoever finds the port
    server = DashboardServer(LiveFeed(setup), host, port, token=token).start()
    print(f"dashboard: {server.url}", file=sys.stderr, flush=True)
    return server


def _plain_line(status: dict) -> None:
    parts = [f"t={status['wall_s']:.1f}s"]
    idle = status.get("idle_s")
    if idle is not None and idle >= 1.0:
        parts.append(f"idle for {idle:.0f} s")
    for lab, snap in status["labs"].items():
        rate = snap.get("tag_rate")
        parts.append(f"{lab}: {snap['tags']} tags ({(rate or 0) / 1e3:.1f} k/s), {snap['rounds']} rounds")
    if status.get("lag_s") is not None:
        parts.append(f"lag {status['lag_s']:.2f}s")
    if status.get("alarms"):
        parts.append("ALARMS: " + "; ".join(status["alarms"]))
    print(" | ".join(parts), flush=True)
