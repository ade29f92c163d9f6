"""timetag.channels: tags per channel, and the unused-channel report against a lab's setup."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from timetag.channels import TABLE_REACH, ChannelTally, channel_report, channel_roles
from timetag.chunk import TagChunk, split
from timetag.setupfile import setup_from_dict

ALICE = {
    "role": "alice", "sync_channel": 5, "ready_channel": 6, "setting_channels": [7, 8, 9, 10],
    "fluorescence_channels": [1, 2, 3, 4], "delays_ps": {str(c): 0 for c in range(1, 11)},
    "bsm": [{"channel": 1, "arm": "a", "pol": "H"}, {"channel": 2, "arm": "a", "pol": "V"},
            {"channel": 3, "arm": "b", "pol": "H"}, {"channel": 4, "arm": "b", "pol": "V"}],
    "herald": {"sync_reference": "previous", "window_start_ps": 30_000, "window_stop_ps": 110_000,
               "coincidence_ps": 100_000},
    "round": {"trigger": "both", "ready_delay_ps": 1_000_000, "ready_tolerance_ps": 50_000,
              "setting_window_ps": [0, 2_000_000], "fluorescence_window_ps": [5_000_000, 25_000_000], "threshold": 12},
}


def alice():
    return setup_from_dict({"labs": {"alice": ALICE}}).lab("alice")


def chunk(channels) -> TagChunk:
    c = np.asarray(channels, np.int32)
    return TagChunk(np.arange(c.size, dtype=np.int64), c)


def tally(*chunks) -> dict[int, int]:
    t = ChannelTally()
    for ch in chunks:
        t.process(ch)
    t.flush()
    return t.counts


# --- ChannelTally ----------------------------------------------------------------------------------------

def test_empty_stream():
    assert tally() == {} and tally(chunk([])) == {}
    report = channel_report({}, alice())
    assert report.tags == 0 and report.unused_tags == 0 and report.warnings == []
    assert [line.tags for line in report.channels] == [0] * 10


def test_one_tag():
    assert tally(chunk([3])) == {3: 1}
    report = channel_report({3: 1}, alice())
    assert report.tags == 1 and report.warnings == []
    (line,) = [x for x in report.channels if x.channel == 3]
    assert line.tags == 1 and line.role_text == "fluorescence, BSM bH"


def test_negative_sparse_and_far_channels():
    far = [TABLE_REACH + 1, -TABLE_REACH - 7, 2**31 - 1, -(2**31)]
    chans = [-4, -4, 2, 0, 18, -18, *far, far[0]]
    t = ChannelTally()
    t.process(chunk(chans))
    want = {c: chans.count(c) for c in set(chans)}
    assert t.counts == dict(sorted(want.items())) and t.tags == len(chans)
    assert list(t.counts) == sorted(want)


@settings(max_examples=60, deadline=None)
@given(chans=st.lists(st.integers(-20, 20) | st.sampled_from([5000, -5000]), max_size=200),
       cuts=st.lists(st.integers(0, 200), max_size=6))
def test_chunk_split_invariance(chans, cuts):
    whole = chunk(chans)
    pieces = list(split(whole, sorted(min(c, len(chans)) for c in cuts)))
    one_by_one = [chunk([c]) for c in chans]
    assert tally(*pieces) == tally(whole) == tally(*one_by_one) == {c: chans.count(c) for c in sorted(set(chans))}


# --- channel_report ----------------------------------------------------------------------------------------

def test_roles_of_every_channel():
    roles = channel_roles(alice())
    assert roles[5] == ("sync",) and roles[6] == ("ready",) and roles[9] == ("setting 2",)
    assert roles[1] == ("fluorescence", "BSM aH")
    report = channel_report({1: 10, 11: 3}, alice())
    assert {x.channel: x.role_text for x in report.channels}[11] == "unused"
    assert report.as_dict()["channels"][-1] == {"channel": 11, "tags": 3, "roles": ["unused"]}


def test_mis_signed_bsm_channels_are_named_with_the_falling_edge_hint():
    counts = {5: 100_000, 6: 300, 7: 80, 8: 70, 9: 75, 10: 75, -1: 3_000, -2: 3_100, -3: 3_200, -4: 3_045}
    report = channel_report(counts, alice())
    assert report.unused_tags == 12_345
    assert report.warnings[0] == ("lab alice: BSM/fluorescence channels 1, 2, 3, 4 saw no tags, but unused channels "
                                  "-1, -2, -3, -4 saw 12,345; falling edges are negative channel numbers on Swabian "
                                  "taggers: check the sign in the setup")
    # and the share of ignored tags (10.9 %) gets its own line, busiest channel first
    assert report.warnings[1].startswith("lab alice: 12,345 of 112,945 tags (10.9 %) are on channels the setup does "
                                         "not use (-3: 3,200, -2: 3,100, -4: 3,045, -1: 3,000)")
    assert len(report.warnings) == 2


def test_one_mis_signed_detector_among_live_ones():
    counts = {1: 500, 2: 480, 3: 510, -4: 490, 5: 100_000, 6: 10}   # the settings are silent too: no rounds
    assert channel_report(counts, alice()).warnings == [
        "lab alice: BSM/fluorescence channel 4 saw no tags, but unused channel -4 saw 490; falling edges are negative "
        "channel numbers on Swabian taggers: check the sign in the setup"]


def test_silent_role_with_tags_on_other_channels_points_at_the_channel_map():
    counts = {1: 500, 2: 480, 3: 510, 4: 490, 5: 100_000, 7: 10, 8: 10, 9: 10, 10: 10, 16: 300}
    assert channel_report(counts, alice()).warnings == [
        "lab alice: ready channel 6 saw no tags, but unused channel 16 saw 300; check the channel numbers in the setup"]
    counts[16] = 3000   # now also more than 1 % of the stream
    assert "(16: 3,000); processing ignores them" in channel_report(counts, alice()).warnings[1]


def test_no_warning_on_a_correct_setup():
    counts = {1: 500, 2: 480, 3: 510, 4: 490, 5: 100_000, 6: 300, 7: 80, 8: 70, 9: 75, 10: 75}
    report = channel_report(counts, alice())
    assert report.warnings == [] and report.unused_tags == 0 and report.tags == sum(counts.values())


def test_a_few_monitor_tags_and_a_silent_detector_are_not_a_channel_map_fault():
    # one dead BSM detector, and under 1 % of the tags on an unused monitor channel
    counts = {1: 500, 2: 480, 3: 510, 5: 100_000, 6: 300, 7: 80, 8: 70, 9: 75, 10: 75, 18: 20}
    assert channel_report(counts, alice()).warnings == []


def test_tally_feeds_the_report():
    t = ChannelTally()
    for piece in split(chunk([5, -1, -2, 5, -3, -4, 6, 7] * 10), [13, 40]):
        t.process(piece)
    report = channel_report(t.counts, alice())
    assert report.unused_tags == 40 and "check the sign in the setup" in report.warnings[0]
