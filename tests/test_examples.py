"""examples/: the scripts run as a user runs them (a subprocess, from the project's folder) and say what they
show."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]


def _plot_functions() -> list[str]:
    """Every public plot function of timetag and calibrate: the names in their ``__all__`` that take ``ax`` or
    ``axes``."""
    import inspect

    from calibrate import plots as cal_plots
    from timetag.estimators import plots as est_plots

    names = [n for mod in (est_plots, cal_plots) for n in mod.__all__
             if callable(obj := getattr(mod, n)) and {"ax", "axes"} & set(inspect.signature(obj).parameters)]
    assert len(names) >= 7  # correlations, finite key, scan; arrival, FOM, counts, clock
    return names


@pytest.mark.slow
def test_notebook_plots_calls_every_plot_function_and_keeps_the_backend(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook_plots.py"), str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "FAILED" not in out
    backend = re.match(r"backend: (\S+)", out).group(1)
    ok = re.findall(r"^ok (\w+): drew on \d+ notebook axes and on a figure of its own; backend still (\S+)$", out,
                    flags=re.M)
    assert sorted(name for name, _ in ok) == sorted(_plot_functions())  # a new plot function must be shown here
    assert {b for _, b in ok} == {backend}
    assert out.rstrip().endswith(f"pyplot still plots after every call; backend unchanged: {backend}")
    # every figure rendered, on the notebook's axes and on its own
    for name in _plot_functions():
        for png in (f"{name}-on-ax.png", f"{name}.png"):
            assert (tmp_path / "figures" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert not [line for line in proc.stderr.splitlines() if "Warning" in line], proc.stderr
