import pytest

from timetag.errors import SetupError
from timetag.setupfile import loads_setup

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
delays_ps = { "2" = 120, "3" = -80 }
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
[labs.alice.round]
trigger = "both"
threshold = 5

[labs.bob]
role = "bob"
ready_channel = 3
setting_channels = [4, 5]
fluorescence_channels = [1]
[labs.bob.round]
trigger = "ready"
"""


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


@pytest.mark.parametrize(
    "old,new,key",
    [
        ("threshold = 5", "threshold = 0", "labs.alice.round.threshold"),
        ('trigger = "both"', 'trigger = "sometimes"', "labs.alice.round.trigger"),
        ("window_stop_ps = 100000", "window_stop_ps = 1000", "labs.alice.herald.window_stop_ps"),
        ("setting_channels = [4, 5]", "setting_channels = [4]", "labs.bob.setting_channels"),
        ('{ channel = 5, arm = "b", pol = "V" }', '{ channel = 5, arm = "c", pol = "V" }', "labs.alice.bsm[3].arm"),
        ('{ channel = 5, arm = "b", pol = "V" }', '{ channel = 5, arm = "b", pol = "H" }', "labs.alice.bsm"),
        ("ready_channel = 6", "ready_channel = 7", "labs.alice.setting_channels"),
        ("sync_channel = 1\n", "sync_channel = 1\nsync_chanel = 2\n", "labs.alice.sync_chanel"),
        ('delays_ps = { "2" = 120', 'delays_ps = { "x" = 120', "labs.alice.delays_ps"),
    ],
)
def test_mistakes_are_named_with_key_and_value(old, new, key):
    assert old in EXAMPLE
    with pytest.raises(SetupError) as exc:
        loads_setup(EXAMPLE.replace(old, new, 1))
    assert f"[{key}]" in str(exc.value)


def test_not_toml():
    with pytest.raises(SetupError, match="not valid TOML"):
        loads_setup("[labs\n")


def test_missing_file_and_directory(tmp_path):
    from timetag.setupfile import load_setup

    with pytest.raises(SetupError, match="cannot read"):
        load_setup(tmp_path / "nope.toml")
    with pytest.raises(SetupError, match="directory"):
        load_setup(tmp_path)
