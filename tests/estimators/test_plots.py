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


# --- drawing on the caller's axes (a notebook's `fig, ax = plt.subplots()`) --------------------------------------

@pytest.fixture(scope="module")
def res():
    import numpy as np

    from timetag.estimators import estimate_from_counts
    from timetag.estimators.counts import tally
    from timetag.estimators.model import sample_pairs

    return estimate_from_counts(tally(*sample_pairs(3000, 0.9, np.random.default_rng(1))), samples=0)


SCAN_ROWS = [{"threshold": th, "herald_rate_hz": 47.0 + th, "S": 2.6 - 0.1 * th, "S_err": 0.08,
              "Q": 0.05 + 0.01 * th, "Q_err": 0.01, "key_rate_per_event": 0.05, "key_rate_per_event_err": 0.02}
             for th in (8, 9, 10)]


def _user_figure(n):
    """A figure the user made, with one more Axes than the plot needs (which must stay empty)."""
    from matplotlib.figure import Figure

    fig = Figure()
    axes = list(fig.subplots(1, n + 1))
    return fig, axes[:n], axes[n]


def test_finite_key_figure_draws_on_the_given_ax(res):
    from timetag.estimators.plots import finite_key_figure

    fig, (ax,), spare = _user_figure(1)
    ax.set_title("mine")
    out = finite_key_figure(res, ax=ax)
    assert out is ax.figure is fig
    # the rate curve, the asymptotic rate, the N -> inf limit and N_min: four lines, all in the legend
    assert len(ax.get_lines()) == 4 and len(ax.get_legend().get_texts()) == 4
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "block length N (rounds)"
    assert not spare.has_data() and len(fig.axes) == 2  # nothing drawn elsewhere, no Axes added
    assert ax.get_title() != "mine" and fig.get_suptitle() == ""  # its Axes title; the figure's stays the user's


def test_correlations_figure_draws_on_the_given_axes(res):
    from timetag.estimators.plots import correlations_figure

    fig, axes, spare = _user_figure(2)
    out = correlations_figure(res, axes=axes)
    assert out is fig
    for ax in axes:
        assert len(ax.patches) == 8  # P(A = B) and P(A != B) at four settings X
        assert len(ax.get_lines()) == 1  # the fitted sinusoid
        assert ax.get_legend() is not None
    assert not spare.has_data() and len(fig.axes) == 3 and fig.get_suptitle() == ""


def test_scan_figure_draws_on_the_given_axes():
    from timetag.estimators.plots import SCAN_METRICS, scan_figure

    fig, axes, spare = _user_figure(len(SCAN_METRICS))
    assert scan_figure(SCAN_ROWS, ["threshold"], axes=axes) is fig
    # errorbar containers where the rows give an error, plain lines otherwise; one per panel
    assert [len(ax.containers) for ax in axes] == [0, 1, 1, 1]
    assert len(axes[0].get_lines()) == 1
    assert not spare.has_data()
    one, (ax,), _ = _user_figure(1)
    assert scan_figure(SCAN_ROWS, ["threshold"], metrics=["S"], axes=ax) is one and len(ax.containers) == 1


def test_axes_of_a_subfigure_return_the_figure_to_show(res):
    from matplotlib.figure import Figure

    from timetag.estimators.plots import finite_key_figure

    fig = Figure()
    ax = fig.subfigures(1, 2)[1].subplots()
    assert finite_key_figure(res, ax=ax) is fig and ax.get_lines()


def test_without_axes_each_call_makes_its_own_figure(res):
    from timetag.estimators.plots import correlations_figure, finite_key_figure

    a, b = finite_key_figure(res), finite_key_figure(res)
    assert a is not b and len(a.axes) == 1 and a.axes[0].get_lines()
    c = correlations_figure(res)
    assert len(c.axes) == 2 and c.get_suptitle().startswith("Correlation probabilities")


@pytest.mark.parametrize("bad", ["too_few", "two_figures", "not_axes"])
def test_wrong_axes_are_refused_with_the_functions_name(res, bad):
    from matplotlib.figure import Figure

    from timetag.estimators.plots import correlations_figure

    fig, axes, spare = _user_figure(2)
    given = {"too_few": [axes[0]], "two_figures": [axes[0], Figure().subplots()], "not_axes": [fig, fig]}[bad]
    with pytest.raises(ValueError, match="correlations_figure"):
        correlations_figure(res, axes=given)
    assert not any(ax.has_data() for ax in fig.axes)  # refused before drawing anything
