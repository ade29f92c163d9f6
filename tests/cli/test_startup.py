"""Start-up of the command line: `timetag --help` imports no command module and none of the heavy libraries, and
the command list it shows (timetag.cli.SUMMARIES) says what each command's own help says.

What is imported is checked, not how long it takes (speed: benchmarks/bench_startup.py)."""
from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest
import typer

HEAVY = ("numpy", "h5py", "numba", "scipy", "matplotlib", "timetag.engine", "timetag.formats", "timetag.commands.")

PROBE = """
import json, sys
sys.argv = ["timetag", *json.loads(sys.argv[1])]
from timetag.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _modules_after(argv: list[str]) -> tuple[int, set[str]]:
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=120)
    report = json.loads(res.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def _heavy(modules: set[str]) -> list[str]:
    """Modules of HEAVY: a name and its submodules; a name ending in '.' (a package): its submodules only."""
    return sorted(m for m in modules
                  if any(m.startswith(h) if h.endswith(".") else (m == h or m.startswith(h + ".")) for h in HEAVY))


def test_help_imports_no_heavy_module():
    code, modules = _modules_after(["--help"])
    assert code in (0, None)
    assert "timetag.cli" in modules             # the probe ran the real command line
    assert _heavy(modules) == []


@pytest.mark.parametrize("argv", [["--version"], ["recover", "--help"], ["simulate", "--help"],
                                  ["demo", "--help"], ["info", "--help"], ["convert", "--help"]])
def test_light_commands_do_not_import_numpy(argv):
    code, modules = _modules_after(argv)
    assert code in (0, None)
    assert "numpy" not in modules


def test_running_a_command_loads_it():
    """The lazy registration still finds the command (and only it) when it runs or shows its own help."""
    code, modules = _modules_after(["recover", "--help"])
    assert code in (0, None)
    assert "timetag.commands.recover" in modules
    assert "timetag.commands.process" not in modules


def test_unknown_command_is_a_usage_error():
    code, _ = _modules_after(["no-such-command"])
    assert code == 2


def test_summaries_match_each_commands_help():
    """The list `timetag --help` shows without importing the commands is the first paragraph of each command's
    help (typer's rule for the list), for every command there is."""
    from timetag import cli

    root = typer.main.get_command(cli.app)
    ctx = typer.Context(root, info_name="timetag")
    names = root.list_commands(ctx)
    assert [n for n in cli.COMMANDS if n in names] == names[:len([n for n in cli.COMMANDS if n in names])]
    for name in names:
        command = cli._load(name)
        assert command is not None and command.name == name
        first = inspect.cleandoc(command.short_help or command.help or "").split("\n\n")[0].strip()
        if name in cli.SUMMARIES:
            assert cli.SUMMARIES[name] == first, f"timetag.cli.SUMMARIES[{name!r}] differs from the command's help"
    assert set(cli.SUMMARIES) == set(cli.COMMANDS)
