import numpy as np
import pytest

pytest.importorskip("matplotlib")

from timetag.distill.plots import PAPER_F, PAPER_MIN_ROUNDS, key_length_curves, key_length_figure  # noqa: E402
from timetag.estimators.finitekey import finite_key_length  # noqa: E402


def test_figure_has_the_measured_and_assumed_curves_and_the_papers_minimum(run):
    rep = run.report
    fig = key_length_figure(rep)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    measured = next(ln for k, ln in lines.items() if k.startswith("this run's f"))
    assumed = next(ln for k, ln in lines.items() if k.startswith(f"f = {PAPER_F}"))
    N = measured.get_xdata()
    kw = {"eps": rep.eps_sec, "p_key": rep.key_rounds / rep.used, "p_test": rep.test_rounds / rep.used}
    want = finite_key_length(N, rep.S, rep.qber_corrected, f_ec=rep.f_measured, **kw)
    y = measured.get_ydata()
    pos = want > 0
    assert pos.any() and (~pos).any()  # the curve starts at a positive key
    assert np.allclose(y[pos], want[pos]) and np.isnan(y[~pos]).all()
    y2 = assumed.get_ydata()
    assert np.allclose(y2[np.isfinite(y2)], finite_key_length(N, rep.S, rep.qber_corrected, f_ec=PAPER_F, **kw)[
        np.isfinite(y2)])
    # the lower f gives the longer key where both are positive
    both = np.isfinite(y) & np.isfinite(y2)
    assert both.any() and ((y[both] > y2[both]) if rep.f_measured < PAPER_F else (y[both] < y2[both])).all()
    vline = next(ln for k, ln in lines.items() if k.startswith("paper's minimum"))
    assert vline.get_xdata()[0] == PAPER_MIN_ROUNDS
    star = next(ln for k, ln in lines.items() if k.startswith("this run:"))
    assert star.get_ydata()[0] == rep.final_length > 0


def test_draws_on_a_given_axes_and_takes_the_json_report(run):
    from matplotlib.figure import Figure
    fig = Figure()
    ax = fig.subplots()
    assert key_length_figure(run.report.to_json(), ax=ax) is fig and len(ax.get_lines()) == 4


def test_curves_need_a_qber():
    with pytest.raises(ValueError):
        key_length_curves({"used": 10, "key_rounds": 5, "test_rounds": 5, "S": 2.6, "eps_sec": 1e-5})
