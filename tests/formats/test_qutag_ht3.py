"""quTAG and legacy HT3 readers against SOURCES.md figures, checked with independent numpy decoding."""
from __future__ import annotations

import numpy as np
import pytest

from timetag.chunk import concat
from timetag.errors import DataValidationError, FormatError, TimetagWarning
from timetag.formats import open_tags, read_all, sniff
from timetag.formats.qutag import write_qutag_raw

Q19 = "eta_19_qutag_80MHz_HBT_sync_filtered.qutag"
Q200 = "eta_200204_qutag_320MHz_HBT_sync_filtered.qutag"


def _raw_qutag(fn):
    raw = np.fromfile(fn, dtype=np.uint8, offset=40)
    raw = raw[: raw.size - raw.size % 10].reshape(-1, 10)
    t = raw[:, :8].copy().view("<u8").ravel()
    c = raw[:, 8:].copy().view("<u2").ravel()
    return t, c


def test_qutag_monotonic_file_matches_sources(real_data):
    fn = real_data / Q200
    assert sniff(fn) == "qutag"
    c = read_all(fn, chunk_size=10_000)
    t, ch = _raw_qutag(fn)
    assert len(c) == 211773 == t.size
    assert dict(zip(*np.unique(c.channel, return_counts=True))) == {1: 43736, 2: 62437, 5: 105600}
    assert sum(int(x) for x in c.time) == 72498913685837957200462
    np.testing.assert_array_equal(c.time, t.astype(np.int64))
    np.testing.assert_array_equal(c.channel, ch)


def test_qutag_backward_steps_raise_with_record_index(real_data):
    fn = real_data / Q19
    t, _ = _raw_qutag(fn)
    first = int(np.flatnonzero(np.diff(t.astype(np.int64)) < 0)[0]) + 1
    with pytest.raises(DataValidationError, match=f"record {first}: time goes backwards"):
        read_all(fn, chunk_size=777)


def test_qutag_pass_through_counts_steps(real_data):
    fn = real_data / Q19
    r = open_tags(fn, check_order=False, chunk_size=1000)
    c = concat(r)
    t, ch = _raw_qutag(fn)
    np.testing.assert_array_equal(c.time, t.astype(np.int64))
    d = np.diff(t.astype(np.int64))
    assert r.meta["backward_steps"] == int((d < 0).sum()) == 173
    assert r.meta["max_backward_ps"] == int(-d.min()) == 85918
    assert sum(int(x) for x in c.time) == 69677744818221826875519


@pytest.mark.parametrize("chunk", [97, 5000, 10**6])
def test_qutag_tolerance_gives_stable_sort(real_data, chunk):
    fn = real_data / Q19
    t, ch = _raw_qutag(fn)
    order = np.argsort(t, kind="stable")
    c = read_all(fn, tolerance_ps=86_000, chunk_size=chunk)
    np.testing.assert_array_equal(c.time, t[order].astype(np.int64))
    np.testing.assert_array_equal(c.channel, ch[order])
    with pytest.raises(DataValidationError, match="tolerance 50000 ps"):
        read_all(fn, tolerance_ps=50_000, chunk_size=chunk)


def test_qutag_truncated_record_and_wrong_magic(tmp_path):
    fn = tmp_path / "a.qutag"
    write_qutag_raw(fn, np.array([5, 9, 12]), np.array([1, 2, 1]))
    with open(fn, "ab") as fh:
        fh.write(b"\1\2\3")
    with pytest.warns(TimetagWarning, match="3 trailing bytes"):
        c = read_all(fn)
    assert c.time.tolist() == [5, 9, 12] and c.channel.tolist() == [1, 2, 1]
    bad = tmp_path / "b.qutag"
    bad.write_bytes(b"\0\0\0\0" + fn.read_bytes()[4:])
    with pytest.raises(FormatError, match="magic"):
        open_tags(bad)


# --------------------------------------------------------------------------------------------------------- HT3
def _raw_ht3(fn, v1):
    """Independent numpy decode: (nsync incl. overflow, dtime, channel) of photons."""
    rec = np.fromfile(fn, dtype="<u4", offset=800).astype(np.int64)
    sp, ch, dt, ns = rec >> 31, (rec >> 25) & 63, (rec >> 10) & 0x7FFF, rec & 0x3FF
    ovf = (sp == 1) & (ch == 63)
    add = np.where(ovf, 1024 if v1 else 1024 * np.where(ns == 0, 1, ns), 0)
    base = np.cumsum(add)
    ph = sp == 0
    return (base + ns)[ph], dt[ph], ch[ph], int(ovf.sum())


@pytest.mark.parametrize("name,v1,counts,sum_t,sum_dt,ovf", [
    ("pqsd_hydraharp_v20.ht3", False, [7102, 26648, 3085, 7306], 194796140678, 724129937, 9465),
    ("pqsd_hydraharp_v10.ht3", True, [6, 9, 3, 14], 16404144, 429564, 1018),
])
def test_ht3_matches_sources(real_data, name, v1, counts, sum_t, sum_dt, ovf):
    fn = real_data / name
    assert sniff(fn) == "ht3"
    ns, dt, ch, n_ovf = _raw_ht3(fn, v1)
    assert int(ns.sum()) == sum_t and int(dt.sum()) == sum_dt and n_ovf == ovf
    with pytest.warns(TimetagWarning) if v1 else _nullctx():
        r = open_tags(fn, chunk_size=333)
    chunks = list(r.iter_chunks(with_dtime=True))
    t = np.concatenate([c.time for c in chunks])
    got_ch = np.concatenate([c.channel for c in chunks])
    got_dt = np.concatenate([c.dtime for c in chunks])
    assert np.bincount(got_ch).tolist() == counts
    np.testing.assert_array_equal(got_ch, ch)
    np.testing.assert_array_equal(got_dt, dt)
    sync_ps = round(1e12 / r.header["sync_rate_hz"], 6)
    si, sf = int(np.floor(sync_ps)), round(sync_ps - np.floor(sync_ps), 6)
    res = r.header["resolution_ps"]
    exp = ns * si + np.floor(ns * sf + 0.5).astype(np.int64) + dt * int(res)
    np.testing.assert_array_equal(t, exp)
    assert r.meta["n_overflow"] == ovf


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_ht3_header_cut_short(tmp_path, real_data):
    fn = tmp_path / "cut.ht3"
    fn.write_bytes((real_data / "pqsd_hydraharp_v20.ht3").read_bytes()[:500])
    with pytest.raises(FormatError, match="cut short"):
        open_tags(fn)
