"""timetag.plugins: what the calibrate package adds to timetag through entry points (timetag never imports it)."""
from __future__ import annotations

import ast
import json
import os
import sys
from importlib.metadata import EntryPoint
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


# --- the cached list of plugin commands (timetag --help) ----------------------------------------------------------

def _fake_entry_points(monkeypatch, names: list[str]) -> list[int]:
    """plugins.entry_points replaced by one that has a command plugin per name; returns its call counter."""
    calls = [0]

    def fake(group):
        calls[0] += 1
        return [EntryPoint(name=n, value=f"pkg_{n}.cli:register", group=group) for n in names]
    monkeypatch.setattr(plugins, "entry_points", fake)
    return calls


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_command_names_are_read_once_while_sys_path_is_unchanged(cache_home, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    calls = _fake_entry_points(monkeypatch, ["zeta", "alpha", "zeta"])
    assert plugins.command_names() == ["zeta", "alpha"]          # entry-point order, first of equal names
    assert plugins.command_names() == ["zeta", "alpha"] and calls[0] == 1
    assert [p.name for p in (cache_home / "timetag").iterdir()] == [plugins._cache_file().name]   # no part left

    _fake_entry_points(monkeypatch, ["zeta", "alpha", "beta"])   # a distribution installed into a sys.path folder
    (site / "beta-1.0.dist-info").mkdir()
    before = os.stat(site).st_mtime_ns
    os.utime(site, ns=(before, before + 10**9))                    # a filesystem with coarse mtimes sees it too
    assert plugins.command_names() == ["zeta", "alpha", "beta"]


def test_command_names_are_kept_for_each_sys_path(cache_home, monkeypatch):
    """`timetag` and `python -m timetag` see different sys.path: used in turn, neither reads the entry points
    again."""
    calls = _fake_entry_points(monkeypatch, ["alpha"])
    first, second = [*sys.path, "/no/such/folder/a"], [*sys.path, Path("/no/such/folder/b")]
    for path in (first, second, first, second):
        monkeypatch.setattr(sys, "path", path)
        assert plugins.command_names() == ["alpha"]
    assert calls[0] == 2


@pytest.mark.parametrize("content", ["{not json", json.dumps([{"sys_path": 3, "names": ["x"]}]),
                                     json.dumps([{"sys_path": [], "names": [7]}]), json.dumps({"a": 1})])
def test_a_cache_file_not_as_written_is_read_anew_and_replaced(cache_home, content, monkeypatch):
    calls = _fake_entry_points(monkeypatch, ["alpha"])
    path = plugins._cache_file()
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert plugins.command_names() == ["alpha"] and calls[0] == 1
    assert plugins.command_names() == ["alpha"] and calls[0] == 1


def test_a_cache_folder_that_cannot_be_written_is_no_cache(cache_home, monkeypatch):
    cache_home.write_text("a file where the cache folder would be")
    calls = _fake_entry_points(monkeypatch, ["alpha"])
    assert plugins.command_names() == ["alpha"]
    assert plugins.command_names() == ["alpha"] and calls[0] == 2
    assert cache_home.read_text() == "a file where the cache folder would be"


def test_command_names_are_the_installed_plugins(cache_home):
    assert plugins.command_names() == list(plugins.command_plugins())
    assert "calibrate" in plugins.command_names()
