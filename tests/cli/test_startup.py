"""Start-up of the command line: `timetag --help` imports no command module and none of the heavy libraries, and
the command list it shows (timetag.cli.SUMMARIES) says what each command's own help says; `timetag info --help`
imports its command module only; `timetag CMD --help` of every command imports none of the heavy libraries.

What is imported is checked, not how long it takes (speed: benchmarks/bench_startup.py).  Some of it depends on
typer (pinned in pyproject.toml): what its help renderer imports and how it uses the classes timetag.cli stands in
for, and when it builds a parameter's pydantic converter; the tests below fail when that changes."""
from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

HEAVY = ("numpy", "h5py", "numba", "scipy", "matplotlib", "timetag.engine", "timetag.formats", "timetag.commands.")
# what typer would import for a --help, for features the help does not use (see timetag.cli._import_rich_help and
# _HelpMixin.get_help_option), and the plugin scan (timetag.plugins.command_names)
NEEDLESS = ("pydantic", "markdown_it", "pygments", "rich.markdown", "rich.traceback", "importlib.metadata")

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


def _probe(argv: list[str], home: Path | None = None) -> tuple[int, set[str], str]:
    """Exit code, imported modules and standard output of `timetag ARGV` in a fresh process; with ``home``: its
    folder 'cache' as the user's cache folder, and its folder 'cwd' as the working folder (on sys.path, and so in
    the key of the plugin cache: not the cache folder's parent, whose mtime the first write changes)."""
    env = cwd = None
    if home is not None:
        env, cwd = {**os.environ, "XDG_CACHE_HOME": str(home / "cache")}, home / "cwd"
        cwd.mkdir(exist_ok=True)
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=120,
                         env=env, cwd=cwd)
    report = json.loads(res.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"]), res.stdout


def _modules_after(argv: list[str], home: Path | None = None) -> tuple[int, set[str]]:
    code, modules, _ = _probe(argv, home)
    return code, modules


def _heavy(modules: set[str], heavy=HEAVY) -> list[str]:
    """Modules of ``heavy``: a name and its submodules; a name ending in '.' (a package): its submodules only."""
    return sorted(m for m in modules
                  if any(m.startswith(h) if h.endswith(".") else (m == h or m.startswith(h + ".")) for h in heavy))


def test_help_imports_no_heavy_module(tmp_path):
    code, first = _modules_after(["--help"], tmp_path)
    assert code in (0, None)
    assert "timetag.cli" in first               # the probe ran the real command line
    assert "importlib.metadata" in first        # the first --help with an empty cache reads the entry points
    code, modules = _modules_after(["--help"], tmp_path)
    assert code in (0, None)
    assert _heavy(first) == _heavy(modules) == []
    assert _heavy(modules, NEEDLESS) == []


def test_info_help_imports_its_command_only(tmp_path):
    code, modules = _modules_after(["info", "--help"], tmp_path)
    assert code in (0, None)
    assert "timetag.commands.info" in modules
    assert _heavy(modules, [h for h in HEAVY if h != "timetag.commands."]) == []
    assert _heavy(modules, NEEDLESS) == []
    assert sorted(m for m in modules if m.startswith("timetag.commands.")) == ["timetag.commands.info",
                                                                               "timetag.commands.options"]


# what finding a plugin's command reads (timetag.cli._load): the installed entry points
PLUGIN_LOOKUP = ("importlib.metadata",)
# what a command needs for its outputs, not for its help (~25 ms, mostly filelock)
OUTPUTS = ("timetag.custody", "filelock")


def _listed_commands() -> dict[str, str]:
    """Every command `timetag --help` lists -> the module that makes it (a plugin's: its entry point's module)."""
    from timetag import cli

    root = typer.main.get_command(cli.app)
    names = root.list_commands(typer.Context(root, info_name="timetag"))
    plugins = cli._plugins()
    return {n: f"timetag.commands.{n}" if n in cli.COMMANDS and cli._own(n) else plugins[n].module for n in names}


def test_every_commands_help_imports_no_heavy_module(tmp_path):
    """`timetag CMD --help`, a fresh process per command `timetag --help` lists: the module that makes the command
    and none of the heavy libraries (what a signature shows comes from numpy-free modules, timetag.constants; what
    the command needs is imported when it runs), nor another command's module."""
    commands = _listed_commands()
    assert {"info", "process", "calibrate"} <= set(commands)
    heavy = [h for h in HEAVY if h != "timetag.commands."] + list(OUTPUTS)
    wrong = {}
    for name, module in commands.items():
        code, modules, out = _probe([name, "--help"], tmp_path)
        plugin = not module.startswith("timetag.commands.")
        needless = [n for n in NEEDLESS if not (plugin and n in PLUGIN_LOOKUP)]
        others = sorted(m for m in modules if m.startswith("timetag.commands.")
                        and m not in (module, "timetag.commands.options"))
        found = _heavy(modules, heavy) + _heavy(modules, needless) + others
        if code not in (0, None) or f"timetag {name}" not in out or module not in modules or found:
            wrong[name] = {"code": code, "loaded": module in modules, "imported": found}
    assert wrong == {}


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


# --- the stand-ins of timetag.cli._import_rich_help ---------------------------------------------------------------

HELP_PROBE = """
import json, sys
import typer
import typer.testing
for module in json.loads(sys.argv[1]):   # the real modules first: timetag.cli then has nothing to stand in for
    __import__(module)
from timetag import cli
root = typer.main.get_command(cli.app)
names = root.list_commands(typer.Context(root, info_name="timetag"))
runner = typer.testing.CliRunner()
helps = {}
for argv in [[], *([n] for n in names)]:
    res = runner.invoke(cli.app, [*argv, "--help"], color=True)
    helps[" ".join(argv)] = [res.exit_code, res.output]
import typer.rich_utils as ru
stood_in = {name: isinstance(getattr(ru, name), cli._Deferred) for name in cli._UNUSED_BY_HELP.values()}
print(json.dumps({"helps": helps, "stood_in": stood_in}))
"""


def _helps(first: list[str]) -> dict:
    env = {**os.environ, "TERMINAL_WIDTH": "100", "FORCE_COLOR": "1"}   # the same width and styles in both runs
    res = subprocess.run([sys.executable, "-c", HELP_PROBE, json.dumps(first)], capture_output=True, text=True,
                         timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_every_help_is_the_same_with_the_stand_ins():
    """Each command's help, styles included, with typer's renderer imported with the stand-ins and without."""
    from timetag import cli

    stood, real = _helps([]), _helps(list(cli._UNUSED_BY_HELP))
    assert stood["stood_in"] == {name: True for name in cli._UNUSED_BY_HELP.values()}
    assert real["stood_in"] == {name: False for name in cli._UNUSED_BY_HELP.values()}
    assert {"", "info", "process", "calibrate"} <= set(stood["helps"]) == set(real["helps"])
    for argv, (code, text) in stood["helps"].items():
        assert code == 0 and "Usage:" in text and "\x1b[" in text, argv
        assert real["helps"][argv] == [code, text], f"`timetag {argv} --help` differs with the stand-ins"


WORK_PROBE = '''
import sys
import typer, typer.testing
from typer.models import DeveloperExceptionConfig
from timetag import cli
cli._import_rich_help()
import typer.rich_utils as ru
assert isinstance(ru.Markdown, cli._Deferred) and isinstance(ru.Traceback, cli._Deferred)
assert "rich.markdown" not in sys.modules and "rich.traceback" not in sys.modules and "markdown_it" not in sys.modules

app = typer.Typer(rich_markup_mode="markdown")
@app.command()
def hello():
    """Say **hello** in `markdown`."""
res = typer.testing.CliRunner().invoke(app, ["--help"])
assert res.exit_code == 0 and "Say hello in markdown." in res.output and "**" not in res.output, res.output

try:
    1 / 0
except ZeroDivisionError as exc:
    tb = ru.get_traceback(exc, DeveloperExceptionConfig(), [])
import rich.markdown, rich.traceback
assert type(tb) is rich.traceback.Traceback and tb.trace.stacks[0].exc_type == "ZeroDivisionError"
assert not isinstance(rich.markdown.Markdown, cli._Deferred)
assert not isinstance(rich.traceback.Traceback, cli._Deferred)
print("ok")
'''


def test_the_stand_ins_do_what_the_real_classes_do():
    """Markdown help and rich tracebacks still work in a process whose typer renderer got the stand-ins, and the
    real modules are what later imports get."""
    res = subprocess.run([sys.executable, "-c", WORK_PROBE], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_typer_uses_the_stood_in_classes_only_as_the_stand_ins_allow():
    """typer.rich_utils takes each class of timetag.cli._UNUSED_BY_HELP from its module, and only calls it, reads
    an attribute of it or names it in an annotation (a stand-in cannot be an isinstance() target, a base class or
    a value handed on).  A typer that does otherwise (or no longer imports one: then drop it) fails here."""
    import typer.rich_utils

    from timetag import cli

    tree = ast.parse(Path(typer.rich_utils.__file__).read_text())
    imported = {(node.module, a.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for a in node.names}
    assert set(cli._UNUSED_BY_HELP.items()) <= imported
    allowed = set()
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            annotations = [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg,
                                                  args.kwarg) if a is not None] + [node.returns]
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        elif isinstance(node, ast.Call):
            allowed.add(id(node.func))
        elif isinstance(node, ast.Attribute):
            allowed.add(id(node.value))
        allowed |= {id(n) for a in annotations if a is not None for n in ast.walk(a)}
    uses = [node for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id in cli._UNUSED_BY_HELP.values()]
    assert uses
    assert [f"line {n.lineno}: {n.id}" for n in uses if id(n) not in allowed] == []
