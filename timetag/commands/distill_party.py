"""The two-party form of `timetag distill` (``--role alice --listen HOST:PORT`` / ``--role bob --connect HOST:PORT``).

Each lab runs one process with its own rounds file; they meet over TCP, every message authenticated with HMAC-SHA256
under the pre-shared key (``--psk FILE``).  Outputs in ``--out``: ``alice.key`` (or ``bob.key``), ``report.json``
(what that party knows) and ``transcript.h5`` (the same file in both labs, and the same as the one-process form's
for the same seed).  Written through custody, only when the run has finished: a run that fails (lost connection,
a message that does not authenticate, verification) leaves no key and no partial file.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import typer

from ..custody import AtomicOutputs, check_distinct, check_target
from ..errors import EstimationError


def run_role(role, rounds: Path, extra: Path | None, out: Path, *, listen=None, connect=None, psk=None,
             as_json=False, force=False, seed=None, setup=None, offset_ps=None, drift=None,
             accept_incomplete=False, on_listening=None, plot=False, quiet=False, **params) -> None:
    """One lab's side; ``on_listening(host, port)`` (tests) is told Alice's port once she listens."""
    from ..distill.channel import read_psk
    from ..distill.party import Options, run_over_socket

    if role is None:
        raise EstimationError("give both rounds files (one-process form), or --role alice|bob with this lab's file")
    if role not in ("alice", "bob"):
        raise EstimationError(f"--role must be 'alice' or 'bob', got {role!r}")
    if extra is not None:
        raise EstimationError(f"--role {role}: give only this lab's rounds file (got a second one, {extra})")
    if role == "alice" and (listen is None or connect is not None):
        raise EstimationError("--role alice listens: give --listen HOST:PORT (and no --connect)")
    if role == "bob" and (connect is None or listen is not None):
        raise EstimationError("--role bob connects: give --connect HOST:PORT (and no --listen)")
    if role == "bob":
        given = [o for o, v in (("--seed", seed), ("--setup", setup), ("--offset-ps", offset_ps),
                                ("--drift", drift)) if v is not None]
        if given:
            raise EstimationError(f"{', '.join(given)}: alice's option{'s' if len(given) > 1 else ''} (she draws the "
                                  "random choices and runs the join), not bob's")
    if psk is None:
        raise EstimationError("--psk FILE (a pre-shared key of >= 32 bytes) is required with --role: every message "
                              "is authenticated")
    key = read_psk(psk)
    opts = Options(**params)
    from .distill import PLOT_NAME, draw_plot, echo_result
    targets = [out / f"{role}.key", out / "report.json", out / "transcript.h5"] + ([out / PLOT_NAME] if plot else [])
    inputs = [p for p in (rounds, setup, psk) if p is not None]
    check_distinct(targets)
    for t in targets:  # refused before the other lab is contacted
        check_target(t, inputs=inputs, force=force)

    def announce(host, port):
        typer.echo(f"alice: listening on {host}:{port}", err=True)
        sys.stderr.flush()
        if on_listening is not None:
            on_listening(host, port)

    kw = {"accept_incomplete": accept_incomplete}
    if role == "alice":
        kw.update(seed=seed, setup=setup, offset_ps=offset_ps, drift=drift, on_listening=announce)
    res = run_over_socket(role, rounds, listen if role == "alice" else connect, key, opts, **kw)
    rep = res.report.to_json()
    rep["files"] = {role: str(rounds), "key_format": "numpy.packbits (big-endian bit order), final_length bits"}
    with AtomicOutputs(targets, inputs=inputs, force=force) as outs:
        outs[0].partial.write_bytes(np.packbits(res.key).tobytes())
        outs[1].partial.write_text(json.dumps(rep, indent=1, allow_nan=False) + "\n")
        res.transcript.write_h5(outs[2].partial, attrs={"family": rep["code"].get("family", ""),
                                                        "seed_source": rep["seeds"]["source"]})
        if plot:
            draw_plot(rep, outs[3])
    echo_result(rep, out, as_json=as_json, quiet=quiet, prefix=f"{role}: ")
