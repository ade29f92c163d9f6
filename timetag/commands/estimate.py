"""`timetag estimate ALICE_ROUNDS BOB_ROUNDS`: join both labs, sift, CHSH / QBER / key rates."""
from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import EstimationError

PROTOCOL_LABELS = (("random_basis", "random key basis"), ("original", "original protocol"))


def register(app):
    @app.command("estimate")
    def estimate_cmd(
        alice_rounds: Path = typer.Argument(..., help="Alice's rounds file (HDF5, role 'alice')."),
        bob_rounds: Path = typer.Argument(..., help="Bob's rounds file (HDF5, role 'bob')."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the table."),
        plots: Path | None = typer.Option(None, "--plots", show_default="no figures",
                                          help="Write correlations.png and finite_key.png here."),
        flagged: str = typer.Option("keep", "--flagged", help="Flagged rounds: keep (default, DI) or drop."),
        samples: int = typer.Option(20000, "--samples", min=0,
                                    help="Posterior samples for the Bayesian errors (0: none)."),
        seed: int = typer.Option(0, "--seed", min=0, help="Seed of the posterior sampling."),
        offset_ps: float | None = typer.Option(None, "--offset-ps", help="Bob clock - Alice clock (default: estimated)."),
        drift: float | None = typer.Option(None, "--drift", help="Relative clock drift (default: estimated)."),
        setup: Path | None = typer.Option(None, "--setup", "-s", show_default="none",
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
        same_run: bool = typer.Option(False, "--same-run", help="Take the two files as one run although their "
                                      "setups differ and name no common [meta] run (e.g. one lab recalibrated); "
                                      "both setups are named in the result."),
        force: bool = typer.Option(False, "--force", help="Replace existing outputs (the --plots figures); the "
                                   "old file stays until the new one is complete."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No table: only warnings and errors, on stderr "
                                   "(for --plots alone; --json still prints its object)."),
    ):
        """Estimate S, QBERs, key rates and the finite-key block length from both labs' rounds."""
        # loaded when the command runs, not for its --help: scipy with the estimators (most of a second), filelock
        # with custody
        from ..custody import check_target
        from ..estimators.pipeline import estimate
        from ..estimators.plots import plot_targets, require_matplotlib, write_plots

        if flagged not in ("keep", "drop"):
            raise EstimationError(f"--flagged must be 'keep' or 'drop', got {flagged!r}")
        for option, value in (("--offset-ps", offset_ps), ("--drift", drift)):
            if value is not None and not math.isfinite(value):  # nan/inf: no pairs, and numpy warnings on the way
                raise EstimationError(f"{option} must be a finite number, got {value}")
        inputs = [p for p in (alice_rounds, bob_rounds, setup) if p is not None]
        if plots is not None:
            # refused before the (slow) estimate, not after it
            require_matplotlib("--plots")
            for target in plot_targets(plots):
                check_target(target, inputs=inputs, force=force)
        from .progress import Working

        # the estimate reports no progress of its own; past a second a spinner says it is working
        with Working("estimate: joining both labs' rounds, sifting, sampling the posterior", enabled=not quiet):
            est = estimate(alice_rounds, bob_rounds, flagged=flagged, samples=samples, seed=seed,
                           offset_ps=offset_ps, drift=drift, setup=setup, patterns=patterns,
                           accept_incomplete=accept_incomplete, same_run=same_run)
        if plots is not None:
            est.plots = [str(p) for p in write_plots(est, plots, force=force, inputs=inputs)]
        res = est.to_json()
        if as_json:
            for inc in res["incomplete_inputs"]:
                typer.secho(f"! {inc['message']}", err=True, fg="red")
            typer.echo(json.dumps(res, allow_nan=False))
            return
        if quiet:
            err = Console(stderr=True)
            for inc in res["incomplete_inputs"]:
                err.print(f"[bold red]![/] {escape(inc['message'])}")
            for w in res.get("warnings") or []:
                err.print(f"[bold yellow]warning:[/] {escape(w['message'])}")
            return
        table = render_table(res)
        con = console_for(table)
        con.print(table)
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
        print_warnings(con, res)


def console_for(*tables: Table, stderr: bool = False) -> Console:
    """A console that shows ``tables`` whole: as wide as they need when the output is not a terminal (a file,
    a pipe: rich's default of 80 columns would cut them); on a terminal its own width, with every column folding
    its text onto more lines rather than cutting it."""
    from rich.measure import Measurement

    con = Console(stderr=stderr)
    for t in tables:
        for col in t.columns:
            col.overflow = "fold"
            col.no_wrap = False
    if con.is_terminal:
        return con
    need = max((Measurement.get(con, con.options.update_width(10_000), t).maximum for t in tables), default=0)
    return Console(stderr=stderr, width=max(100, con.width, need))


def print_warnings(con, res: dict) -> None:
    """One ``warning:`` line per fragile number of an estimate (few rounds, no error seen, S above 2 sqrt 2, an
    interval outside the physical range); shared with `timetag demo`."""
    for w in res.get("warnings") or []:
        con.print(f"[bold yellow]warning:[/] {escape(w['message'])}")
    iv = res.get("intervals") or {}
    if iv.get("method_text"):
        con.print(f"[dim]intervals: {escape(iv['method_text'])}[/]")
    elif iv.get("prior_text"):  # a result written before the interval method was recorded
        con.print(f"[dim]intervals: central credible intervals, prior {escape(iv['prior_text'])}[/]")


def _f3(v):
    return "not computed" if v is None else f"{v:.3f}"


#: The legend under the result tables of `timetag estimate` and `timetag demo`: what each symbol means and the
#: units; every word a cell may show instead of a number is one of :data:`MISSING`.
TABLE_LEGEND = (
    "E_xy: correlator (N_same - N_diff) / N_xy of the rounds with Alice's setting x and Bob's setting y; "
    "S = E21 - E20 - E30 - E31 (CHSH value: at most 2 without entanglement, 2.83 quantum maximum).",
    "Q0, Q1: quantum bit error rates (fraction of key rounds x = y = 0, 1 with equal outputs); Q: both pooled.",
    "± : one standard deviation. Key rates: bits per event (per heralded round; at most 0.25), asymptotic. "
    "Block length: events (heralded rounds).",
)
#: Words shown in place of a number, and what they mean (printed under a table that shows one).
MISSING = {
    "no rounds": "no rounds with these inputs",
    "not computed": "not computable from these rounds",
    "not sampled": "no interval (posterior intervals need samples: --samples 0 gave none)",
    "no key at any N": "the finite-key rate is not positive at any block length N",
}


def legend_lines(*tables_text: str) -> list[str]:
    """The legend lines of a result table; ``tables_text``: the rendered cells, to add a line for every word of
    :data:`MISSING` they show."""
    text = " ".join(tables_text)
    used = [f"{w}: {m}" for w, m in MISSING.items() if w in text]
    return list(TABLE_LEGEND) + (["; ".join(used) + "."] if used else [])


def _fmt(v, err=None, digits=3, missing="not computed"):
    if v is None:
        return missing
    if isinstance(v, str):
        return v
    s = f"{v:.{digits}f}"
    if err is not None:
        s += f" ± {err:.{digits}f}"
    return s


def _ci(iv: dict | None, digits=3, label="95%"):
    ci = (iv or {}).get(label)
    return "not sampled" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _block_length(mbl) -> str:
    if mbl is None:
        return "not computed"
    if isinstance(mbl, str) or not math.isfinite(mbl):
        return "no key at any N" if str(mbl) == "inf" or mbl == float("inf") else str(mbl)
    return f"{mbl:.3g}"


def _positive(p: str, yes: bool) -> str:
    return f"{p.replace('_', ' ')}: {'key > 0' if yes else 'no key'}"


def render_table(res: dict) -> Table:
    """A rich Table in the layout of the paper's results (E_xy, S, Q0, Q1, Q, rates, block length), from the
    JSON object of an estimate; the ``95 % interval`` column shows the reported intervals (the method is named
    under the table by :func:`print_warnings`; key rates with their physical floor 0), which stay honest where +- errors do not (few rounds, no error seen).
    Its caption is the legend (:func:`legend_lines`): symbols, units, and every word shown instead of a number."""
    incomplete = res.get("incomplete_inputs") or []
    title = f"DIQKD estimate — {res['rounds']} rounds" + (" (INCOMPLETE INPUT)" if incomplete else "")
    t = Table(title=title, show_header=True, header_style="bold", caption_justify="left")
    t.add_column("quantity", no_wrap=True)
    t.add_column("value ± 1σ", justify="right")
    t.add_column("95 % interval", justify="right")
    t.add_column("N (rounds) / note", justify="right")
    iv = res.get("intervals") or {}
    for xy in ("2,0", "3,0", "2,1", "3,1"):
        t.add_row(f"E{xy.replace(',', '')}", _fmt(res["E"][xy], res["E_err"][xy], missing="no rounds"),
                  _ci((iv.get("E") or {}).get(xy)), str(res["N"][xy]))
    t.add_row("S", _fmt(res["S"], res["S_err"]), _ci(iv.get("S")), str(res["test_rounds"]), end_section=True)
    t.add_row("Q0", _fmt(res["Q0"], res["Q0_err"], 4, missing="no rounds"), _ci(iv.get("Q0"), 4),
              str(res["N"]["0,0"]))
    t.add_row("Q1", _fmt(res["Q1"], res["Q1_err"], 4, missing="no rounds"), _ci(iv.get("Q1"), 4),
              str(res["N"]["1,1"]))
    t.add_row("Q", _fmt(res["Q"], res["Q_err"], 4), _ci(iv.get("Q"), 4), str(res["key_rounds"]), end_section=True)
    rate_iv = iv.get("key_rate_per_event") or {}
    for p, label in PROTOCOL_LABELS:
        ci, note = _ci(rate_iv.get(p)), ""
        if rate_iv.get(p) and rate_iv[p]["95%"][0] <= 0.0:  # cut at the floor: it reached below 0
            note = "floor 0: no key not excluded"
        rate = res["key_rate_per_event"][p]
        if rate is not None and rate <= 0:
            note = "; ".join(n for n in ("not positive: no key", note) if n)
        t.add_row(f"key rate, {label} (bits/event)", _fmt(rate), ci, note)
    th = res["thresholds_depolarising"]
    t.add_row("depolarising threshold Q", f"{100 * th['random_basis']['Q']:.2f} % / {100 * th['original']['Q']:.2f} %",
              "", "random basis / original")
    if res.get("worst_case"):
        wc = res["worst_case"]
        shown = {p for p, _ in PROTOCOL_LABELS}
        pos = ", ".join(_positive(k, v) for k, v in wc["positive"].items() if k in shown)
        t.add_row(f"worst case ({100 * wc['prob_error']:.0f} % prob. error)",
                  f"S {wc['S']:.4f}, Q {max(wc['Q0'], wc['Q1']):.3f}", "", pos)
    t.add_row("finite-key min. block length (events)", _block_length(res["min_block_length"]),
              "", f"eps {res['finite_key']['eps']:g}, f_EC {res['finite_key']['f_ec']:g}", end_section=True)
    fid = res["fidelity"]
    t.add_row("fidelity bound F >=", _fmt(fid["F"], fid["F_err"]), "",
              "visibilities V = " + ", ".join(_fmt(v) for v in fid["V"]))
    t.caption = "\n".join(legend_lines(*_cells(t)))
    return t


def _cells(t: Table) -> list[str]:
    """Every cell of a rich Table as text (to see which words of :data:`MISSING` it shows)."""
    return [str(c) for col in t.columns for c in col.cells]
