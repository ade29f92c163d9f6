"""The setup's [labs.<name>.device] table: parsed strictly, checked against the device before anything is set,
applied, read back and kept for the run's provenance (on the fake Time Tagger)."""
from __future__ import annotations

import copy
import json

import pytest
import tomli_w

from live_cases import toy_setup
from timetag.cli import main
from timetag.errors import SetupError, TimetagError
from timetag.live.device import DeviceError, apply
from timetag.live.fake_swabian import FakeTimeTaggerModule
from timetag.live.swabian import SwabianSource
from timetag.setupfile import ConditionalFilter, DeviceConfig, loads_setup, setup_from_dict

DEVICE = {
    "serial": "1740000FAK",
    "resolution": "Standard",
    "trigger_level_v": {"2": 0.08, "6": 1.0},
    "deadtime_ps": {"2": 20000},
    "hardware_delay_ps": {"6": -1500},
    "event_divider": {"3": 2},
    "test_signal_channels": [2, 3],
}


def _herald_lab(device=None, **herald):
    """An Alice lab with BSM detectors and a sync recorded after each click (sync_reference 'next')."""
    lab = {
        "role": "alice", "sync_channel": 1, "ready_channel": 6, "setting_channels": [7, 8, 9, 10],
        "fluorescence_channels": [2, 3, 4, 5], "delays_ps": {str(c): 0 for c in range(1, 11)},
        "bsm": [{"channel": 2, "arm": "a", "pol": "H"}, {"channel": 3, "arm": "a", "pol": "V"},
                {"channel": 4, "arm": "b", "pol": "H"}, {"channel": 5, "arm": "b", "pol": "V"}],
        "herald": {"sync_reference": "next", "window_start_ps": -19_200_000, "window_stop_ps": -19_100_000,
                   "coincidence_ps": 100_000, **herald},
        "round": {"trigger": "both", "ready_delay_ps": 1_000_000, "ready_tolerance_ps": 50_000,
                  "setting_window_ps": [0, 2_000_000], "fluorescence_window_ps": [5_000_000, 25_000_000],
                  "threshold": 4},
    }
    if device is not None:
        lab["device"] = device
    return {"labs": {"alice": lab}}


def _toy_with_device(device):
    d = toy_setup().to_dict()
    d["labs"]["alice"]["device"] = device
    return d


# --- parsing ----------------------------------------------------------------------------------------------------


def test_device_table_is_parsed_and_round_trips():
    setup = setup_from_dict(_toy_with_device(DEVICE))
    dev = setup.lab("alice").device
    assert dev == DeviceConfig(serial="1740000FAK", resolution="Standard", trigger_level_v={2: 0.08, 6: 1.0},
                               deadtime_ps={2: 20000}, hardware_delay_ps={6: -1500}, event_divider={3: 2},
                               test_signal_channels=(2, 3))
    again = loads_setup(setup.dumps())
    assert again.lab("alice").device == dev and again.hash == setup.hash


def test_a_setup_without_device_table_is_unchanged():
    setup = toy_setup()
    assert setup.lab("alice").device is None
    assert "device" not in setup.dumps()


def test_conditional_filter_table():
    setup = setup_from_dict(_herald_lab({"conditional_filter": {"trigger": [2, 3, 4, 5], "filtered": [1]}}))
    assert setup.lab("alice").device.conditional_filter == ConditionalFilter((2, 3, 4, 5), (1,))


BAD_VALUES = [
    (("trigger_levels_v",), 1,
     r"\[labs\.alice\.device\.trigger_levels_v\] unknown key \(did you mean 'trigger_level_v'\?"),
    (("conditional_filter",), {"trigger": [2], "filterd": [1]},
     r"\[labs\.alice\.device\.conditional_filter\.filterd\] unknown key \(did you mean 'filtered'\?"),
    (("resolution",), "HighRes", r"\[labs\.alice\.device\.resolution\] must be one of 'Standard', 'HighResA'"),
    (("serial",), 1740000, r"\[labs\.alice\.device\.serial\] must be a string"),
    (("trigger_level_v",), {"2": 7.5},
     r"\[labs\.alice\.device\.trigger_level_v\.2\] must be within \+-5 V \(got 7\.5\)"),
    (("trigger_level_v",), {"2": float("nan")}, r"\[labs\.alice\.device\.trigger_level_v\.2\] must be within"),
    (("trigger_level_v",), {"2": "low"}, r"\[labs\.alice\.device\.trigger_level_v\.2\] must be a number of volts"),
    (("deadtime_ps",), {"2": 0}, r"\[labs\.alice\.device\.deadtime_ps\.2\] must be >= 1 \(got 0\)"),
    (("deadtime_ps",), {"2": 2**40}, r"\[labs\.alice\.device\.deadtime_ps\.2\] must be <= 2147483647"),
    (("hardware_delay_ps",), {"6": 1.5}, r"\[labs\.alice\.device\.hardware_delay_ps\.6\] must be an integer"),
    (("event_divider",), {"3": 70000}, r"\[labs\.alice\.device\.event_divider\.3\] must be <= 65535"),
    (("event_divider",), {"x": 2}, r"\[labs\.alice\.device\.event_divider\] keys must be channel numbers"),
    (("event_divider",), {"0": 2}, r"\[labs\.alice\.device\.event_divider\.0\] is not a Time Tagger channel"),
    (("test_signal_channels",), [2, 2], r"\[labs\.alice\.device\.test_signal_channels\] names a channel twice"),
    (("conditional_filter",), {"trigger": [2]}, r"\[labs\.alice\.device\.conditional_filter\.filtered\] is required"),
    (("conditional_filter",), {"trigger": [], "filtered": [1]},
     r"\[labs\.alice\.device\.conditional_filter\.trigger\] needs at least one channel"),
    (("conditional_filter",), {"trigger": [2, 1], "filtered": [1]},
     r"\[labs\.alice\.device\.conditional_filter\.filtered\] a channel cannot be both"),
]


@pytest.mark.parametrize("path, value, message", BAD_VALUES, ids=[f"{c[0][0]}-{i}" for i, c in enumerate(BAD_VALUES)])
def test_invalid_device_values_are_refused_naming_the_key(path, value, message):
    d = _toy_with_device(copy.deepcopy(DEVICE))
    d["labs"]["alice"]["device"][path[0]] = value
    with pytest.raises(SetupError, match=message):
        setup_from_dict(d)


def test_conditional_filter_on_the_sync_needs_the_next_sync_reference():
    d = _herald_lab({"conditional_filter": {"trigger": [2, 3, 4, 5], "filtered": [1]}},
                    sync_reference="previous", window_start_ps=30_000, window_stop_ps=110_000)
    with pytest.raises(SetupError, match=r"\[labs\.alice\.herald\.sync_reference\] the conditional filter on the "
                                         r"sync channel records only the sync after a click.*\(got 'previous'\)"):
        setup_from_dict(d)


def test_every_bsm_detector_must_open_the_conditional_filter():
    with pytest.raises(SetupError, match=r"\[labs\.alice\.device\.conditional_filter\.trigger\] every BSM detector "
                                         r"must open the filter.*missing: 4, 5"):
        setup_from_dict(_herald_lab({"conditional_filter": {"trigger": [2, 3], "filtered": [1]}}))


def test_the_conditional_filter_may_not_drop_tags_that_decide_rounds():
    with pytest.raises(SetupError, match=r"\[labs\.alice\.device\.conditional_filter\.filtered\] channel 7 is the "
                                         r"lab's setting_channels"):
        setup_from_dict(_herald_lab({"conditional_filter": {"trigger": [2, 3, 4, 5], "filtered": [1, 7]}}))


def test_a_window_ending_after_the_sync_on_the_device_is_refused():
    # the clicks reach the device 200 ns after the sync that ends their window: the device passes a later sync
    d = _herald_lab({"conditional_filter": {"trigger": [2, 3, 4, 5], "filtered": [1]}},
                    window_start_ps=-300_000, window_stop_ps=-100_000)
    d["labs"]["alice"]["delays_ps"]["3"] = 200_000
    with pytest.raises(SetupError, match=r"\[labs\.alice\.herald\.window_stop_ps\] with the conditional filter, a "
                                         r"click of channel 3.*must stop at or before -200000"):
        setup_from_dict(d)


# --- applying to the device -------------------------------------------------------------------------------------


def test_config_is_applied_read_back_and_kept_for_the_provenance():
    setup = setup_from_dict(_toy_with_device(DEVICE))
    lab = setup.lab("alice")
    mod = FakeTimeTaggerModule([])
    src = SwabianSource(lab.channels, lab="alice", device=lab.device, module=mod)
    prov = src.provenance()
    json.dumps(prov)  # goes into the rounds files as JSON
    dev = prov["device"]
    tagger = mod.taggers[0]
    assert tagger.getSerial() == dev["serial"] == "1740000FAK" and dev["model"] == "Time Tagger Fake"
    assert tagger.getTriggerLevel(2) == 0.08 and tagger.getDeadtime(2) == 20000
    assert tagger.getDelayHardware(6) == -1500 and tagger.getEventDivider(3) == 2
    assert not tagger.getTestSignal(2)  # not a dry run: the test signal stays off
    ch = dev["channels"]
    assert ch["2"] == {"trigger_level_v": 0.08, "deadtime_ps": 20000, "hardware_delay_ps": 0, "event_divider": 1,
                       "test_signal": False}
    assert ch["6"]["trigger_level_v"] == 1.0 and ch["6"]["hardware_delay_ps"] == -1500 and ch["3"]["event_divider"] == 2
    assert set(ch) == {str(c) for c in lab.channels}  # every streamed channel, configured or not
    assert dev["conditional_filter"] == {"trigger": [], "filtered": []}
    assert dev["requested"] == lab.device.to_dict() and dev["dry_run"] is False
    # the device's own record, as getConfiguration() returned it
    assert dev["configuration"] == json.loads(tagger.getConfiguration())
    assert dev["configuration"]["channels"][0]["number"] == 2
    assert dev["stream"] == {"channels": list(lab.channels), "n_max_events": 20_000_000}
    assert dev["vendor_software"] == mod.getVersion()
    src.close()


def test_no_device_table_sets_nothing_but_records_the_device():
    mod = FakeTimeTaggerModule([])
    src = SwabianSource([2, 6], module=mod)
    dev = src.provenance()["device"]
    assert dev["requested"] is None and dev["channels"]["2"]["trigger_level_v"] == 0.5
    assert json.loads(mod.taggers[0].getConfiguration())["channels"] == []  # nothing was set


def test_dry_run_switches_the_test_signal_on():
    setup = setup_from_dict(_toy_with_device(DEVICE))
    lab = setup.lab("alice")
    mod = FakeTimeTaggerModule([])
    src = SwabianSource(lab.channels, device=lab.device, module=mod, dry_run=True)
    dev = src.provenance()["device"]
    assert dev["dry_run"] is True and dev["channels"]["2"]["test_signal"] and dev["channels"]["3"]["test_signal"]
    assert "dry run" in src.description


def test_a_test_signal_on_a_streamed_channel_is_refused_outside_a_dry_run():
    mod = FakeTimeTaggerModule([])
    tagger = mod.createTimeTagger()
    tagger.setTestSignal(6, True)  # left on by someone
    with pytest.raises(DeviceError, match=r"internal test signal is on for channel\(s\) 6"):
        apply(tagger, None, stream_channels=[2, 6])


def _fake_state(tagger):
    return (dict(tagger._trigger_level), dict(tagger._deadtime), dict(tagger._delay_hw), set(tagger._test_signal),
            dict(tagger._module._filters.divider), tagger.getConditionalFilterTrigger())


@pytest.mark.parametrize("change, message", [
    (("trigger_level_v", {"2": 0.08, "6": 3.0}),
     r"\[labs\.alice\.device\.trigger_level_v\.6\] must be within \[-2\.5, 2\.5\] V on Time Tagger Fake 1740000FAK"),
    (("hardware_delay_ps", {"6": 5_000_000}), r"\[labs\.alice\.device\.hardware_delay_ps\.6\] must be within"),
    (("event_divider", {"19": 2}), r"\[labs\.alice\.device\.event_divider\.19\] channel 19 is not an input of "
                                   r"Time Tagger Fake 1740000FAK \(inputs 1\.\.18\)"),
], ids=["trigger-level", "hardware-delay", "no-such-input"])
def test_values_the_device_cannot_take_are_refused_before_anything_is_set(change, message):
    dev = copy.deepcopy(DEVICE)
    dev[change[0]] = change[1]
    lab = setup_from_dict(_toy_with_device(dev)).lab("alice")
    mod = FakeTimeTaggerModule([])
    src = SwabianSource(lab.channels, lab="alice", device=lab.device, module=mod)
    with pytest.raises(SetupError, match=message):
        src.connect()
    tagger = mod.taggers[0]
    assert _fake_state(tagger) == _fake_state(FakeTimeTaggerModule([]).createTimeTagger())  # untouched
    assert tagger._freed  # and released for the next attempt


def test_a_setting_that_does_not_read_back_is_refused(monkeypatch):
    from timetag.live import fake_swabian

    monkeypatch.setattr(fake_swabian.TimeTagger, "getEventDivider", lambda self, channel: 1)
    lab = setup_from_dict(_toy_with_device(DEVICE)).lab("alice")
    src = SwabianSource(lab.channels, lab="alice", device=lab.device, module=FakeTimeTaggerModule([]))
    with pytest.raises(DeviceError, match=r"\[labs\.alice\.device\.event_divider\.3\] the Time Tagger reports 1 "
                                          r"after being set to 2"):
        src.connect()


def test_serial_from_the_table_and_the_command_line_must_agree():
    dev = DeviceConfig(serial="1740000FAK")
    with pytest.raises(TimetagError, match="--serial 1910000ABC and \\[labs.alice.device.serial\\] 1740000FAK"):
        SwabianSource([2], device=dev, serial="1910000ABC", module=FakeTimeTaggerModule([]))
    mod = FakeTimeTaggerModule([], devices=("1910000ABC", "1740000FAK"))
    src = SwabianSource([2], device=dev, module=mod)
    assert src.provenance()["device"]["serial"] == "1740000FAK"  # the table's device, not the first one found


# --- through the command line -----------------------------------------------------------------------------------


def _cli(argv, capfd):
    with pytest.raises(SystemExit) as ei:
        main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return ei.value.code, out, err


def test_cli_invalid_device_value_is_one_line_before_the_device_is_opened(tmp_path, capfd, monkeypatch):
    import timetag.live.swabian as swabian

    opened = []
    monkeypatch.setattr(swabian, "import_timetagger", lambda: opened.append(1) or FakeTimeTaggerModule([]))
    (tmp_path / "setup.toml").write_text(tomli_w.dumps(_toy_with_device(dict(DEVICE, event_divider={"3": 0}))))
    code, _out, err = _cli(["live", "--source", "swabian", "--setup", tmp_path / "setup.toml", "--lab", "alice",
                            "--out", tmp_path / "out", "--no-view", "--duration", "5"], capfd)
    assert code == 2 and err.strip().count("\n") == 0
    assert "[labs.alice.device.event_divider.3] must be >= 1 (got 0)" in err
    assert not opened and not (tmp_path / "out").exists()


def test_cli_test_signal_without_channels_is_one_line(tmp_path, capfd):
    toy_setup().save(tmp_path / "setup.toml")
    code, _out, err = _cli(["live", "--source", "swabian-fake", "--setup", tmp_path / "setup.toml", "--lab", "alice",
                            "--out", tmp_path / "out", "--no-view", "--test-signal", "--duration", "5"], capfd)
    assert code == 2 and err.strip().count("\n") == 0
    assert "[labs.alice.device] --test-signal needs the channels to feed" in err
    assert not (tmp_path / "out").exists()


def test_cli_device_the_fake_cannot_take_leaves_nothing(tmp_path, capfd):
    (tmp_path / "setup.toml").write_text(setup_from_dict(_toy_with_device(dict(DEVICE, trigger_level_v={"2": 4.0})))
                                         .dumps())
    code, _out, err = _cli(["live", "--source", "swabian-fake", "--setup", tmp_path / "setup.toml", "--lab", "alice",
                            "--out", tmp_path / "out", "--no-view", "--duration", "5"], capfd)
    assert code == 2 and err.strip().count("\n") == 0
    assert "[labs.alice.device.trigger_level_v.2] must be within [-2.5, 2.5] V" in err
    assert not (tmp_path / "out").exists()


def test_live_on_the_configured_fake_stores_the_device_record_and_raw_tags_rederive_the_rounds(tmp_path, capfd):
    """The applied configuration lands in the rounds file's provenance; the raw tags kept by the run give the
    same rounds offline, byte for byte."""
    import numpy as np

    from timetag.roundsfile import read_rounds

    simulator = pytest.importorskip("timetag.simulator")
    simulator.simulate(simulator.load_preset("lmu2022").with_overrides(speedup=20000), 60, 9, tmp_path / "sim")
    setup = tomllib_load(tmp_path / "sim" / "setup.toml")
    setup["labs"]["alice"]["device"] = {"resolution": "Standard", "trigger_level_v": {"2": 0.08, "6": 1.0},
                                        "deadtime_ps": {"3": 20000}, "hardware_delay_ps": {"6": 0}}
    (tmp_path / "dev.toml").write_text(tomli_w.dumps(setup))
    code, _out, err = _cli(["live", "--source", f"swabian-fake:{tmp_path / 'sim' / 'alice.dump'}", "--setup",
                            tmp_path / "dev.toml", "--lab", "alice", "--out", tmp_path / "live", "--speed", "max",
                            "--no-view"], capfd)
    assert code == 0, err
    live = read_rounds(tmp_path / "live" / "alice_rounds.h5")
    device = live.provenance["device"]
    assert device["channels"]["2"]["trigger_level_v"] == pytest.approx(0.08)
    assert device["channels"]["3"]["deadtime_ps"] == 20000
    assert device["requested"]["trigger_level_v"] == {"2": 0.08, "6": 1.0}
    assert json.loads(json.dumps(device["configuration"]))["channels"]
    assert live.provenance["raw_tags"] == ["raw/alice.dump"]
    code, _out, err = _cli(["process", tmp_path / "live" / "raw" / "alice.dump", "--setup", tmp_path / "dev.toml",
                            "--lab", "alice", "--out", tmp_path / "offline.h5", "-q"], capfd)
    assert code == 0, err
    offline = read_rounds(tmp_path / "offline.h5")
    assert len(live.rounds) >= 60
    assert live.rounds.tobytes() == offline.rounds.tobytes()
    assert np.array_equal(live.heralds, offline.heralds)


def tomllib_load(path):
    import tomllib

    return tomllib.loads(path.read_text())
