"""`timetag info` and `timetag convert` end to end (in-process, through timetag.cli.main)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from timetag.chunk import LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from timetag.cli import main
from timetag.formats import read_all
from timetag.formats.dump import write_dump


def _run(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    out = capsys.readouterr()
    return ei.value.code or 0, out.out, out.err


def _dump_with_lost(path):
    lost = np.zeros(3, LOST_DTYPE)
    lost["time"], lost["kind"], lost["channel"], lost["count"] = [15, 35, 50], [OVERFLOW_BEGIN, OVERFLOW_END, MISSED], \
        [0, 0, 2], [0, 0, 7]
    t = np.arange(0, 1_000_000, 10, dtype=np.int64)
    c = (np.arange(t.size) % 3).astype(np.int32)
    write_dump(path, TagChunk(t, c, lost))
    return t, c


def test_info_json(tmp_path, capsys):
    fn = tmp_path / "a.dump"
    t, c = _dump_with_lost(fn)
    code, out, _ = _run(["info", str(fn), "--json", "--chunk-size", "777"], capsys)
    assert code == 0
    s = json.loads(out)
    assert s["format"] == "dump" and s["records"] == t.size + 3
    assert s["duration_ps"] == int(t[-1] - t[0])
    assert s["channels"] == {str(k): int(v) for k, v in zip(*np.unique(c, return_counts=True))}
    assert s["lost"][0] == {"kind": "overflow", "start_ps": 15, "end_ps": 35}
    assert s["lost"][1]["kind"] == "missed" and s["lost"][1]["count"] == 7


def test_info_real_qutag_reports_backward_steps(real_data, capsys):
    code, out, _ = _run(["info", str(real_data / "eta_19_qutag_80MHz_HBT_sync_filtered.qutag"), "--json"], capsys)
    s = json.loads(out)
    assert code == 0 and s["records"] == 267801 and s["meta"]["backward_steps"] == 173
    code, out, _ = _run(["info", str(real_data / "pqsd_hydraharp_v20_t3.ptu")], capsys)
    assert code == 0 and "HydraHarp v2 T3" in out and "45012" in out


@pytest.mark.parametrize("make,msg", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.mkdir(), "directory"),
    (lambda p: p.write_bytes(b"nonsense" * 3), "cannot tell the format"),
])
def test_info_bad_input_is_one_line_exit_2(tmp_path, capsys, make, msg):
    fn = tmp_path / "thing"
    make(fn)
    code, out, err = _run(["info", str(fn)], capsys)
    assert code == 2 and msg in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("fmt", ["h5", "text", "ptu", "dump"])
def test_convert_round_trip(tmp_path, capsys, real_data, fmt):
    src = real_data / "pqsd_hydraharp_v20_t3.ptu"
    dst = tmp_path / f"out.{fmt}"
    code, _, err = _run(["convert", str(src), str(dst), "--out-format", fmt, "--chunk-size", "20000"], capsys)
    assert code == 0, err
    a, b = read_all(src), read_all(dst, format=fmt)
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.channel, b.channel)


def test_convert_lost_to_ptu_needs_drop_lost(tmp_path, capsys):
    src, dst = tmp_path / "a.dump", tmp_path / "b.ptu"
    _dump_with_lost(src)
    code, _, err = _run(["convert", str(src), str(dst)], capsys)
    assert code == 2 and "lost-data" in err and not dst.exists()
    code, _, err = _run(["convert", str(src), str(dst), "--drop-lost"], capsys)
    assert code == 0 and "3 lost-data events dropped" in err


def test_convert_qutag_needs_tolerance(tmp_path, capsys, real_data):
    src = real_data / "eta_19_qutag_80MHz_HBT_sync_filtered.qutag"
    code, _, err = _run(["convert", str(src), str(tmp_path / "o.h5")], capsys)
    assert code == 2 and "record" in err and "--tolerance-ps" in err
    code, _, err = _run(["convert", str(src), str(tmp_path / "o.h5"), "--tolerance-ps", "90000"], capsys)
    assert code == 0
    assert np.all(np.diff(read_all(tmp_path / "o.h5").time) >= 0)


def test_convert_swmr_output_is_followable(tmp_path):
    import h5py
    import numpy as np

    from timetag.chunk import TagChunk
    from timetag.formats import read_all, write_tags

    src = tmp_path / "a.dump"
    write_tags(src, [TagChunk(np.arange(1, 1001) * 10, np.arange(1000) % 3)], format="dump")
    from timetag.formats.convert import convert

    convert(src, tmp_path / "a.h5", swmr=True)
    convert(src, tmp_path / "plain.h5")
    # SWMR needs the version-3 superblock (byte 8 of an HDF5 file); the default stays widely readable (version 0)
    assert (tmp_path / "a.h5").read_bytes()[8] == 3 and (tmp_path / "plain.h5").read_bytes()[8] == 0
    with h5py.File(tmp_path / "a.h5", "r", libver="latest", swmr=True) as f:
        assert f["photon_data/timestamps"].shape == (1000,)
    assert np.array_equal(read_all(tmp_path / "a.h5").time, np.arange(1, 1001) * 10)


def test_convert_swmr_refuses_non_hdf5(tmp_path):
    import numpy as np
    import pytest

    from timetag.chunk import TagChunk
    from timetag.formats.convert import convert
    from timetag.errors import SetupError
    from timetag.formats import write_tags

    src = tmp_path / "a.dump"
    write_tags(src, [TagChunk([1, 2], [0, 1])], format="dump")
    with pytest.raises(SetupError, match="HDF5 output only"):
        convert(src, tmp_path / "b.dump", swmr=True)


# --- info: time-order problems (regression: a dump going backwards was "no lost data", rc 0, and process refused it)

def _backward_dump(path):
    t = np.array([0, 10, 20, 15, 30, 5, 40, 50], np.int64)   # two steps back: 20 -> 15, 30 -> 5
    write_dump(path, TagChunk(t, np.ones(t.size, np.int32)))


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 1000])
def test_info_json_reports_backward_steps_whatever_the_chunking(tmp_path, capsys, chunk_size):
    fn = tmp_path / "back.dump"
    _backward_dump(fn)
    code, out, _ = _run(["info", str(fn), "--json", "--chunk-size", str(chunk_size)], capsys)
    o = json.loads(out)["order"]
    assert code == 0
    assert o["backward_steps"] == 2 and o["max_backward_ps"] == 25
    assert o["first_backward"] == {"tag_index": 3, "before_ps": 20, "after_ps": 15}
    assert o["negative_times"] == 0 and o["first_negative"] is None
    assert o["process_checks_order"] is True


def test_info_says_process_will_refuse_a_backward_dump(tmp_path, capsys):
    from timetag.errors import DataValidationError

    fn = tmp_path / "back.dump"
    _backward_dump(fn)
    code, out, _ = _run(["info", str(fn)], capsys)
    assert code == 0
    assert "time goes backwards 2 times (largest step 25 ps); first at tag 3" in out
    assert "15 ps after 20 ps" in out and "timetag process will refuse this file" in out
    assert "no lost data\n" not in out
    with pytest.raises(DataValidationError, match="backwards"):   # what info promises
        read_all(fn)


def test_info_reports_negative_times(tmp_path, capsys):
    fn = tmp_path / "neg.dump"
    t = np.array([-30, -20, 5, 6], np.int64)
    write_dump(fn, TagChunk(t, np.zeros(t.size, np.int32)))
    code, out, _ = _run(["info", str(fn), "--json", "--chunk-size", "1"], capsys)
    o = json.loads(out)["order"]
    assert code == 0 and o["negative_times"] == 2 and o["first_negative"] == {"tag_index": 0, "time_ps": -30}
    assert o["backward_steps"] == 0
    code, out, _ = _run(["info", str(fn)], capsys)
    assert "2 tags have negative times (first: tag 0, -30 ps)" in out


def test_info_clean_file_has_no_order_problems(tmp_path, capsys):
    fn = tmp_path / "a.dump"
    _dump_with_lost(fn)
    code, out, _ = _run(["info", str(fn)], capsys)
    assert code == 0 and "time order: no backward steps, no negative times" in out


def test_info_order_counts_agree_with_the_qutag_reader(real_data, capsys):
    code, out, _ = _run(["info", str(real_data / "eta_19_qutag_80MHz_HBT_sync_filtered.qutag"), "--json",
                         "--chunk-size", "7777"], capsys)
    s = json.loads(out)
    assert s["order"]["backward_steps"] == s["meta"]["backward_steps"] == 173
    assert s["order"]["max_backward_ps"] == s["meta"]["max_backward_ps"] and s["order"]["process_checks_order"]
