import copy
import tomllib

import pytest

from timetag.errors import SetupError
from timetag.setupfile import HeraldConfig, HistogramConfig, load_setup, loads_setup, required_keys, setup_from_dict

EXAMPLE = """
[meta]
name = "example"
schema = 1

[labs.alice]
role = "alice"
sync_channel = 1
ready_channel = 6
setting_channels = [7, 8, 9, 10]
fluorescence_channels = [2, 3, 4, 5]
delays_ps = { "1" = 0, "2" = 120, "3" = -80, "4" = 0, "5" = 0, "6" = 0, "7" = 0, "8" = 0, "9" = 0, "10" = 0 }
bsm = [
  { channel = 2, arm = "a", pol = "H" },
  { channel = 3, arm = "a", pol = "V" },
  { channel = 4, arm = "b", pol = "H" },
  { channel = 5, arm = "b", pol = "V" },
]
[labs.alice.herald]
sync_reference = "previous"
window_start_ps = 25000
window_stop_ps = 100000
coincidence_ps = 100000
patterns = ["psi+"]
[labs.alice.round]
trigger = "both"
ready_delay_ps = 1000000
ready_tolerance_ps = 50000
setting_window_ps = [0, 2000000]
fluorescence_window_ps = [5000000, 25000000]
threshold = 5
[labs.alice.histograms]
arrival_bin_ps = 250
arrival_range_ps = [0, 200000]
max_count = 64

[labs.bob]
role = "bob"
ready_channel = 3
setting_channels = [4, 5]
fluorescence_channels = [1]
delays_ps = { "1" = 1600, "3" = 0, "4" = 0, "5" = 0 }
[labs.bob.round]
trigger = "ready"
setting_window_ps = [0, 2000000]
fluorescence_window_ps = [5000000, 25000000]
threshold = 3
"""


def example() -> dict:
    return tomllib.loads(EXAMPLE)


def _delete(d: dict, dotted: str) -> None:
    *tables, last = dotted.split(".")
    for t in tables:
        d = d[t]
    del d[last]


def _alice_with_trigger(trigger: str) -> dict:
    d = example()
    d["labs"]["alice"]["round"]["trigger"] = trigger
    return d


def test_example_loads_and_round_trips():
    s = loads_setup(EXAMPLE)
    a = s.lab("alice")
    assert a.delay(2) == 120 and a.delay(3) == -80 and a.delay(9) == 0
    assert [d.arm + d.pol for d in a.bsm] == ["aH", "aV", "bH", "bV"]
    assert a.round.threshold == 5 and a.herald.pattern_codes == (1,)
    assert s.lab("bob").n_inputs == 2
    again = loads_setup(s.dumps())
    assert again == s and again.hash == s.hash


def test_hash_changes_with_parameters():
    s = loads_setup(EXAMPLE)
    assert loads_setup(EXAMPLE.replace("threshold = 5", "threshold = 6")).hash != s.hash


# --- what is required --------------------------------------------------------------------------------

def test_required_keys_cover_everything_that_changes_the_physics():
    alice = set(required_keys(example()["labs"]["alice"]))
    assert alice == {"role", "sync_channel", "ready_channel", "setting_channels", "fluorescence_channels",
                     "bsm", "delays_ps", "herald.sync_reference", "herald.window_start_ps", "herald.window_stop_ps",
                     "herald.coincidence_ps", "round.trigger", "round.ready_delay_ps", "round.ready_tolerance_ps",
                     "round.setting_window_ps", "round.fluorescence_window_ps", "round.threshold"}
    bob = set(required_keys(example()["labs"]["bob"]))
    assert bob == {"role", "ready_channel", "setting_channels", "fluorescence_channels", "delays_ps",
                   "round.trigger", "round.setting_window_ps", "round.fluorescence_window_ps", "round.threshold"}
    herald_only = set(required_keys(_alice_with_trigger("herald")["labs"]["alice"]))
    assert "ready_channel" not in herald_only and "round.ready_tolerance_ps" not in herald_only
    assert {"bsm", "sync_channel", "round.ready_delay_ps"} <= herald_only


CASES = [("alice", key) for key in required_keys(example()["labs"]["alice"])] + \
        [("bob", key) for key in required_keys(example()["labs"]["bob"])]


@pytest.mark.parametrize("lab,key", CASES, ids=[f"{lab}.{key}" for lab, key in CASES])
def test_every_required_key_is_named_when_missing(lab, key):
    d = example()
    _delete(d["labs"][lab], key)
    with pytest.raises(SetupError, match=r"is required \(no default: ") as exc:
        setup_from_dict(d)
    assert f"[labs.{lab}.{key}] is required" in str(exc.value)


def test_missing_threshold_message_names_file_and_reason(tmp_path):
    fn = tmp_path / "setup.toml"
    fn.write_text(EXAMPLE.replace("threshold = 5\n", ""))
    with pytest.raises(SetupError) as exc:
        load_setup(fn)
    assert str(exc.value) == f"{fn}: [labs.alice.round.threshold] is required (no default: it decides the output bits)"


def test_all_missing_keys_are_listed_at_once():
    d = example()
    del d["labs"]["bob"]["round"]["threshold"], d["labs"]["bob"]["role"]
    with pytest.raises(SetupError, match=r"\[labs\.bob\.role\] is required .*also missing in \[labs\.bob\]: "
                                         r"round\.threshold"):
        setup_from_dict(d)


def test_a_used_channel_without_a_delay_is_named():
    d = example()
    del d["labs"]["alice"]["delays_ps"]["7"], d["labs"]["alice"]["delays_ps"]["9"]
    with pytest.raises(SetupError) as exc:
        setup_from_dict(d)
    msg = str(exc.value)
    assert msg.startswith("[labs.alice.delays_ps.7] is required") and "setting_channels" in msg
    assert '"7" = 0' in msg and msg.endswith("also missing in [labs.alice.delays_ps]: 9")


def test_a_delay_for_a_channel_the_lab_does_not_use_is_kept_and_harmless():
    d = example()
    d["labs"]["alice"]["delays_ps"]["11"] = 120   # e.g. a monitor channel, or one cabled out
    assert setup_from_dict(d).lab("alice").delay(11) == 120


def test_bsm_detectors_need_the_sync_and_the_herald_window_whatever_the_trigger():
    d = _alice_with_trigger("ready")
    del d["labs"]["alice"]["sync_channel"], d["labs"]["alice"]["delays_ps"]["1"]
    with pytest.raises(SetupError, match=r"\[labs\.alice\.sync_channel\] is required"):
        setup_from_dict(d)


def test_a_ready_triggered_lab_without_bsm_needs_no_herald_keys():
    d = _alice_with_trigger("ready")
    alice = d["labs"]["alice"]
    for key in ("bsm", "herald", "sync_channel"):
        del alice[key]
    del alice["delays_ps"]["1"]
    lab = setup_from_dict(d).lab("alice")
    assert lab.bsm == () and lab.sync_channel is None


# --- defaults -----------------------------------------------------------------------------------------

def test_optional_keys_get_their_defaults():
    d = example()
    del d["meta"], d["labs"]["alice"]["histograms"], d["labs"]["alice"]["herald"]["patterns"]
    s = setup_from_dict(d)
    a, b = s.lab("alice"), s.lab("bob")
    assert s.name == "" and a.histograms == HistogramConfig() and a.herald.patterns == ("psi+",)
    # a lab that does not herald keeps the (unused) herald defaults; 'ready' ignores the ready latency
    assert b.herald == HeraldConfig() and b.round.ready_delay_ps == 1_000_000 and b.round.ready_tolerance_ps == 50_000


# --- unknown keys and other mistakes -----------------------------------------------------------------------

@pytest.mark.parametrize("old,new,key,near", [
    ("threshold = 5", "treshold = 5", "labs.alice.round.treshold", "'threshold'"),
    ("sync_channel = 1\n", "sync_channel = 1\nsync_chanel = 2\n", "labs.alice.sync_chanel", "'sync_channel'"),
    ("window_stop_ps = 100000", "window_stop_ps = 100000\nwindow_end_ps = 1", "labs.alice.herald.window_end_ps",
     "'window_stop_ps'"),
    ("max_count = 64", "max_counts = 64", "labs.alice.histograms.max_counts", "'max_count'"),
    ('{ channel = 5, arm = "b", pol = "V" }', '{ channel = 5, arm = "b", polarisation = "V" }',
     "labs.alice.bsm[3].polarisation", None),
    ('name = "example"', 'nmae = "example"', "meta.nmae", "'name'"),
    ("[labs.bob]", "[clok]\noffset_ps = 1\n[labs.bob]", "clok", "[clock]"),
])
def test_unknown_keys_are_errors_with_close_matches(old, new, key, near):
    assert old in EXAMPLE
    with pytest.raises(SetupError) as exc:
        loads_setup(EXAMPLE.replace(old, new, 1))
    msg = str(exc.value)
    assert msg.startswith(f"[{key}] unknown")
    if near:
        assert f"did you mean {near}" in msg


def test_unknown_top_level_tables_are_kept():
    s = loads_setup(EXAMPLE + '\n[clock]\noffset_ps = 5\ndrift = 0.0\n[notes]\ntext = "cabled on Monday"\n')
    assert s.extra == {"clock": {"offset_ps": 5, "drift": 0.0}, "notes": {"text": "cabled on Monday"}}


@pytest.mark.parametrize(
    "old,new,key",
    [
        ("threshold = 5", "threshold = 0", "labs.alice.round.threshold"),
        ('trigger = "both"', 'trigger = "sometimes"', "labs.alice.round.trigger"),
        ("window_stop_ps = 100000", "window_stop_ps = 1000", "labs.alice.herald.window_stop_ps"),
        ("setting_channels = [4, 5]", "setting_channels = [4]", "labs.bob.setting_channels"),
        ('{ channel = 5, arm = "b", pol = "V" }', '{ channel = 5, arm = "c", pol = "V" }', "labs.alice.bsm[3].arm"),
        ('{ channel = 5, arm = "b", pol = "V" }', '{ channel = 5, arm = "b", pol = "H" }', "labs.alice.bsm"),
        ('{ channel = 5, arm = "b", pol = "V" }', '{ channel = 5, arm = "b" }', "labs.alice.bsm[3].pol"),
        ("ready_channel = 6", "ready_channel = 7", "labs.alice.setting_channels"),
        ('delays_ps = { "1" = 0, "2" = 120', 'delays_ps = { "1" = 0, "x" = 120', "labs.alice.delays_ps"),
        ('"3" = -80', '"03" = -80, "3" = -80', "labs.alice.delays_ps.3"),
    ],
)
def test_mistakes_are_named_with_key_and_value(old, new, key):
    assert old in EXAMPLE
    with pytest.raises(SetupError) as exc:
        loads_setup(EXAMPLE.replace(old, new, 1))
    assert f"[{key}]" in str(exc.value)


@pytest.mark.parametrize("key", ["herald", "round", "histograms", "bsm.0"])
def test_a_table_that_is_not_a_table_is_named(key):
    d = example()
    lab = d["labs"]["alice"]
    if key == "bsm.0":
        lab["bsm"][0] = 2
    else:
        lab[key] = 5
    with pytest.raises(SetupError, match=r"must be a table \(got"):
        setup_from_dict(d)


def test_setups_the_code_writes_load_back():
    from timetag.simulator import build_setup, load_preset

    for mode in ("conditional", "every"):
        s = build_setup(load_preset("lmu2022").with_overrides(sync_mode=mode), (3, 2))
        assert loads_setup(s.dumps()) == s
    s = loads_setup(EXAMPLE)
    assert setup_from_dict(copy.deepcopy(s.to_dict())) == s


def test_not_toml():
    with pytest.raises(SetupError, match="not valid TOML"):
        loads_setup("[labs\n")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SetupError, match="cannot read"):
        load_setup(tmp_path / "nope.toml")
    with pytest.raises(SetupError, match="directory"):
        load_setup(tmp_path)


def _commented_setup():
    from timetag.simulator import load_preset
    from timetag.simulator.run import build_setup

    text = build_setup(load_preset("lmu2022"), (12, 4)).dumps()
    return ("# Alice and Bob, December run\n"
            + text.replace("threshold = 12", "threshold = 12  # set by hand after the Monday scan"))


def test_an_edit_keeps_comments_and_changes_only_what_changed():
    from dataclasses import replace

    from timetag.setupfile import edit_setup_text

    text = _commented_setup()
    old = loads_setup(text)
    lab = old.lab("alice")
    new = old.with_lab("alice", round=replace(lab.round, threshold=11),
                       delays_ps={**lab.delays_ps, 3: lab.delays_ps[3] + 7})
    out = edit_setup_text(text, new)
    assert loads_setup(out).hash == new.hash
    assert out.startswith("# Alice and Bob, December run\n")
    assert "threshold = 11  # set by hand after the Monday scan" in out
    changed = [(a, b) for a, b in zip(text.splitlines(), out.splitlines()) if a != b]
    assert len(changed) == 2 and len(text.splitlines()) == len(out.splitlines())
    # a new table (the clock of a two-lab calibration) is added, the rest left as it was
    clocked = replace(new, extra={**new.extra, "clock": {"offset_ps": 12.5, "drift": 1e-9}})
    out = edit_setup_text(text, clocked)
    assert loads_setup(out).hash == clocked.hash and "# set by hand" in out


def test_an_edit_that_cannot_say_it_falls_back_to_the_canonical_text():
    from dataclasses import replace

    from timetag.setupfile import edit_setup_text

    text = _commented_setup()
    new = loads_setup(text)
    new = replace(new, extra={k: v for k, v in new.extra.items() if k != "simulation"})  # a table dropped
    assert edit_setup_text(text, new) == new.dumps()
    assert edit_setup_text("not = [valid toml", new) == new.dumps()
