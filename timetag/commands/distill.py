"""`timetag distill ALICE_ROUNDS BOB_ROUNDS --out DIR`: sift, reconcile, verify, amplify -> two identical keys."""
from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from ..errors import EstimationError
from .options import quiet_option

OUTPUT_NAMES = ("alice.key", "bob.key", "report.json", "transcript.h5")
PLOT_NAME = "key_length.png"  # timetag.distill.plots.PLOT_NAME (not imported here: matplotlib is optional)


def register(app):
    @app.command("distill")
    def distill_cmd(
        alice_rounds: Path = typer.Argument(..., help="Alice's rounds file (HDF5, role 'alice')."),
        bob_rounds: Path | None = typer.Argument(None, help="Bob's rounds file (HDF5, role 'bob'); not with --role."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for alice.key, bob.key (packed bits), "
                                 "report.json and transcript.h5."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
        eps_sec: float = typer.Option(1e-5, "--eps-sec", help="Secrecy parameter of the finite-key bound."),
        eps_cor: float = typer.Option(1e-10, "--eps-cor", help="Correctness: verification collision bound."),
        qber: float | None = typer.Option(None, "--qber", help="Design QBER of the codes (e.g. from calibration); "
                                          "default: estimated from a disclosed sample of key bits (charged)."),
        sample_bits: int | None = typer.Option(None, "--sample-bits", min=1,
                                               help="Key bits disclosed for the QBER (default n_k/200 in "
                                               "[500, 2000]; with --no-blind n_k/50, <= 10000)."),
        f_design: float | None = typer.Option(None, "--f-design", help="Starting efficiency of the frames "
                                              "(default 1.08 with blind rounds; without: 1.18, 1.25 below QBER 7 %, "
                                              "1.32 below 4 %)."),
        blind: bool = typer.Option(True, "--blind/--no-blind", help="Blind rounds: Alice reveals punctured bits "
                                   "of undecoded frames (counted as leak) until they decode (f ~ 1.1); "
                                   "--no-blind: one-shot frames at --f-design."),
        decoder: str = typer.Option("layered", "--decoder", help="Syndrome decoder: layered (the project's "
                                    "sum-product) or ldpc (ldpc.BpDecoder, needs the ldpc package)."),
        plot: bool = typer.Option(False, "--plot", help="Also draw DIR/key_length.png: final key length vs "
                                  "rounds at this run's S, QBER and measured f, next to f = 1.15 and the paper's "
                                  "1.75e5-round minimum (needs matplotlib)."),
        quiet: bool = quiet_option("No summary: only warnings (e.g. why there is no key) and errors, on stderr; "
                                   "--json still prints the report."),
        seed: int | None = typer.Option(None, "--seed", min=0, help="Reproducible randomness for tests (NOT "
                                        "secure; default: os.urandom)."),
        flagged: str = typer.Option("keep", "--flagged", help="Flagged rounds: keep (default, DI) or drop."),
        patterns: str | None = typer.Option(None, "--patterns", show_default="all",
                                            help="Use only these herald patterns."),
        setup: Path | None = typer.Option(None, "--setup", "-s", show_default="none",
                                          help="Setup TOML with a [clock] table."),
        offset_ps: float | None = typer.Option(None, "--offset-ps", show_default="estimated",
                                               help="Bob clock - Alice clock."),
        drift: float | None = typer.Option(None, "--drift", show_default="estimated", help="Relative clock drift."),
        accept_incomplete: bool = typer.Option(False, "--accept-incomplete",
                                               help="Use rounds files whose run did not complete."),
        force: bool = typer.Option(False, "--force", help="Replace existing outputs (kept until the new are "
                                   "complete)."),
        role: str | None = typer.Option(None, "--role", show_default="both labs in this process",
                                        help="Two-party form: run one lab's side (alice or bob) "
                                        "with only its rounds file, over TCP (docs/distill.md)."),
        listen: str | None = typer.Option(None, "--listen", show_default="none",
                                          help="Alice: HOST:PORT to listen on (port 0: any "
                                          "free port, announced on stderr)."),
        connect: str | None = typer.Option(None, "--connect", show_default="none", help="Bob: HOST:PORT of Alice."),
        psk: Path | None = typer.Option(None, "--psk", show_default="none",
                                        help="Pre-shared key file (>= 32 bytes) authenticating "
                                        "every message (HMAC-SHA256); required with --role."),
    ):
        """Distil a shared secret key from both labs' rounds (one process, both roles), or run one lab's side
        over TCP (--role alice --listen HOST:PORT / --role bob --connect HOST:PORT, with --psk)."""
        from ..custody import AtomicOutputs, check_distinct, check_target   # filelock: not for --help
        from ..distill.reconcile import DECODERS, require_ldpc
        if decoder not in DECODERS:
            raise EstimationError(f"--decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        if decoder == "ldpc":
            require_ldpc()  # before the slow sift: one line naming the extra
        if plot:
            from ..estimators.plots import require_matplotlib
            require_matplotlib("--plot")
        from ..distill import distill

        if flagged not in ("keep", "drop"):
            raise EstimationError(f"--flagged must be 'keep' or 'drop', got {flagged!r}")
        for option, value in (("--offset-ps", offset_ps), ("--drift", drift)):
            if value is not None and not math.isfinite(value):
                raise EstimationError(f"{option} must be a finite number, got {value}")
        if role is not None or bob_rounds is None:
            from .distill_party import run_role
            return run_role(role, alice_rounds, bob_rounds, out, listen=listen, connect=connect, psk=psk,
                            as_json=as_json, force=force, eps_sec=eps_sec, eps_cor=eps_cor, qber=qber,
                            sample_bits=sample_bits, f_design=f_design, seed=seed, flagged=flagged,
                            patterns=patterns, setup=setup, offset_ps=offset_ps, drift=drift,
                            accept_incomplete=accept_incomplete, blind=blind, decoder=decoder, plot=plot,
                            quiet=quiet)
        targets = [out / name for name in OUTPUT_NAMES] + ([out / PLOT_NAME] if plot else [])
        inputs = [p for p in (alice_rounds, bob_rounds, setup) if p is not None]
        check_distinct(targets)
        for t in targets:
            check_target(t, inputs=inputs, force=force)
        res = distill(alice_rounds, bob_rounds, eps_sec=eps_sec, eps_cor=eps_cor, qber=qber,
                      sample_bits=sample_bits, f_design=f_design, seed=seed, flagged=flagged, patterns=patterns,
                      setup=setup, offset_ps=offset_ps, drift=drift, accept_incomplete=accept_incomplete,
                      blind=blind, decoder=decoder)
        rep = res.report.to_json()
        rep["files"] = {"alice": str(alice_rounds), "bob": str(bob_rounds),
                        "key_format": "numpy.packbits (big-endian bit order), final_length bits"}
        with AtomicOutputs(targets, inputs=inputs, force=force) as outs:
            outs[0].partial.write_bytes(__import__("numpy").packbits(res.alice_key).tobytes())
            outs[1].partial.write_bytes(__import__("numpy").packbits(res.bob_key).tobytes())
            outs[2].partial.write_text(json.dumps(rep, indent=1, allow_nan=False) + "\n")
            res.transcript.write_h5(outs[3].partial, attrs={"family": rep["code"].get("family", ""),
                                                            "seed_source": rep["seeds"]["source"]})
            if plot:
                draw_plot(rep, outs[4])
        echo_result(rep, out, as_json=as_json, quiet=quiet)


def draw_plot(rep: dict, output) -> None:
    """The key-length plot into an open custody output (written with the keys, all or none)."""
    from ..distill.plots import key_length_figure
    from ..estimators.plots import savefig_into
    savefig_into(key_length_figure(rep), output, dpi=120)


def echo_result(rep: dict, out: Path, *, as_json: bool, quiet: bool, prefix: str = "") -> None:
    if as_json:
        typer.echo(json.dumps(rep, allow_nan=False))
    elif not quiet:
        typer.echo(prefix + _summary(rep, out))
    if rep["message"]:  # a warning: shown with --quiet too
        typer.secho(rep["message"], err=True, fg="yellow")


def _summary(rep: dict, out: Path) -> str:
    lines = [f"rounds {rep['used']} used of {rep['pairs']} pairs: {rep['key_rounds']} key, {rep['test_rounds']} "
             f"test; S = {rep['S']:.3f}"]
    if rep["frames"]:
        fm = rep["f_measured"]
        blind = rep["code"].get("blind_rounds", 0)
        bat = rep["code"].get("batches") or [rep["code"]]
        shape = ", then ".join(f"{b['frames']} of {b['key_bits']} bits ({b['code']}, QBER {b['design_qber']:.4f})"
                               for b in bat)
        lines.append(f"reconciliation: {rep['frames']} frames: {shape}; {rep['frames_failed']} failed"
                     + (f", {blind} blind rounds ({rep['revealed_bits']} bits revealed)" if blind else "") + "; QBER "
                     f"{rep['qber_corrected'] or 0:.4f}; f = {'-' if fm is None else f'{fm:.3f}'}; leak "
                     f"{rep['leak_total']} bits (+ {rep['discarded_bits']} dropped)")
    lines.append(f"final key: {rep['final_length']} bits (bound {rep['bound'] if rep['bound'] is None else round(rep['bound'])}"
                 f"; eps_sec {rep['eps_sec']:g}, eps_cor {rep['eps_cor']:g}) -> {out}")
    return "\n".join(lines)
