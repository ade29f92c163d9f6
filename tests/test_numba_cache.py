"""timetag._numba_cache: the cache folder, and on_first_compile -- the hook of the command line's one-line notice
while numba compiles: called once when a cached kernel is compiled (a cold cache), never when every kernel
loads from the cache, and without importing numba itself."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

KERNELS = textwrap.dedent("""
    from numba import njit

    @njit(cache=True)
    def add(x):
        return x + 1

    @njit(cache=True)
    def twice(x):
        return 2 * x

    @njit
    def uncached(x):
        return x - 1
""")

PROBE = textwrap.dedent("""
    import sys
    {first}
    from timetag._numba_cache import on_first_compile
    seen = []
    on_first_compile(seen.append)
    print("numba imported by registering:", "numba" in sys.modules)
    sys.path.insert(0, sys.argv[1])
    import kern
    for name in sys.argv[2:]:
        getattr(kern, name)(3)
    print("notified:", seen)
""")


def _probe(tmp_path, *calls, first=""):
    (tmp_path / "kern.py").write_text(KERNELS)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", PROBE.format(first=first), str(tmp_path), *calls], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_notified_once_on_a_cold_cache_and_never_on_a_warm_one(tmp_path):
    assert _probe(tmp_path, "add", "twice") == ["numba imported by registering: False", "notified: ['kern.add']"]
    assert any((tmp_path / "cache").rglob("kern.add-*.nbi"))  # numba's own cache index is there now
    assert _probe(tmp_path, "add", "twice")[1] == "notified: []"


def test_a_kernel_without_cache_is_no_news(tmp_path):
    # it compiles in every run: a notice would show every time
    assert _probe(tmp_path, "uncached")[1] == "notified: []"
    assert _probe(tmp_path, "uncached", "add")[1] == "notified: ['kern.add']"


def test_registered_after_numba_was_imported(tmp_path):
    out = _probe(tmp_path, "twice", first="import numba")
    assert out == ["numba imported by registering: True", "notified: ['kern.twice']"]


NOTICE = textwrap.dedent("""
    import sys
    from timetag.commands.progress import announce_compiles
    announce_compiles()
    sys.path.insert(0, sys.argv[1])
    import kern
    kern.add(1), kern.twice(2)
""")


def test_the_command_line_notice_is_one_line_on_stderr_when_cold(tmp_path):
    (tmp_path / "kern.py").write_text(KERNELS)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="80")

    def run():
        return subprocess.run([sys.executable, "-c", NOTICE, str(tmp_path)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    cold, warm = run(), run()
    assert cold.returncode == warm.returncode == 0, cold.stderr + warm.stderr
    assert cold.stdout == "" and cold.stderr.count("\n") == 1 and cold.stderr.startswith("compiling numba kernels")
    assert str(tmp_path / "cache") in cold.stderr
    assert warm.stderr == ""


CLI_WIRED = textwrap.dedent("""
    import sys
    from timetag.cli import main
    try:
        main(["--version"])
    except SystemExit:
        pass
    sys.path.insert(0, sys.argv[1])
    import kern
    kern.add(1)
""")


def test_the_command_line_registers_the_notice(tmp_path):
    # timetag.cli.main hooks the notice for every command (a command's first kernel may compile anywhere)
    (tmp_path / "kern.py").write_text(KERNELS)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="80")
    out = subprocess.run([sys.executable, "-c", CLI_WIRED, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("compiling numba kernels") and out.stderr.count("\n") == 1, out.stderr
