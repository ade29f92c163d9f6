"""`timetag simulate`: raw tag files of both labs + setup.toml + truth.h5 from the physics simulator."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..errors import SetupError
from .options import deprecated_format_option, from_deprecated

HELP = (
    "Simulate the two-lab DIQKD link and write what the two time taggers would record.\n\n"
    "Alice's lab excites both atoms 52 000 times a second in bursts; photons that pass the post-pulse time "
    "filter and meet in the Bell-state measurement (two clicks in the same arm, orthogonal polarisation = psi+) "
    "announce an entangled pair with a 'ready' tag in both labs. Each lab then records its random input as a "
    "setting tag and reads its atom out by fluorescence counting. Detectors have dark counts, jitter, dead time "
    "and afterpulses; Bob's clock has its own offset and drift.\n\n"
    "Writes into OUT: alice.<ext> and bob.<ext> (raw tags), setup.toml (channel map, delays, windows and "
    "thresholds for `timetag process`), truth.h5 (per round: true Bell state, inputs, atom outcomes, photon "
    "counts; per coincidence: which clicks were signal and which noise). Same seed -> byte-identical raw files.\n\n"
    "Existing files of those names in OUT are refused unless --force; all four files appear together when the "
    "simulation is complete (an interrupted run leaves the old ones, or none)."
)


def register(app):
    @app.command("simulate", help=HELP)
    def simulate_cmd(
        out: Path = typer.Option(..., "--out", "-o", help="Output directory (created if missing)."),
        preset: str = typer.Option("lmu2022", "--preset", "-p",
                                   help="Parameter preset: a name in timetag/presets (lmu2022 = the paper's link: "
                                        "52 kHz, duty 0.48, 0.49e-6 psi+ heralds per attempt) or a TOML path."),
        rounds: int = typer.Option(100, "--rounds", "-n",
                                   help="Heralded rounds to simulate. At the paper's efficiency one round takes "
                                        "~82 s of simulated time (3342 rounds = 75 h of data)."),
        seed: int = typer.Option(1, "--seed", min=0,
                                 help="Random seed; the same seed gives byte-identical files."),
        fmt: str = typer.Option("dump", "--out-format",
                                help="Raw file format: dump (Swabian 16-byte records, keeps lost-data events), "
                                     "ptu (PicoQuant T2; lost-data events are dropped), h5, text."),
        speedup: Optional[float] = typer.Option(
            None, "--speedup", show_default="1, or the preset's",
            help="Multiply the entanglement efficiency (the single-photon detection probability by its square "
                 "root) so that many rounds take little simulated time; nothing else changes. E.g. 1e4 gives a "
                 "round every ~20 ms instead of ~82 s."),
        set_: List[str] = typer.Option(
            [], "--set",
            help="Override a parameter, key=value in TOML syntax, repeatable. Examples: state_visibility=0.9, "
                 "sync_mode=\"every\", bob_clock_drift_ppm=0.5, dark_rate_hz_bob=500, dead_channels_alice=[3], "
                 "bob_ready_missing_prob=0.05, setting_double_prob=0.02, overflow_rate_hz=0.01, "
                 "afterpulse_burst_prob=0.001. See `timetag.simulator.SimParams` for all."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, only the summary line."),
        force: bool = typer.Option(False, "--force", help="Replace existing files in OUT; the old files stay "
                                   "until the new ones are complete."),
        format: Optional[str] = deprecated_format_option("--out-format", short=True),
        rounds_only: bool = typer.Option(False, "--rounds-only", help="Write only alice_rounds.h5 and "
                                         "bob_rounds.h5 (rounds files from the same model, no raw tags; fast "
                                         "enough for 1e7 rounds; timetag.simulator.rounds_only)."),
    ):
        # the simulator compiles numba kernels on import (seconds on a cold cache): not for `timetag --help`
        from ..simulator import expected_stats, load_preset, simulate
        from ..simulator.run import EXT, check_outputs

        fmt = from_deprecated(fmt, format, "--out-format", default="dump")
        if fmt not in EXT:  # said with the flag's name (the library names its keyword argument)
            raise SetupError(f"--out-format: unknown output format {fmt!r} (simulate writes: {', '.join(EXT)})")
        params = load_preset(preset)
        overrides = {}
        for item in set_:
            if "=" not in item:
                raise SetupError(f"--set expects key=value (got {item!r})", key="set")
            k, v = item.split("=", 1)
            overrides[k.strip()] = v.strip()
        if overrides:
            params = params.with_overrides(**overrides)
        if speedup is not None:
            params = params.with_overrides(speedup=speedup)
        exp = expected_stats(params)
        if rounds_only:
            from ..simulator.rounds_only import simulate_rounds
            st = simulate_rounds(params, rounds, seed, out, force=force).stats
            scale = "" if st["time_scale"] == 1 else f" (trigger times compressed x{st['time_scale']:.3g})"
            typer.echo(f"{st['rounds']} rounds ({st['rounds_bob']} at Bob) in {st['seconds']:.2f} s; expected S = "
                       f"{st['expected_S']:.3f}, Q = {st['expected_Q']:.4f}; {st['simulated_seconds']:.4g} s "
                       f"simulated{scale}\nwrote alice_rounds.h5, bob_rounds.h5 in {out} (run {st['run']!r})")
            return
        check_outputs(out, fmt, force=force)  # refused before a progress bar starts
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        if quiet:
            res = simulate(params, rounds, seed, out, fmt=fmt, force=force)
        else:
            with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.completed}/{task.total} rounds"),
                          TimeElapsedColumn(), console=console) as prog:
                task = prog.add_task("sim", total=rounds)
                res = simulate(params, rounds, seed, out, fmt=fmt, force=force,
                               progress=lambda done, total: prog.update(task, completed=done))
        st = res.stats
        typer.echo(
            f"{st['rounds']} rounds, {st['alice_tags']:,} Alice tags + {st['bob_tags']:,} Bob tags over "
            f"{st['simulated_seconds']:.1f} s simulated, in {st['seconds']:.2f} s ({st['tags_per_second'] / 1e6:.2f} "
            f"M tags/s)\nexpected S = {exp['expected_S']:.3f}, Q = {exp['expected_Q']:.4f} "
            f"(V_eff = {exp['visibility_eff']:.3f}); thresholds Alice {exp['threshold_alice']}, Bob "
            f"{exp['threshold_bob']}; herald rate {exp['herald_rate_hz']:.4g} /s\n"
            f"wrote {res.alice.name}, {res.bob.name}, {res.setup.name}, {res.truth.name} in {res.out_dir}")
