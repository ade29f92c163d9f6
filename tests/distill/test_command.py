import json
import sys

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cases import rounds
from timetag.commands.distill import register
from timetag.distill.reconcile import MissingDecoder
from timetag.errors import OutputError
from timetag.roundsfile import write_rounds


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("r")
    A, B = rounds(160_000, V=0.94, seed=11)
    return (write_rounds(d / "alice.h5", A.rounds, lab="lab1", role="alice", setup_hash="h"),
            write_rounds(d / "bob.h5", B.rounds, lab="lab2", role="bob", setup_hash="h"))


def _app():
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop():  # a second command keeps typer in multi-command mode
        pass
    return app


def test_cli_writes_keys_report_transcript_and_refuses_to_overwrite(files, tmp_path):
    out = tmp_path / "key"
    r = CliRunner().invoke(_app(), ["distill", str(files[0]), str(files[1]), "--out", str(out), "--seed", "5",
                                    "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    ka, kb = (out / "alice.key").read_bytes(), (out / "bob.key").read_bytes()
    assert ka == kb and len(ka) == (rep["final_length"] + 7) // 8 > 0
    assert (out / "transcript.h5").exists() and not list(out.glob("*.partial"))
    r = CliRunner().invoke(_app(), ["distill", str(files[0]), str(files[1]), "--out", str(out)])
    assert r.exit_code != 0 and isinstance(r.exception, OutputError)
    assert (out / "alice.key").read_bytes() == ka


def test_missing_ldpc_is_one_line_naming_the_extra(files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ldpc", None)  # only the ldpc decoder needs it
    r = CliRunner().invoke(_app(), ["distill", str(files[0]), str(files[1]), "--out", str(tmp_path / "k"),
                                    "--decoder", "ldpc"])
    assert isinstance(r.exception, MissingDecoder)
    assert "timetag[distill]" in str(r.exception) and "\n" not in str(r.exception)
    assert not (tmp_path / "k").exists()


def test_key_bits_are_packed(files, tmp_path):
    out = tmp_path / "k2"
    CliRunner().invoke(_app(), ["distill", str(files[0]), str(files[1]), "--out", str(out), "--seed", "5"])
    rep = json.loads((out / "report.json").read_text())
    bits = np.unpackbits(np.frombuffer((out / "alice.key").read_bytes(), np.uint8), count=rep["final_length"])
    assert bits.mean() == pytest.approx(0.5, abs=0.05)


def test_quiet_prints_nothing_and_plot_draws_the_key_length_curves(files, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "q"
    r = CliRunner().invoke(_app(), ["distill", str(files[0]), str(files[1]), "--out", str(out), "--seed", "5",
                                    "--quiet", "--plot"])
    assert r.exit_code == 0, r.output
    assert r.output == ""
    png = out / "key_length.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(out.glob("*.partial"))
    loud = CliRunner().invoke(_app(), ["distill", str(files[0]), str(files[1]), "--out", str(tmp_path / "l"),
                                       "--seed", "5", "--qber", "0.025"])  # below the true ~3 %: blind rounds
    assert "final key:" in loud.output and "blind rounds" in loud.output
