"""Start-up of the command line: `timetag --help` imports no command module and none of the heavy libraries, and
the command list it shows (timetag.cli.SUMMARIES) says what each command's own help says; `timetag info --help`
imports its command module only (and the converters of its values); `timetag CMD --help` of every command imports
none of the heavy libraries.  A `timetag process` run on one thread imports no pydantic (its values are converted
by timetag.commands.coerce, which agrees with typer's converters) and none of what it does not use, keeps numpy's
OpenBLAS to one thread, and leaves its objects to the interpreter at exit without a last scan.

What is imported is checked, not how long it takes (speed: benchmarks/bench_startup.py).  Some of it depends on
typer (pinned in pyproject.toml): what its help renderer imports and how it uses the classes timetag.cli stands in
for, and when and how it builds a parameter's pydantic converter; the tests below fail when that changes."""
from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest
import typer
from hypothesis import given, settings, strategies as st

HEAVY = ("numpy", "h5py", "numba", "scipy", "matplotlib", "timetag.engine", "timetag.formats", "timetag.commands.")
# modules of timetag.commands that are the command line's own, not a command's: the collector around a command
LINE = ("timetag.commands.startup",)
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
    return sorted(m for m in modules if m not in LINE
                  and any(m.startswith(h) if h.endswith(".") else (m == h or m.startswith(h + ".")) for h in heavy))


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
    assert sorted(m for m in modules if m.startswith("timetag.commands.")) == [
        "timetag.commands.coerce", "timetag.commands.info", "timetag.commands.options", "timetag.commands.startup"]


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
                        and m not in (module, "timetag.commands.options", "timetag.commands.coerce", *LINE))
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


# --- a run: `timetag process` on a small file ----------------------------------------------------------------------

# what typer would import to convert the values of a command that runs (timetag.commands.coerce), and what a
# single-thread run of `process` has no use for
NOT_FOR_A_RUN = ("pydantic", "pydantic_core", "typer._adapters", "dask", "distributed", "timetag.distributed.run",
                 "importlib.metadata", "markdown_it", "numba", "scipy", "matplotlib", "rich._emoji_codes")

RUN_PROBE = """
import atexit, gc, json, os, sys
sys.argv = ["timetag", *json.loads(sys.argv[1])]
seen = {}

class Watch:    # what the environment says when numpy is first imported
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and "numpy" not in seen:
            seen["numpy"] = os.environ.get("OPENBLAS_NUM_THREADS")
        return None

sys.meta_path.insert(0, Watch())
# registered before main(): runs after what main() registers (atexit is last in, first out)
atexit.register(lambda: print(json.dumps({"frozen_at_exit": gc.get_freeze_count()}), file=sys.stderr))
from timetag.cli import main
seen["numpy_before_main"] = "numpy" in sys.modules
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules), "seen": seen, "gc_enabled": gc.isenabled()}),
      file=sys.stderr)
"""


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    simulator = pytest.importorskip("timetag.simulator")
    out = tmp_path_factory.mktemp("small_run")
    return simulator.simulate(simulator.load_preset("lmu2022").with_overrides(speedup=20000), 30, 4, out / "sim")


def _run_probe(argv: list[str], env: dict | None = None) -> tuple[dict, dict]:
    res = subprocess.run([sys.executable, "-c", RUN_PROBE, json.dumps(argv)], capture_output=True, text=True,
                         timeout=300, env=env)
    lines = res.stderr.strip().splitlines()
    return json.loads(lines[-2]), json.loads(lines[-1])


def _process_argv(sim, out: Path) -> list[str]:
    return ["process", str(sim.alice), "--setup", str(sim.setup), "--lab", "alice", "--out", str(out),
            "--threads", "1", "--chunk-size", "5000"]


def test_a_process_run_imports_no_converter_library_and_nothing_it_does_not_use(small_run, tmp_path):
    """`timetag process` on one thread converts its values without pydantic (timetag.commands.coerce) and
    imports none of what a single-thread run has no use for."""
    report, at_exit = _run_probe(_process_argv(small_run, tmp_path / "alice.h5"))
    assert report["code"] in (0, None)
    modules = set(report["modules"])
    assert "timetag.process" in modules and "h5py" in modules   # the probe really ran the engine
    assert _heavy(modules, NOT_FOR_A_RUN) == []
    assert report["gc_enabled"]   # the collector is back after the command's start-up (commands.startup)
    assert at_exit["frozen_at_exit"] > 0   # the interpreter's last collections skip what the run left alive


def test_the_bar_and_the_summary_look_as_they_did_with_markup_and_emoji(small_run, tmp_path):
    """The progress bar's text columns and the summary table take their text as it is (no emoji table to load):
    with colour forced, they render as the markup columns and an emoji-enabled console did, for a real summary."""
    import io

    from rich.console import Console
    from rich.progress import Progress, TextColumn

    from timetag import process_files
    from timetag.commands import process as process_command
    from timetag.commands import progress

    def shown(renderable, emoji: bool = True) -> str:
        console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=100, emoji=emoji)
        console.print(renderable)
        return console.file.getvalue()

    bar = Progress()
    bar.add_task("alice", total=None, rounds=3)
    task = bar.tasks[0]
    for old, new in [(TextColumn("[bold]{task.description}"), progress._text("{task.description}", "bold")),
                     (TextColumn("{task.fields[rounds]} rounds"), progress.RecordsBar("alice")._columns()[0])]:
        assert shown(old.render(task)) == shown(new.render(task))
    assert "\x1b[1malice" in shown(progress._text("{task.description}", "bold").render(task))
    table = process_command.summary_table(process_files([small_run.alice], small_run.setup, "alice",
                                                        tmp_path / "alice.h5", chunk_size=5000, threads=1))
    assert shown(table, emoji=True) == shown(table, emoji=False) and "heralds psi+" in shown(table)


def test_the_command_line_keeps_openblas_to_one_thread_unless_told(small_run, tmp_path):
    """numpy's OpenBLAS would start a thread per core that spins beside the engine: the command line says one
    thread before anything imports numpy; a user's own OPENBLAS_NUM_THREADS wins; the library leaves it alone."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    report, _ = _run_probe(_process_argv(small_run, tmp_path / "a.h5"), env)
    assert report["code"] in (0, None)
    assert report["seen"] == {"numpy_before_main": False, "numpy": "1"}
    report, _ = _run_probe(_process_argv(small_run, tmp_path / "b.h5"), {**env, "OPENBLAS_NUM_THREADS": "3"})
    assert report["code"] in (0, None) and report["seen"]["numpy"] == "3"
    library = subprocess.run([sys.executable, "-c", "import os, timetag, timetag.cli, numpy; "
                              "print(os.environ.get('OPENBLAS_NUM_THREADS'))"],
                             capture_output=True, text=True, timeout=120, env=env)
    assert library.stdout.strip() == "None", library.stderr


def test_the_process_run_writes_what_it_wrote_before(small_run, tmp_path):
    """The same rounds, summary and messages through the command line as through the library."""
    from timetag import cli, process_files, read_rounds

    lib = process_files([small_run.alice], small_run.setup, "alice", tmp_path / "lib.h5", chunk_size=5000,
                        threads=1)
    with pytest.raises(SystemExit) as exc:
        cli.main([*_process_argv(small_run, tmp_path / "cli.h5"), "--quiet"])
    assert exc.value.code in (0, None)
    a, b = read_rounds(tmp_path / "lib.h5"), read_rounds(tmp_path / "cli.h5")
    assert a.rounds.tolist() == b.rounds.tolist() and len(a.rounds) > 0 and lib["rounds"] == len(a.rounds)
    timing = ("elapsed_s", "tags_per_s", "out")
    assert {k: v for k, v in b.summary.items() if k not in timing} == \
        {k: v for k, v in a.summary.items() if k not in timing}


def test_the_collector_is_back_after_a_commands_imports_however_they_end(monkeypatch):
    """In-process (a program that runs a command with an argument list): the collector as it was, nothing frozen;
    in the command line's own process: what the imports made is frozen."""
    import gc

    from timetag.commands import startup

    monkeypatch.setitem(startup._state, "program", False)
    frozen = gc.get_freeze_count()
    assert gc.isenabled()
    with startup.imports():
        assert not gc.isenabled()
    assert gc.isenabled() and gc.get_freeze_count() == frozen
    with pytest.raises(ImportError):
        with startup.imports():
            import timetag.no_such_module  # noqa: F401
    assert gc.isenabled()
    gc.disable()
    try:
        with startup.imports():
            pass
        assert not gc.isenabled()   # a collector someone else turned off stays off
    finally:
        gc.enable()
    assert gc.get_freeze_count() == frozen


FREEZE_PROBE = """
import gc, json
from timetag.commands import startup
startup.begin(program=True)
before = gc.get_freeze_count()
with startup.imports():
    import h5py
print(json.dumps({"before": before, "after": gc.get_freeze_count(), "enabled": gc.isenabled()}))
"""


def test_the_command_lines_own_process_freezes_what_its_imports_made():
    res = subprocess.run([sys.executable, "-c", FREEZE_PROBE], capture_output=True, text=True, timeout=120)
    report = json.loads(res.stdout)
    assert report["before"] == 0 and report["after"] > 10000 and report["enabled"], report


# --- timetag.commands.coerce against typer's own converters ----------------------------------------------------------

def _converter_command():
    """A command with a parameter of every kind timetag's commands have (and path checks they do not use)."""
    app = typer.Typer()

    @app.command()
    def kinds(files: List[Path] = typer.Argument(...), path: Optional[Path] = typer.Option(None),
              name: str = typer.Option("x"), names: Optional[List[str]] = typer.Option(None),
              count: int = typer.Option(5, min=1), any_int: Optional[int] = typer.Option(None),
              low: int = typer.Option(0, min=0, max=9), fraction: float = typer.Option(0.5, min=0.0, max=1.0),
              level: float = typer.Option(1.0), existing: Optional[Path] = typer.Option(None, exists=True,
                                                                                         dir_okay=False)):
        pass

    return typer.main.get_command(app)


def _both(param, value, ctx):
    """(plain converter's outcome, typer's outcome): the value, or the error message."""
    from typer._coercion import build_runtime_param

    from timetag.commands import coerce

    out = []
    for convert in (coerce._PlainParam(param.type_descriptor), build_runtime_param(param.type_descriptor)):
        try:
            out.append(("value", convert.coerce(value, param=param, ctx=ctx)))
        except typer.BadParameter as exc:
            out.append(("error", exc.format_message()))
    return out


NUMBERS = st.from_regex(r"[-+ ]?[0-9]{0,21}(\.[0-9]{0,3})?([eE][-+]?[0-9]{1,4})?_?[0-9]?", fullmatch=True)


@settings(deadline=None)
@given(text=st.one_of(NUMBERS, st.text(max_size=12), st.sampled_from(["nan", "inf", "-0", "0", "1e999", ".5", "5."])))
def test_the_plain_converter_agrees_with_typers(text):
    """Every kind of parameter, for numbers spelt every way and any text: the same value or the same error."""
    command = _converter_command()
    ctx = typer.Context(command, info_name="kinds")
    for param in command.params:
        value = (text, "b") if param.multiple or param.nargs == -1 else text
        plain, typers = _both(param, value, ctx)
        assert repr(plain) == repr(typers), param.name   # repr: the type too, and nan equal to nan


def test_the_plain_converter_decides_the_usual_values_itself(tmp_path, monkeypatch):
    """Values a command line gives (and the defaults) are converted without typer's converter, or the plain one
    would save nothing; paths that exist, paths that do not, and the path checks give typer's answers."""
    from timetag.commands import coerce

    def no_typer(descriptor):
        raise AssertionError(f"typer's converter built for {descriptor.annotation}")

    command = _converter_command()
    ctx = typer.Context(command, info_name="kinds")
    params = {p.name: p for p in command.params}
    monkeypatch.setattr(coerce, "build_runtime_param", no_typer)
    usual = {"files": (("a.dump", str(tmp_path)), [Path("a.dump"), tmp_path]), "path": ("x/y.h5", Path("x/y.h5")),
             "name": ("alice", "alice"), "names": (("a", "b"), ["a", "b"]), "count": ("1000000", 1000000),
             "any_int": ("-3", -3), "low": (9, 9), "fraction": ("0.25", 0.25), "level": ("1e-3", 1e-3)}
    for name, (value, expected) in usual.items():
        got = coerce._PlainParam(params[name].type_descriptor).coerce(value, param=params[name], ctx=ctx)
        assert got == expected and type(got) is type(expected), name
    monkeypatch.undo()
    (tmp_path / "file").write_text("")
    for value in [str(tmp_path / "file"), str(tmp_path), str(tmp_path / "missing"), "\0"]:
        plain, typers = _both(params["existing"], value, ctx)
        assert plain == typers, value
    assert _both(params["existing"], str(tmp_path), ctx)[0][0] == "error"   # a folder: refused


def test_every_command_converts_its_values_without_pydantic():
    """Each parameter of each command (typer 0.2x) gets the plain converter, but for flags (typer skips them)."""
    from typer._coercion import RuntimeParam

    from timetag import cli
    from timetag.commands import coerce

    root = typer.main.get_command(cli.app)
    names = root.list_commands(typer.Context(root, info_name="timetag"))
    left = {}
    for name in names:
        command = cli._load(name)
        commands = command.commands.values() if hasattr(command, "commands") else [command]
        for c in commands:
            for p in c.get_params(typer.Context(c, info_name=c.name)):
                runtime = getattr(p, "_runtime_param", None)
                if getattr(p, "type_descriptor", None) is None or p.type_descriptor.annotation is bool:
                    continue
                if not isinstance(runtime, coerce._PlainParam):
                    left[f"{name} {p.name}"] = repr(p.type_descriptor.annotation)
                assert runtime is None or isinstance(runtime, RuntimeParam)
    assert left == {}
