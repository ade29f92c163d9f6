"""timetag.plugins: what the calibrate package adds to timetag through entry points (timetag never imports it)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

import timetag
from calibrate import calibrate_run
from timetag import plugins
from timetag.cli import COMMANDS, app
from timetag.demo import run_demo
from timetag.errors import TimetagError

TIMETAG = Path(timetag.__file__).parent


def test_calibrate_registers_its_command_and_calibrator():
    eps = plugins.command_plugins()
    assert eps["calibrate"].value == "calibrate.cli:register"
    assert plugins.calibrator() is calibrate_run


def test_missing_calibrator_is_one_clear_error():
    with pytest.raises(plugins.PluginMissing, match="no calibrator 'nope'.*timetag.calibrators") as exc:
        plugins.calibrator("nope")
    assert isinstance(exc.value, TimetagError)


def test_demo_without_a_calibrator_refuses_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(plugins, "entry_points", lambda group: [])
    with pytest.raises(plugins.PluginMissing):
        run_demo(tmp_path / "demo", rounds=10, plots=False)
    assert not (tmp_path / "demo").exists()


def test_cli_lists_calibrate_in_its_place():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    shown = [name for name in COMMANDS if f" {name} " in res.output]
    assert shown == COMMANDS
    assert res.output.index(" process ") < res.output.index(" calibrate ") < res.output.index(" estimate ")
    res = CliRunner().invoke(app, ["calibrate", "--help"])
    assert res.exit_code == 0 and "--setup" in res.output


def test_timetag_never_imports_calibrate():
    """calibrate depends on timetag, never the reverse: no module of timetag imports it, anywhere in the file."""
    offenders = []
    for path in TIMETAG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(TIMETAG)}:{node.lineno}" for n in names
                          if n == "calibrate" or n.startswith("calibrate.")]
    assert offenders == []
