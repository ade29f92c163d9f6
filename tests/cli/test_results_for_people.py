"""Results read by physicists (issue 20, item 6): every table says what its symbols are and in which units, shows
words (explained) rather than a bare '-', cuts no value; plots have legends, error bars and integer axes where the
parameter is an integer."""
from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest
from rich.console import Console

from estimate_cases import labs, write_pair
from timetag.commands.demo import comparison_table
from timetag.commands.estimate import MISSING, _cells, console_for, render_table
from timetag.commands.process import summary_table
from timetag.commands.scan import rich_table
from timetag.demo import PAPER, run_demo
from timetag.distributed.scan import key_rate_err, key_unit
from timetag.estimators import estimate
from timetag.estimators.keyrate import key_rate
from timetag.estimators.plots import correlations_figure, scan_figure


def render(table, width=200) -> str:
    """The table as printed, with runs of white space made one space (the caption wraps at the table's width)."""
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(table)
    return " ".join(buf.getvalue().split())


def bare_dashes(table) -> list[str]:
    """Cells that are a '-' (or end in ': -') with nothing saying what it means."""
    return [c for c in _cells(table) if c.strip() in ("-", "—", "–") or re.search(r":\s*-\s*(,|$)", c)]


def check_words_explained(table) -> None:
    caption = str(table.caption or "")
    for word in MISSING:
        if any(word in c for c in _cells(table)):
            assert f"{word}: " in caption, word


@pytest.fixture(scope="module")
def est_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("rfp")
    A, B = labs(n=1500)
    return write_pair(d, A, B)


# --- the demo's table ---------------------------------------------------------------------------------------

def fake_estimate(**over):
    res = {"rounds": 3000, "E": {"2,0": -0.63, "3,0": -0.65, "2,1": 0.63, "3,1": -0.64},
           "E_err": {"2,0": 0.04, "3,0": 0.04, "2,1": 0.039, "3,1": 0.039}, "S": 2.55, "S_err": 0.079,
           "Q0": 0.06, "Q0_err": 0.012, "Q1": 0.045, "Q1_err": 0.011, "Q": 0.053, "Q_err": 0.008,
           "key_rate_per_event": {"random_basis": 0.087, "original": 0.055}, "min_block_length": 8.24e4}
    res.update(over)
    return res


def test_demo_table_says_what_its_numbers_are_and_has_every_paper_value():
    t = comparison_table(fake_estimate())
    out = render(t)
    headers = [str(c.header) for c in t.columns]
    assert headers == ["quantity", "this run ± 1σ", "paper ± 1σ"]
    assert "E_xy: correlator" in out and "Alice's setting x and Bob's setting y" in out
    assert "± : one standard deviation" in out and "bits per event" in out
    assert "(bits/event)" in out and "block length (events)" in out
    # the paper's original-protocol rate (0.039 at its S and Q) is there, marked and explained
    assert PAPER["key_rate_per_event"]["original"] == pytest.approx(key_rate(2.578, 0.078, protocol="original"),
                                                                    abs=5e-4)
    assert re.search(r"original protocol \(bits/event\) │ [-0-9.]+ │ 0\.039 \*", out)
    assert "* not printed in the paper" in out
    assert not bare_dashes(t)


def test_demo_table_missing_values_are_words_explained_below():
    t = comparison_table(fake_estimate(S=None, S_err=None, min_block_length="inf"))
    assert not bare_dashes(t)
    cells = _cells(t)
    assert "not computed" in cells and "no key at any N" in cells
    check_words_explained(t)


# --- the estimate's table -------------------------------------------------------------------------------------

@pytest.mark.parametrize("samples", [0, 400])
def test_estimate_table_units_legend_and_no_bare_dash(est_pair, samples):
    res = estimate(*est_pair, samples=samples).to_json()
    t = render_table(res)
    out = render(t)
    assert not bare_dashes(t), bare_dashes(t)
    check_words_explained(t)
    assert [str(c.header) for c in t.columns] == ["quantity", "value ± 1σ", "95 % interval",
                                                  "N (rounds) / note"]
    assert "key rate, random key basis (bits/event)" in out and "one standard deviation" in out
    # the default intervals (mid-p / MOVER) need no posterior samples: every row has one, with or without
    names, intervals = [list(map(str, t.columns[i].cells)) for i in (0, 2)]
    key_cell = intervals[names.index("key rate, random key basis (bits/event)")]
    assert re.fullmatch(r"\[\d\.\d{3}, \d\.\d{3}\]", key_cell), key_cell
    assert "not sampled" not in _cells(t)
    if samples:
        wc = next(c for c in _cells(t) if c.startswith("random basis:"))
        assert re.fullmatch(r"random basis: (key > 0|no key), original: (key > 0|no key)", wc)


def test_estimate_table_is_not_cut_when_printed_to_a_file(est_pair):
    t = render_table(estimate(*est_pair, samples=400).to_json())
    con = console_for(t)  # stdout is not a terminal under pytest
    assert not con.is_terminal and con.width > 80
    with con.capture() as cap:
        con.print(t)
    text = cap.get()
    assert "…" not in text
    assert "random basis: " in text and "original: " in text


# --- scan: uncertainties, units, whole values, integer axes ----------------------------------------------------

ROWS = [{"threshold": th, "window.stop": ws, "heralds": 3060, "herald_rate_hz": 47.36, "pairs": 3000,
         "S": 2.6 - 0.2 * (th - 8), "S_err": 0.083, "Q": 0.05 + 0.03 * (th - 8), "Q_err": 0.011,
         "key_rate_per_event": 0.05 - 0.05 * (th - 8), "key_rate_per_event_err": 0.026, "note": ""}
        for th in (8, 9, 10, 11, 12) for ws in (-19_100_000, -19_090_000)]


def test_scan_table_has_uncertainties_units_and_is_not_cut():
    t = rich_table(ROWS, ["threshold", "window.stop"])
    headers = [str(c.header) for c in t.columns]
    assert headers[:2] == ["threshold (counts)", "window.stop (ps)"]
    assert "S ± 1σ" in headers and "herald rate (1/s)" in headers and "key rate ± 1σ (bits/event)" in headers
    assert "2.600 ± 0.083" in _cells(t) and "0.050 ± 0.011" in _cells(t)
    con = console_for(t)
    with con.capture() as cap:
        con.print(t)
    text = cap.get()
    assert "…" not in text and "-19100000" in text and "2.600 ± 0.083" in text
    assert max(len(ln) for ln in text.splitlines()) > 80  # wider than the old cut
    assert "one standard deviation" in text


def test_scan_table_failed_point_is_explained():
    rows = [dict(ROWS[0], S=None, S_err=None, Q=None, Q_err=None, key_rate_per_event=None,
                 key_rate_per_event_err=None, note="no test rounds")]
    t = rich_table(rows, ["threshold", "window.stop"])
    assert not bare_dashes(t)
    assert "not computed: no estimate at this point (no test rounds)" in str(t.caption)


def test_key_units():
    assert key_unit("threshold") == "counts" and key_unit("window.stop") == "ps"
    assert key_unit("fluorescence.start") == "ps" and key_unit("labs.alice.herald.window_stop_ps") == "ps"


def test_key_rate_err_matches_sampling():
    S, sS, Q0, s0, Q1, s1 = 2.55, 0.08, 0.06, 0.012, 0.045, 0.011
    err = key_rate_err(S, sS, Q0, s0, Q1, s1)
    rng = np.random.default_rng(1)
    n = 200_000
    r = key_rate(rng.normal(S, sS, n), rng.normal(Q0, s0, n), rng.normal(Q1, s1, n))
    assert err == pytest.approx(np.nanstd(r), rel=0.1)
    assert key_rate_err(None, sS, Q0, s0, Q1, s1) is None


def test_scan_figure_integer_ticks_error_bars_units():
    from matplotlib.container import ErrorbarContainer

    rows = [r for r in ROWS if r["threshold"] <= 10]  # 8, 9, 10: matplotlib's default ticks would be 7.75, 8, 8.25...
    fig = scan_figure(rows, ["threshold", "window.stop"], units={"threshold": "counts", "window.stop": "ps"})
    axes = fig.axes
    shown = [t for t in axes[-1].get_xticks() if 8 <= t <= 10]
    assert shown and all(float(t).is_integer() for t in shown), shown
    assert axes[-1].get_xlabel() == "threshold (counts)"
    by_label = {ax.get_ylabel(): ax for ax in axes}
    for lab in ("S (CHSH)", "Q (QBER)", "key rate\n(bits/event)"):
        assert any(isinstance(c, ErrorbarContainer) for c in by_label[lab].containers), lab
    assert not by_label["herald rate (1/s)"].containers  # no uncertainty given: no error bars
    assert any(t.get_text() == "window.stop=-19100000 ps" for t in axes[0].get_legend().get_texts())
    assert fig._suptitle.get_text() == "error bars: one standard deviation"


def test_scan_figure_float_axis_keeps_fractional_ticks():
    rows = [dict(ROWS[0], threshold=x) for x in (0.5, 1.0, 1.5)]
    fig = scan_figure(rows, ["threshold"])
    assert any(not float(t).is_integer() for t in fig.axes[-1].get_xticks())


# --- figures of the estimate and the calibration ----------------------------------------------------------------

def test_correlation_plot_angle_axis_and_legends(est_pair):
    fig = correlations_figure(estimate(*est_pair, samples=0))
    for ax in fig.axes:
        assert "angle" in ax.get_xlabel() and "deg" in ax.get_xlabel()
        assert all("°" in t.get_text() for t in ax.get_xticklabels())
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(t.startswith("fit V = ") for t in texts) and "P(A = B) ± 1σ" in texts


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("rfp_demo") / "demo", rounds=600, seed=7, plots=False)


def test_arrival_plot_fit_and_windows_in_legend(demo_run):
    from calibrate.plots import figures
    from timetag.demo import DEMO_CALIBRATION_STEPS
    from timetag.plugins import calibrator
    from timetag.setupfile import load_setup

    f = demo_run.files
    start = load_setup(f["uncalibrated_setup"])
    new, report = calibrator()([f["alice_tags"]], [f["bob_tags"]], start, steps=DEMO_CALIBRATION_STEPS)
    figs = dict(figures(new, start, report))
    ax = figs["alice_arrival.png"].axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "fitted model (each channel)" in texts
    assert "old window (start, stop)" in texts and "new window (start, stop)" in texts
    text = report.text()
    assert "one standard deviation" in text and "unset ->" in text  # the start setup has no [clock]


def test_process_summary_table_units(demo_run):
    from timetag.roundsfile import read_rounds

    summary = read_rounds(demo_run.files["alice_rounds"]).summary
    t = summary_table(summary)
    headers = [str(c.header) for c in t.columns]
    assert headers == ["quantity", "count (or unit given)", "rate (1/s)"]
    out = render(t)
    assert "per second of recorded time" in out and "rounds output up: " in out
    dur = next(c for c in t.columns[1].cells if str(c).endswith(" s"))
    assert math.isfinite(float(str(dur)[:-2].replace(",", "")))
    assert not bare_dashes(t)
