"""calibrate.plots: one public function per figure, each drawing on the caller's axes when given and returning
the figure; figures() (what --plots writes) built from the same functions."""
from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402

from calibrate import plots  # noqa: E402
from calibrate.api import calibrate_run  # noqa: E402
from calibrate.synthetic import SynthParams, make_setup, make_streams  # noqa: E402
from timetag.formats.dump import write_dump  # noqa: E402


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    p = SynthParams(duration_ps=1_000_000_000_000, photon_prob=0.02, sync_mode="every", seed=7)
    a, b, _ = make_streams(p)
    d = tmp_path_factory.mktemp("cal_plots")
    write_dump(d / "alice.dump", a)
    write_dump(d / "bob.dump", b)
    setup = make_setup(p, thresholds=(1, 1))
    new, report = calibrate_run([d / "alice.dump"], [d / "bob.dump"], setup, strict=False)
    return new, setup, report


def _user_axes(n):
    """n Axes of a figure the user made, and one more that must stay empty."""
    fig = Figure()
    axes = list(fig.subplots(1, n + 1))
    return fig, axes[:n], axes[n]


def _draw(name, calibration, target):
    """Call the plot function ``name`` on the real calibration, drawing on ``target`` (ax= or axes=)."""
    new, old, rep = calibration
    alice = rep.results["alice"]
    if name == "arrival_figure":
        return plots.arrival_figure("alice", alice, old.lab("alice"), new.lab("alice"), ax=target)
    if name == "fom_figure":
        return plots.fom_figure("alice", alice.window, axes=target)
    if name == "counts_figure":
        return plots.counts_figure("alice", alice.threshold, alice.data.counts.counts, ax=target)
    return plots.clock_figure(rep.results["clock"], ax=target)


# name -> (panels, lines expected on each panel)
EXPECTED = {
    "arrival_figure": (1, None),  # per channel: its histogram and its model, and 5 window/pulse lines
    "fom_figure": (2, [2, 2]),  # the curve and the chosen value
    "counts_figure": (1, [4]),  # the fitted mixture, its two parts and the threshold (bars: patches)
    "clock_figure": (1, [2]),  # the residuals and the zero line
}


def test_every_public_plot_function_is_tested():
    public = {n for n in plots.__all__ if n.endswith("_figure")}
    assert public == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_draws_on_the_given_axes_and_returns_their_figure(calibration, name):
    panels, lines = EXPECTED[name]
    fig, axes, spare = _user_axes(panels)
    out = _draw(name, calibration, axes[0] if panels == 1 else axes)
    assert out is axes[0].figure is fig
    if name == "arrival_figure":
        n_fits = len(calibration[2].results["alice"].delays.fits)
        lines = [2 * n_fits + 5]  # histogram + model per channel; old and new window edges; the pulse end
    assert [len(ax.get_lines()) for ax in axes] == lines
    assert not spare.has_data() and len(fig.axes) == panels + 1  # nothing drawn elsewhere, no Axes added
    if name == "counts_figure":
        assert len(axes[0].patches) > 3  # the histogram's bars


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_without_axes_a_new_figure_each_call(calibration, name):
    a, b = _draw(name, calibration, None), _draw(name, calibration, None)
    assert isinstance(a, Figure) and a is not b and len(a.axes) == EXPECTED[name][0]


def test_a_wrong_number_of_axes_is_refused(calibration):
    fig, axes, _ = _user_axes(1)
    with pytest.raises(ValueError, match="fom_figure draws 2 panel"):
        _draw("fom_figure", calibration, axes)


def test_figures_are_the_public_functions_figures(calibration):
    new, old, rep = calibration
    figs = dict(plots.figures(new, old, rep))
    assert set(figs) == {"alice_arrival.png", "alice_fom.png", "alice_counts.png", "bob_counts.png",
                         "clock_residuals.png"}
    assert len(figs["alice_fom.png"].axes) == 2
    assert [len(ax.get_lines()) for ax in figs["clock_residuals.png"].axes] == [2]
