"""`timetag estimate ALICE_ROUNDS BOB_ROUNDS`: join both labs, sift, CHSH / QBER / key rates."""
from __future__ import annotations

import json
import math
from pathlib import Path

import typer


def register(app):
    @app.command("estimate")
    def estimate_cmd(
        alice_rounds: Path = typer.Argument(..., help="Alice's rounds file (HDF5, role 'alice')."),
        bob_rounds: Path = typer.Argument(..., help="Bob's rounds file (HDF5, role 'bob')."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
        plots: Path | None = typer.Option(None, "--plots", help="Write correlations.png and finite_key.png here."),
        flagged: str = typer.Option("keep", "--flagged", help="Flagged rounds: keep (default, DI) or drop."),
        samples: int = typer.Option(20000, "--samples", min=0,
                                    help="Posterior samples for the Bayesian errors (0: none)."),
        seed: int = typer.Option(0, "--seed", min=0, help="Seed of the posterior sampling."),
        offset_ps: float | None = typer.Option(None, "--offset-ps", help="Bob clock - Alice clock (default: estimated)."),
        drift: float | None = typer.Option(None, "--drift", help="Relative clock drift (default: estimated)."),
        setup: Path | None = typer.Option(None, "--setup", "-s",
                                          help="Setup TOML; its clock table (written by timetag calibrate) "
                                               "gives the offset/drift of the join unless --offset-ps/--drift "
                                               "are given."),
        patterns: str | None = typer.Option(None, "--patterns",
                                            help="Use only these herald patterns, e.g. 'psi+' (default: all; "
                                                 "psi- rounds are relabelled into the psi+ frame)."),
        accept_incomplete: bool = typer.Option(False, "--accept-incomplete",
                                               help="Use a rounds file whose run did not complete (interrupted, "
                                                    "failed, recovered); the result then names it and says why "
                                                    "(JSON: incomplete_inputs). Without it such a file is refused."),
        force: bool = typer.Option(False, "--force", help="Replace existing outputs (the --plots figures); the "
                                   "old file stays until the new one is complete."),
    ):
        """Estimate S, QBERs, key rates and the finite-key block length from both labs' rounds."""
        from ..errors import EstimationError
        from ..estimators.pipeline import estimate

        if flagged not in ("keep", "drop"):
            raise EstimationError(f"--flagged must be 'keep' or 'drop', got {flagged!r}")
        for option, value in (("--offset-ps", offset_ps), ("--drift", drift)):
            if value is not None and not math.isfinite(value):  # nan/inf: no pairs, and numpy warnings on the way
                raise EstimationError(f"{option} must be a finite number, got {value}")
        inputs = [p for p in (alice_rounds, bob_rounds, setup) if p is not None]
        if plots is not None:
            # refused before the (slow) estimate, not after it
            from ..custody import check_target
            from ..estimators.plots import plot_targets, require_matplotlib

            require_matplotlib("--plots")
            for target in plot_targets(plots):
                check_target(target, inputs=inputs, force=force)
        res = estimate(alice_rounds, bob_rounds, flagged=flagged, samples=samples, seed=seed,
                       offset_ps=offset_ps, drift=drift, setup=setup, patterns=patterns,
                       accept_incomplete=accept_incomplete)
        if plots is not None:
            from ..estimators.plots import write_plots

            res["plots"] = [str(p) for p in write_plots(res, plots, force=force, inputs=inputs)]
        if as_json:
            for inc in res["incomplete_inputs"]:
                typer.secho(f"! {inc['message']}", err=True, fg="red")
            typer.echo(json.dumps(res, allow_nan=False))
            return
        from rich.console import Console
        from rich.markup import escape

        from ..estimators.report import render_table

        con = Console(width=max(100, Console().width))
        con.print(render_table(res))
        for inc in res["incomplete_inputs"]:
            con.print(f"[bold red]![/] {escape(inc['message'])}")
        j, s = res["join"], res["sift"]
        con.print(f"joined {j['pairs']} pairs (clock: {escape(j['clock']['label'])}; offset {j['offset_ps'] / 1e12:.6f} s, "
                  f"drift {j['drift']:.3g}); unmatched Alice {j['unmatched_alice']}, Bob {j['unmatched_bob']}; "
                  f"unassignable {s['unassignable']}; flagged {s['flagged_pairs']} ({s['flag_policy']}; "
                  f"{res['flagged_other_policy']['policy']}: S = {_f3(res['flagged_other_policy']['S'])})")
        pu = s["patterns_used"]
        if pu["psi-"] or s["pattern_selection"]:
            sel = "" if not s["pattern_selection"] else f" (selected: {', '.join(s['pattern_selection'])})"
            con.print(f"heralds used: psi+ {pu['psi+']}, psi- {pu['psi-']} (Bob's input relabelled y -> 1 - y), "
                      f"none {pu['none']}, other {pu['other']}{sel}")
        for n in j["notes"]:
            con.print(f"[yellow]note:[/] {escape(n)}")


def _f3(v):
    return "-" if v is None else f"{v:.3f}"
