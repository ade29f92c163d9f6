"""Round stage: triggers, settings, thresholds, lost-data and truncation flags on hand-made streams; its small
kernels against numpy."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from engine_cases import (END, assert_same, herald_tags, psi_plus_round_tags, run, B_H, B_V, BOB_FLUO, BOB_READY,
                          BOB_S1, READY, S0, S1, S2, UNUSED, alice, alice_dict, bob, stream)

from timetag.chunk import ERROR, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, split
from timetag.engine import HeraldStage, LabPipeline, RoundStage
from timetag.errors import SetupError
from timetag.records import (FLAG_HERALD_WITHOUT_READY, FLAG_LOST_DATA, FLAG_READY_WITHOUT_HERALD,
                             FLAG_SETTING_AMBIGUOUS, FLAG_SETTING_MISSING, FLAG_TRUNCATED, PATTERN_NONE,
                             PATTERN_PSI_PLUS, SETTING_NONE)
from timetag.setupfile import setup_from_dict



def test_herald_without_ready_and_ready_without_herald():
    tags = herald_tags(0) + [(2000 + 5, READY), (2010, S0), END]
    rounds, _, _ = run(alice(), tags)
    assert rounds[["index", "trigger_time", "herald_time", "pattern", "flags"]].tolist() == [
        (0, 130, 30, PATTERN_PSI_PLUS, FLAG_HERALD_WITHOUT_READY | FLAG_SETTING_MISSING),
        (1, 2000, -1, PATTERN_NONE, FLAG_READY_WITHOUT_HERALD)]
    assert rounds["setting"].tolist() == [SETTING_NONE, 0]


def test_ready_outside_tolerance_is_not_matched():
    tags = herald_tags(0) + [(30 + 100 + 11 + 5, READY), END]  # 11 ps late (tolerance 10)
    rounds, _, _ = run(alice(), tags)
    assert sorted(rounds["flags"] & (FLAG_HERALD_WITHOUT_READY | FLAG_READY_WITHOUT_HERALD)) == [
        FLAG_HERALD_WITHOUT_READY, FLAG_READY_WITHOUT_HERALD]
    assert rounds["index"].tolist() == [0, 1] and rounds["trigger_time"].tolist() == [130, 141]


def test_setting_missing_and_ambiguous():
    tags = [(1000, READY + 0), (1005, S1), (1010, S2), (3000, READY), (3050, S0), END]
    rounds, _, _ = run(alice(trigger="ready", delays={}), tags)
    assert rounds[["setting", "flags"]].tolist() == [(SETTING_NONE, FLAG_SETTING_AMBIGUOUS),
                                                     (SETTING_NONE, FLAG_SETTING_MISSING)]


def test_trigger_herald_mode_uses_herald_plus_delay():
    tags = herald_tags(0) + [(140, S3 := 10), (190, B_H), (279, B_V), (280, B_V), END]
    rounds, _, _ = run(alice(trigger="herald"), tags)
    # trigger 130: setting window [130, 170), fluorescence [180, 280) -> count 2 (280 excluded)
    assert rounds.tolist() == [(0, 130, 30, PATTERN_PSI_PLUS, 3, 2, 1, 0)]


def test_threshold():
    tags = [(1000, READY), (1001, S0), (1060, B_H), END]
    rounds, _, _ = run(alice(trigger="ready", delays={}), tags)
    assert rounds[["count", "output"]].tolist() == [(1, 0)]


@pytest.mark.parametrize("lost, flagged", [
    ([(1100, OVERFLOW_BEGIN), (1120, OVERFLOW_END)], True),   # inside the fluorescence window [1050, 1150)
    ([(900, OVERFLOW_BEGIN), (1000, OVERFLOW_END)], False),   # ends when the setting window starts
    ([(900, OVERFLOW_BEGIN), (1001, OVERFLOW_END)], True),
    ([(1030, MISSED, 2, 5)], True),                            # in the setting window
    ([(1045, ERROR)], False),                                  # between the windows
    ([(1149, ERROR)], True),
    ([(1150, ERROR)], False),
    ([(1140, OVERFLOW_BEGIN)], True),                          # never closed
])
def test_lost_data_flags(lost, flagged):
    tags = [(1000, READY), (1001, S0), END]
    rounds, _, pl = run(alice(trigger="ready", delays={}), tags, lost)
    assert bool(rounds["flags"][0] & FLAG_LOST_DATA) == flagged
    assert len(rounds) == 1 and pl.summary["flags"]["lost_data"] == int(flagged)


def test_lost_data_in_the_herald_acceptance_window_flags_the_round():
    # herald of the attempt at sync 0: acceptance window [10, 50); an error at 12 taints it
    tags = herald_tags(0) + [(135, READY), (140, S0), END]
    rounds, _, _ = run(alice(), tags, [(12, ERROR)])
    assert rounds["flags"].tolist() == [FLAG_LOST_DATA]
    rounds, _, _ = run(alice(), tags, [(52, ERROR)])
    assert rounds["flags"].tolist() == [0]


def test_truncated_at_the_end_of_the_data():
    tags = [(1000, READY), (1001, S0), (1100, B_H)]  # the data end inside the fluorescence window
    rounds, _, _ = run(alice(trigger="ready", delays={}), tags)
    assert rounds["flags"].tolist() == [FLAG_TRUNCATED]
    rounds, _, _ = run(alice(trigger="ready", delays={}), tags + [(1150, UNUSED)])
    assert rounds["flags"].tolist() == [0]


def test_bob_ready_trigger():
    tags = [(1000, BOB_READY), (1010, BOB_S1), (984, BOB_FLUO), (1020, BOB_FLUO), (1104, BOB_FLUO),
            (1105, BOB_FLUO), (2000, 3)]
    # fluorescence delay 4: corrected 980 (outside [980, 1100)? no: inside), 1016, 1100 (out), 1101 (out)
    rounds, heralds, pl = run(bob(), tags)
    assert len(heralds) == 0
    assert rounds.tolist() == [(0, 1000, -1, PATTERN_NONE, 1, 2, 1, 0)]
    assert pl.summary["tags_other_channels"] == 1


def test_rounds_are_emitted_as_soon_as_their_windows_close():
    lab = alice(trigger="ready", delays={})
    pl = LabPipeline(lab)
    r, _ = pl.process(stream([(1000, READY), (1001, S0)]))
    assert len(r) == 0  # the fluorescence window [1050, 1150) is still open
    r, _ = pl.process(stream([(1200, B_H)]))
    assert r["trigger_time"].tolist() == [1000]
    r, _ = pl.flush()
    assert len(r) == 0


def test_empty_stream_and_one_tag():
    for lab in (alice(), alice(ref="next"), bob()):
        r, h = LabPipeline(lab).run([])
        assert len(r) == 0 and len(h) == 0
        pl = LabPipeline(lab)
        r, h = pl.run([stream([(10, READY)])])
        assert len(h) == 0
        assert pl.summary["tags"] == 1 and pl.summary["rounds"] == len(r) == 1
        assert r["flags"][0] & FLAG_TRUNCATED


def test_stage_api_and_validation_message():
    lab = alice()
    hs, rs = HeraldStage(lab), RoundStage(lab)
    out = hs.process(stream(psi_plus_round_tags()))
    rounds = rs.process(out)
    rounds2 = rs.flush(hs.flush())
    assert len(rounds) + len(rounds2) == 1
    with pytest.raises(RuntimeError):
        hs.process(stream([]))
    bad = alice_dict()
    bad["setting_channels"] = [7, 8, 9, 100000]
    bad["delays_ps"]["100000"] = 0
    lab = setup_from_dict({"labs": {"alice": bad}}).lab("alice")
    with pytest.raises(SetupError, match=r"labs\.alice.*herald stage"):
        HeraldStage(lab)


@given(rows=st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), max_size=8))
def test_triggers_in_order_matches_lexicographic_order(rows):
    from timetag._cext import engine_rounds
    from timetag.engine.records import TRIGGER_DTYPE

    trig = np.zeros(len(rows), TRIGGER_DTYPE)
    pairs = np.array(rows, np.int64).reshape(-1, 2)
    trig["time"], trig["herald_time"] = pairs[:, 0], pairs[:, 1]
    assert engine_rounds.triggers_in_order(trig) == (sorted(rows) == rows)


def test_out_of_order_trigger_batches_are_sorted(monkeypatch):
    """The round stage skips sorting the triggers when they already are in (time, herald time)
    order; with trigger 'both' the matching emits some batches out of order: those must still give
    the reference's rounds, in order.  The test checks that such batches did occur."""
    import timetag.engine.rounds as rounds_mod

    kernels = rounds_mod._k
    unsorted = []

    class Spy:
        eval_rounds = staticmethod(kernels.eval_rounds)
        triggers_in_order = staticmethod(kernels.triggers_in_order)

        @staticmethod
        def make_triggers(par, *args):
            res = kernels.make_triggers(par, *args)
            t, h = args[-1]["time"][: res[0]], args[-1]["herald_time"][: res[0]]
            in_order = (t[:-1] < t[1:]) | ((t[:-1] == t[1:]) & (h[:-1] <= h[1:]))
            unsorted.append(not bool(np.all(in_order)))
            return res

    monkeypatch.setattr(rounds_mod, "_k", Spy)
    lab = alice(ref="previous", trigger="both")
    from engine_cases import herald_ready_stream

    for seed in range(30):
        s = herald_ready_stream(np.random.default_rng(seed), 40)
        for chunks in ([s], list(split(s, range(10, len(s), 10)))):
            rounds, _, _ = assert_same(lab, s, chunks)
            order = np.lexsort((rounds["herald_time"], rounds["trigger_time"]))
            assert order.tolist() == list(range(len(rounds)))
    assert any(unsorted)


@given(flags=st.lists(st.integers(0, 63), max_size=40), seed=st.integers(0, 2**32 - 1))
def test_round_tallies_match_numpy_counts(flags, seed):
    from timetag.engine.summary import SummaryCounter
    from timetag.records import FLAG_NAMES, ROUND_DTYPE

    rng = np.random.default_rng(seed)
    r = np.zeros(len(flags), ROUND_DTYPE)
    r["flags"] = flags
    r["setting"] = rng.integers(-1, 4, r.size)
    r["output"] = rng.integers(0, 2, r.size)
    c = SummaryCounter("alice", "alice", "herald")
    c.add_rounds(r)
    c.add_rounds(r[: r.size // 2])
    both = np.concatenate([r, r[: r.size // 2]])
    assert c.rounds == both.size
    assert c.rounds_up == int(np.count_nonzero(both["output"]))
    assert c.rounds_flagged == int(np.count_nonzero(both["flags"]))
    assert c.flags == {name: int(np.count_nonzero(both["flags"] & bit)) for bit, name in FLAG_NAMES.items()}
    values, counts = np.unique(both["setting"], return_counts=True)
    assert c.setting_counts == dict(zip(values.tolist(), counts.tolist()))

