"""The layering of timetag, checked on its import graph.

The graph is read from the source with ``ast`` (nothing is imported): every ``import`` / ``from ... import`` of
every module of ``timetag`` and ``calibrate``, at module level and inside functions (a function-level import
still makes its module depend on the target; it only hides the dependency from import-time cycle errors), plus
``importlib.import_module`` calls with a literal (or literal-prefixed) name.  Imports under
``if TYPE_CHECKING:`` are not run and are skipped.

Rules:

* no import cycle between timetag modules at module level, nor between the units of :data:`LAYERS` (a subpackage
  or top-level module) at module level;
* no cycle between units through function-level imports either (a lazy import that dodges a cycle is a cycle);
* a unit imports only units of its own layer or lower ones (:data:`LAYERS`, lowest first);
* ``calibrate`` may import ``timetag``; ``timetag`` never imports ``calibrate`` (``timetag.calibrate`` is an entry
  point lookup, which is no import);
* only ``timetag.commands`` / ``timetag.cli`` import ``timetag.commands``;
* only the plot modules (:data:`PLOT_MODULES`) import matplotlib, and no module picks its backend
  (``matplotlib.use``): a library that does breaks the notebooks and GUIs it is used from;
* only the command line and the terminal views (:data:`PRESENTATION_UNITS`) import rich.

Known violations, in files being rewritten, are listed in :data:`EXPECTED_VIOLATIONS` so that the test passes
while the rewrites land; any other violation fails it, and so does an entry that no longer occurs (remove it).
"""
from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("timetag", "calibrate")

# Lowest layer first.  Each entry names a unit: a top-level module or a subpackage of timetag (with everything
# below it).  A unit may import units of its own layer and of lower layers, never of a higher one.  The package
# module `timetag` itself sits at the bottom: every `import timetag.x` runs it first, so its eager imports must
# be foundation only (the public names it offers are resolved lazily, by name, and are not imports).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("timetag", "timetag.constants", "timetag.errors", "timetag.chunk", "timetag.records",
                    "timetag._version", "timetag._numba_cache", "timetag._cext", "timetag.custody",
                    "timetag.provenance", "timetag.plugins", "timetag.lost", "timetag.interrupts", "timetag.cachefile",
                    "timetag._lazy", "timetag.checksums")),
    ("formats", ("timetag.formats", "timetag.setupfile", "timetag.channels")),
    ("engine", ("timetag.engine",)),
    ("stream", ("timetag.stream", "timetag.process", "timetag.roundsfile", "timetag.roundsoutput",
                # the quiet-gap planner and the merge rules: the threads of `process` use them as Dask does
                "timetag.distributed.partition", "timetag.distributed.merge")),
    ("analysis", ("timetag.estimators", "timetag.simulator", "timetag.distill")),
    ("runtime", ("timetag.live", "timetag.distributed", "timetag.demo", "timetag.dashboard")),
    ("interface", ("timetag.commands", "timetag.cli", "timetag.__main__")),
]
COMMAND_UNITS = ("timetag.commands", "timetag.cli", "timetag.__main__")  # the only importers of timetag.commands
PLOT_MODULES = {"timetag.estimators.plots", "timetag.distill.plots", "calibrate.plots"}          # the only importers of matplotlib
PRESENTATION_UNITS = COMMAND_UNITS + ("timetag.live.view", "calibrate.cli")  # the only importers of rich

# Violations present while other files are being rewritten: "<rule>: <importer> -> <imported>".  Remove an
# entry when its file is fixed (the test then says so); never add one for new code.
EXPECTED_VIOLATIONS: set[str] = set()


# --- the graph --------------------------------------------------------------------------------------------------

def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


class _Imports(ast.NodeVisitor):
    """(target, lineno, at_module_level) for every import of one module."""

    def __init__(self, name: str, is_package: bool, known: set[str]):
        self.package = name if is_package else name.rpartition(".")[0]
        self.known = known
        self.depth = 0
        self.found: list[tuple[str, int, bool]] = []

    def _add(self, target: str, node) -> None:
        self.found.append((target, node.lineno, self.depth == 0))

    def _absolute(self, module: str | None, level: int) -> str:
        if not level:
            return module or ""
        base = self.package.split(".")
        base = base[:len(base) - (level - 1)]
        return ".".join(base + ([module] if module else []))

    def visit_FunctionDef(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node):
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else None
        if name == "TYPE_CHECKING":  # never run: annotations only
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node):
        base = self._absolute(node.module, node.level)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.known else base, node)

    def visit_Call(self, node):
        func = node.func
        fname = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if fname == "use" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id in ("matplotlib", "mpl"):
            self._add("matplotlib.use()", node)  # choosing the backend: not an import, reported as one
        if fname == "import_module" and node.args:
            arg = node.args[0]
            literal = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
            if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                literal = arg.values[0].value.rstrip(".")  # f"timetag.commands.{name}": somewhere in that package
            if literal and not literal.startswith("."):
                self._add(literal, node)
        self.generic_visit(node)


@functools.lru_cache(maxsize=None)
def graph() -> dict[str, list[tuple[str, int, bool]]]:
    """module -> [(imported module, line, at module level)], imports of timetag/calibrate/matplotlib only."""
    mods = _modules()
    known = set(mods)
    out = {}
    for name, path in mods.items():
        v = _Imports(name, _is_package(path), known)
        v.visit(ast.parse(path.read_text(), filename=str(path)))
        out[name] = [(t, line, top) for t, line, top in v.found
                     if t.split(".")[0] in PACKAGES + ("matplotlib", "rich") and t != name]
    return out


def unit_of(module: str) -> str | None:
    best = None
    for _, units in LAYERS:
        for u in units:
            if (module == u or module.startswith(u + ".")) and (best is None or len(u) > len(best)):
                best = u
    return best


def layer_of(module: str) -> int | None:
    u = unit_of(module)
    return None if u is None else next(i for i, (_, units) in enumerate(LAYERS) if u in units)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return comps


@functools.lru_cache(maxsize=None)
def violations() -> dict[str, list[str]]:
    """violation -> where ("file:line") it is."""
    g = graph()
    mods = _modules()
    found: dict[str, list[str]] = defaultdict(list)

    def where(src, line):
        return f"{mods[src].relative_to(ROOT)}:{line}"

    module_edges: dict[str, set[str]] = defaultdict(set)
    unit_edges_top: dict[str, set[str]] = defaultdict(set)
    unit_edges_all: dict[str, set[str]] = defaultdict(set)
    for src, imports in g.items():
        for dst, line, top in imports:
            root = dst.split(".")[0]
            if dst == "matplotlib.use()":
                found[f"backend: {src}"].append(where(src, line))
                continue
            if root == "matplotlib":
                if src not in PLOT_MODULES:
                    found[f"matplotlib: {src}"].append(where(src, line))
                continue
            if root == "rich":
                if not any(src == u or src.startswith(u + ".") for u in PRESENTATION_UNITS):
                    found[f"rich: {src}"].append(where(src, line))
                continue
            if not src.startswith("timetag"):
                if dst.startswith("timetag.commands"):
                    found[f"commands: {src} -> {dst}"].append(where(src, line))
                continue
            if root == "calibrate":
                found[f"calibrate: {src} -> {dst}"].append(where(src, line))
                continue
            if dst.startswith("timetag.commands") and unit_of(src) not in COMMAND_UNITS:
                found[f"commands: {src} -> {dst}"].append(where(src, line))
            if top:
                module_edges[src].add(dst)
            us, ud = unit_of(src), unit_of(dst)
            if us is None:
                found[f"unplaced: {src}"].append(where(src, line))
                continue
            if ud is None:
                found[f"unplaced: {dst}"].append(where(src, line))
                continue
            if layer_of(dst) > layer_of(src):
                found[f"layer: {src} -> {dst}"].append(where(src, line))
            if us != ud:
                unit_edges_all[us].add(ud)
                if top:
                    unit_edges_top[us].add(ud)
    for comp in _cycles(module_edges):
        found["module cycle: " + ", ".join(comp)].append("module-level imports")
    for comp in _cycles(unit_edges_top):
        found["unit cycle: " + ", ".join(comp)].append("module-level imports")
    for comp in _cycles(unit_edges_all):
        if comp not in _cycles(unit_edges_top):
            found["hidden cycle: " + ", ".join(comp)].append("through function-level imports")
    return dict(found)


# --- the tests --------------------------------------------------------------------------------------------------

def test_every_timetag_module_has_a_layer():
    unplaced = sorted(m for m in _modules() if m.startswith("timetag") and unit_of(m) is None)
    assert not unplaced, f"add these to LAYERS in {Path(__file__).name}: {unplaced}"


def test_no_new_architecture_violation():
    new = {v: w for v, w in violations().items() if v not in EXPECTED_VIOLATIONS}
    assert not new, "new import-graph violations:\n" + "\n".join(f"  {v}   ({', '.join(w)})"
                                                               for v, w in sorted(new.items()))


def test_expected_violations_still_occur():
    fixed = sorted(EXPECTED_VIOLATIONS - set(violations()))
    assert not fixed, ("fixed, remove from EXPECTED_VIOLATIONS in " + Path(__file__).name + ":\n"
                       + "\n".join(f"  {v!r}," for v in fixed))


# the checker itself, on small cases

def _scan(src: str, name: str = "timetag.x.y", package: bool = False, known=()) -> list[tuple[str, int, bool]]:
    v = _Imports(name, package, set(known))
    v.visit(ast.parse(src))
    return v.found


def test_checker_sees_lazy_relative_and_dynamic_imports():
    src = ("from . import a\n"
           "from ..b import c\n"
           "import timetag.d\n"
           "def f():\n"
           "    from ...e import g\n"
           "    importlib.import_module(f'timetag.commands.{n}')\n"
           "    matplotlib.use('Agg')\n"
           "if TYPE_CHECKING:\n"
           "    import timetag.never\n")
    found = _scan(src, known={"timetag.x.a"})
    assert found == [("timetag.x.a", 1, True), ("timetag.b", 2, True), ("timetag.d", 3, True),
                     ("e", 5, False), ("timetag.commands", 6, False), ("matplotlib.use()", 7, False)]
    assert _scan("from .join import sift", "timetag.estimators", package=True) == [("timetag.estimators.join", 1,
                                                                                    True)]


def test_checker_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
