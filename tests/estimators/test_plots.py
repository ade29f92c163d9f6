"""Figures are returned, not shown or saved, and drawing them never touches pyplot or the backend."""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[2]

DRAW = """
import sys
import matplotlib
matplotlib.use("svg")  # the caller's choice (a notebook's inline backend, a GUI): must survive the figures
import numpy as np
from timetag.estimators import estimate_from_counts
from timetag.estimators.model import sample_pairs
from timetag.estimators.counts import tally
from timetag.estimators.plots import correlations_figure, finite_key_figure, save_figure

res = estimate_from_counts(tally(*sample_pairs(3000, 0.9, np.random.default_rng(1))), samples=0)
figs = [correlations_figure(res), finite_key_figure(res)]
save_figure(figs[0], sys.argv[1])
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules, type(figs[0]).__name__, len(figs[1].axes))
"""


def test_figures_leave_the_backend_and_pyplot_alone(tmp_path):
    target = tmp_path / "c.png"
    proc = subprocess.run([sys.executable, "-c", DRAW, str(target)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["svg", "False", "Figure", "1"]
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the format comes from the name, not the backend


def test_write_plots_takes_an_estimate_or_its_json(tmp_path):
    from estimate_cases import labs, write_pair
    from timetag.estimators import estimate
    from timetag.estimators.plots import PLOT_NAMES, write_plots

    est = estimate(*write_pair(tmp_path, *labs(1500)), samples=0)
    a = write_plots(est, tmp_path / "a")
    b = write_plots(est.to_json(), tmp_path / "b")
    assert [p.name for p in a] == [p.name for p in b] == list(PLOT_NAMES)
    assert all(p.stat().st_size > 1000 for p in a + b)
