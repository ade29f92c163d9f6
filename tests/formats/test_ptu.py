"""PTU reader/writer: real files against ptufile, the Cython kernel against a plain-Python reference, header
errors, chunk-boundary invariance, and the T2 writer."""
from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from timetag.chunk import LOST_DTYPE, TagChunk, concat
from timetag.errors import FormatError, TimetagWarning
from timetag.formats import open_tags, read_all, sniff
from timetag.formats import ptu as P

REAL_PTU = ["pqsd_picoharp300_v30_t2.ptu", "pqsd_hydraharp_v10_t3.ptu", "pqsd_hydraharp_v20_t2.ptu",
            "pqsd_hydraharp_v20_t3.ptu", "tdctoolkit_multiharp160_1min_ch1_t2.ptu",
            "eta_200204_HH400_T2_320MHz_HBT.ptu", "eta_200204_HH400_T3_320MHz_HBT.ptu"]


# ----------------------------------------------------------------------------------- plain-Python reference decoder
def _ps(units, unit_s):
    i, f, _ = P._split_unit(unit_s)
    return units * i + (int(np.floor(units * f + 0.5)) if f else 0)


def reference_decode(rec, rectype, gres_s, res_s):
    """Record-by-record decode written straight from the PicoQuant record description."""
    _, fam, t3 = P.RECORD_TYPES[rectype]
    ofl, out = 0, []

    def markers(bits, t):
        for m in range(4):
            if bits >> m & 1:
                out.append((t, P.MARKER_BASE + m))

    for r in (int(x) for x in rec):
        if fam == P.FAM_PICOHARP and not t3:
            ch, tf = r >> 28, r & 0xFFFFFFF
            if ch == 15:
                if tf & 0xF == 0:
                    ofl += 210698240
                else:
                    markers(tf & 0xF, _ps(ofl + tf, gres_s))
            elif ch <= 4:
                out.append((_ps(ofl + tf, gres_s), ch))
        elif fam == P.FAM_PICOHARP:
            ch, dt, ns = r >> 28, (r >> 16) & 0xFFF, r & 0xFFFF
            if ch == 15:
                if dt == 0:
                    ofl += 65536
                else:
                    markers(dt & 0xF, _ps(ofl + ns, gres_s))
            elif 1 <= ch <= 4:
                out.append((_ps(ofl + ns, gres_s) + _ps(dt, res_s), ch - 1))
        elif not t3:
            sp, ch, tf = r >> 31, (r >> 25) & 63, r & 0x1FFFFFF
            if sp and ch == 63:
                ofl += 33552000 if fam == P.FAM_HH1 else 33554432 * max(tf, 1)
            elif sp and ch == 0:
                out.append((_ps(ofl + tf, gres_s), P.SYNC_CHANNEL))
            elif sp and ch <= 15:
                markers(ch, _ps(ofl + tf, gres_s))
            elif not sp:
                out.append((_ps(ofl + tf, gres_s), ch))
        else:
            sp, ch, dt, ns = r >> 31, (r >> 25) & 63, (r >> 10) & 0x7FFF, r & 0x3FF
            if sp and ch == 63:
                ofl += 1024 if fam == P.FAM_HH1 else 1024 * max(ns, 1)
            elif sp and 1 <= ch <= 15:
                markers(ch, _ps(ofl + ns, gres_s))
            elif not sp:
                out.append((_ps(ofl + ns, gres_s) + _ps(dt, res_s), ch))
    t = np.array([o[0] for o in out], np.int64)
    c = np.array([o[1] for o in out], np.int32)
    return t, c


def _random_records(rng, rectype, n):
    """Random records with plenty of overflows, markers and syncs."""
    _, fam, t3 = P.RECORD_TYPES[rectype]
    r = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    kind = rng.integers(0, 6, n)
    if fam == P.FAM_PICOHARP:
        ovf = (15 << 28) | (rng.integers(0, 2**16, n).astype(np.uint32) if t3 else 0)
        r = np.where(kind == 0, np.uint32(ovf) & np.uint32(0xF000FFFF if t3 else 0xF0000000), r)
    else:
        r = np.where(kind == 0, (np.uint32(1) << 31) | (np.uint32(63) << 25) | rng.integers(0, 4, n).astype(np.uint32),
                     r)
        r = np.where(kind == 1, r | (np.uint32(1) << 31) & ~np.uint32(0x7E000000) | (
            rng.integers(0, 16, n).astype(np.uint32) << 25), r)
    return r.astype(np.uint32)


@pytest.mark.parametrize("rectype", sorted(P.RECORD_TYPES))
def test_kernel_matches_reference_for_every_record_type(rectype):
    rng = np.random.default_rng(rectype & 0xFFFF)
    rec = _random_records(rng, rectype, 3000)
    gres, res = (2.000016e-07, 6.4e-11) if P.RECORD_TYPES[rectype][2] else (4e-12, 4e-12)
    exp_t, exp_c = reference_decode(rec, rectype, gres, res)
    dec = P._RecordDecoder(P.RECORD_TYPES[rectype][1], P.RECORD_TYPES[rectype][2], gres, res)
    t, c = dec.decode(rec)
    np.testing.assert_array_equal(c, exp_c)
    np.testing.assert_array_equal(t, exp_t)
    assert dec.counters["n_overflow"] > 0


@pytest.mark.parametrize("rectype", sorted(P.RECORD_TYPES))
def test_kernel_matches_ptufile_decode_loops(rectype):
    """Photons (and their overflow bookkeeping) agree with ptufile's own decode loops on random records."""
    pf = pytest.importorskip("ptufile")
    from ptufile._ptufile import decode_t2_records, decode_t3_records

    _, fam, t3 = P.RECORD_TYPES[rectype]
    rng = np.random.default_rng(7)
    rec = _random_records(rng, rectype, 4000)
    if fam != P.FAM_PICOHARP:
        # ptufile reports a T2 sync as channel 0 and leaves special records with channels 0 (T3), 16..62 as
        # zero-filled "photons": keep those out of the comparison
        sp, ch = rec >> 31 == 1, (rec >> 25) & 63
        rec = rec[~(sp & ((ch == 0) | ((ch > 15) & (ch < 63))))]
        # ...and multiplies overflow counts in 32 bits: keep counts below 128 (see ptu._MAX_OFL_COUNT)
        ovf = (rec >> 31 == 1) & (((rec >> 25) & 63) == 63)
        rec = np.where(ovf, rec & np.uint32(0xFE00007F if not t3 else 0xFFFFFC7F), rec).astype(np.uint32)
    if fam == P.FAM_PICOHARP:                  # PicoHarp inputs: T2 0..4, T3 1..4 (we drop others as invalid)
        ch = rec >> 28
        rec = rec[(ch == 15) | ((ch >= 1) & (ch <= 4)) | ((ch == 0) & (not t3))]
    out = np.zeros(rec.size, pf.ptufile.T3_RECORD_DTYPE if t3 else pf.ptufile.T2_RECORD_DTYPE)
    (decode_t3_records if t3 else decode_t2_records)(out, rec, rectype)
    ph = out[(out["channel"] >= 0) & (out["marker"] == 0)]
    dec = P._RecordDecoder(fam, t3, 1e-12, 1e-12)
    t, c = dec.decode(rec)
    photon = c < P.SYNC_CHANNEL
    exp = ph["time"].astype(np.int64) + (ph["dtime"].astype(np.int64) if t3 else 0)
    np.testing.assert_array_equal(t[photon], exp)
    np.testing.assert_array_equal(c[photon], ph["channel"].astype(np.int32))


def reference_counts(rec, rectype) -> dict:
    """Record kinds counted straight from the record description (what the decoder's counters must say)."""
    _, fam, t3 = P.RECORD_TYPES[rectype]
    r = np.asarray(rec, np.uint64)
    if fam == P.FAM_PICOHARP:
        ch = r >> 28
        low = (r >> 16) & 0xFFF if t3 else r & 0xF
        ovf, mark = (ch == 15) & (low == 0), (ch == 15) & (low != 0)
        photon = ((ch >= 1) & (ch <= 4)) if t3 else (ch <= 4)
        sync = np.zeros(r.size, bool)
    else:
        sp, ch = (r >> 31) == 1, (r >> 25) & 63
        ovf, mark, photon = sp & (ch == 63), sp & (ch >= 1) & (ch <= 15), ~sp
        sync = sp & (ch == 0) if not t3 else np.zeros(r.size, bool)
    n = {"n_overflow": ovf, "n_marker": mark, "n_sync": sync, "n_photon": photon}
    n = {k: int(v.sum()) for k, v in n.items()}
    n["n_invalid"] = r.size - sum(n.values())
    return n


# integer ps units take the loops without the fractional part; 2.5 ps, 0.2 us + 16 fs and 64 ps + 0.5 fs do not
UNITS = {False: [(4e-12, 4e-12), (2.5e-12, 2.5e-12)], True: [(2e-07, 6.4e-11), (2.000016e-07, 6.40005e-11)]}


@pytest.mark.parametrize("units", [0, 1], ids=["exact", "fractional"])
@pytest.mark.parametrize("rectype", sorted(P.RECORD_TYPES))
def test_kernel_counters_and_units(rectype, units):
    """Both unit variants of every record type's loop: tags as the reference, and every counter."""
    _, fam, t3 = P.RECORD_TYPES[rectype]
    gres, res = UNITS[t3][units]
    rng = np.random.default_rng(rectype & 0xFFFF + 17 * units)
    rec = _random_records(rng, rectype, 5000)
    dec = P._RecordDecoder(fam, t3, gres, res)
    assert (dec.g_frac == 0 and dec.r_frac == 0) == (units == 0)
    t, c = dec.decode(rec)
    exp_t, exp_c = reference_decode(rec, rectype, gres, res)
    np.testing.assert_array_equal(c, exp_c)
    np.testing.assert_array_equal(t, exp_t)
    assert dec.counters == reference_counts(rec, rectype)


def _overflow_runs(rectype, rng, n_runs=40):
    """Photons (and markers) separated by runs of 1..6 overflow records, HydraHarp v2 counts 0 (= 1), 1 and large."""
    _, fam, t3 = P.RECORD_TYPES[rectype]
    out = []
    for _ in range(n_runs):
        for _ in range(int(rng.integers(1, 7))):
            if fam == P.FAM_PICOHARP:
                out.append((15 << 28) | (int(rng.integers(0, 2**16)) if t3 else 0))
            else:
                out.append((1 << 31) | (63 << 25) | int(rng.choice([0, 1, 2, 1000])))
        for _ in range(int(rng.integers(0, 3))):
            if fam == P.FAM_PICOHARP:
                ch = int(rng.integers(1, 5))
                out.append((ch << 28) | int(rng.integers(0, 2**28 if not t3 else 2**16)))
            else:
                out.append((int(rng.integers(0, 8)) << 25) | int(rng.integers(0, 2**25)))
        if rng.random() < 0.2:      # a marker between runs
            out.append((15 << 28) | (3 << 16 if t3 else 5) if fam == P.FAM_PICOHARP else (1 << 31) | (9 << 25) | 77)
    return np.array(out, np.uint32)


@pytest.mark.parametrize("rectype", sorted(P.RECORD_TYPES))
def test_chunk_boundaries_inside_overflow_runs(rectype):
    """Cut the records at every position (inside runs of overflow records too): the same tags and counters."""
    _, fam, t3 = P.RECORD_TYPES[rectype]
    rec = _overflow_runs(rectype, np.random.default_rng(rectype & 0xFFFF))
    gres, res = UNITS[t3][0]
    exp_t, exp_c = reference_decode(rec, rectype, gres, res)
    counts = reference_counts(rec, rectype)
    for cut in range(rec.size + 1):
        dec = P._RecordDecoder(fam, t3, gres, res)
        a, b = dec.decode(rec[:cut]), dec.decode(rec[cut:])
        np.testing.assert_array_equal(np.concatenate([a[0], b[0]]), exp_t)
        np.testing.assert_array_equal(np.concatenate([a[1], b[1]]), exp_c)
        assert dec.counters == counts


@pytest.mark.parametrize("cap", [4, 5, 6, 7, 9, 64])
@pytest.mark.parametrize("rectype", [0x00010203, 0x00010303, 0x01010204, 0x01010304])
def test_kernel_stops_when_output_is_full_and_resumes(rectype, cap):
    """A small output buffer (>= 4 slots, what one marker record may need): the kernel stops before overrunning
    it and the next call goes on from the first record it did not consume."""
    from timetag._cext import fmt_ptu

    _, fam, t3 = P.RECORD_TYPES[rectype]
    rng = np.random.default_rng(cap)
    rec = _random_records(rng, rectype, 600)
    # records whose marker bits are all set: 4 tags each
    all4 = np.uint32((15 << 28) | (15 << 16 if t3 else 15)) if fam == P.FAM_PICOHARP else \
        np.uint32((1 << 31) | (15 << 25) | 5)
    rec[::7] = all4
    gres, res = UNITS[t3][0]
    exp_t, exp_c = reference_decode(rec, rectype, gres, res)
    dec = P._RecordDecoder(fam, t3, gres, res)
    ts, cs, done = [], [], 0
    while done < rec.size:
        out_t, out_c, out_d = (np.full(cap + 3, -7, np.int64), np.full(cap + 3, -7, np.int32),
                               np.full(cap + 3, -7, np.int32))
        if t3:
            used, w = fmt_ptu.decode_t3(rec[done:], fam, dec.g_int, dec.g_frac, dec.r_int, dec.r_frac, dec.state,
                                        out_t[:cap], out_c[:cap], out_d[:cap])
        else:
            used, w = fmt_ptu.decode_t2(rec[done:], fam, dec.g_int, dec.g_frac, dec.state, out_t[:cap], out_c[:cap])
        assert (out_t[cap:] == -7).all() and (out_c[cap:] == -7).all() and (out_d[cap:] == -7).all()
        assert 0 < used and w <= cap
        ts.append(out_t[:w])
        cs.append(out_c[:w])
        done += used
    np.testing.assert_array_equal(np.concatenate(ts), exp_t)
    np.testing.assert_array_equal(np.concatenate(cs), exp_c)
    assert dec.counters == reference_counts(rec, rectype)


def test_kernel_rejects_unknown_family():
    from timetag._cext import fmt_ptu

    out = np.zeros(8, np.int64), np.zeros(8, np.int32)
    with pytest.raises(ValueError, match="family 7"):
        fmt_ptu.decode_t2(np.zeros(4, np.uint32), 7, 1, 0.0, np.zeros(6, np.int64), *out)


# ------------------------------------------------------------------------------------------------------ real files
@pytest.mark.peer
@pytest.mark.parametrize("name", REAL_PTU)
def test_real_file_equals_ptufile(real_data, name):
    ptufile = pytest.importorskip("ptufile")
    fn = real_data / name
    assert sniff(fn) == "ptu"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = ptufile.PtuFile(fn).decode_records()
    ph = d[d["channel"] >= 0]
    reader = open_tags(fn, chunk_size=50_000)
    got = concat(reader)
    tt = ph["time"].astype(np.int64)
    if reader.is_t3:
        dt = ph["dtime"].astype(np.int64)
        exp = _vec_ps(tt, reader.global_resolution_s) + _vec_ps(dt, reader.resolution_s)
    else:
        exp = _vec_ps(tt, reader.global_resolution_s)
    np.testing.assert_array_equal(got.channel, ph["channel"].astype(np.int32))
    np.testing.assert_array_equal(got.time, exp)
    assert reader.records == d.size
    assert reader.meta["n_photon"] == ph.size


def _vec_ps(units, unit_s):
    i, f, _ = P._split_unit(unit_s)
    return units * i + (np.floor(units * f + 0.5).astype(np.int64) if f else 0)


def test_real_figures_from_sources(real_data):
    """SOURCES.md: HydraHarp v2 T2 photon count and sum of photon times (1 ps units)."""
    c = read_all(real_data / "pqsd_hydraharp_v20_t2.ptu")
    assert len(c) == 305565
    assert int(c.time.sum()) == 763828286071656274
    assert c.time[:5].tolist() == [24433765, 42010976, 42303858, 65241860, 71933885]
    pico = read_all(real_data / "pqsd_picoharp300_v30_t2.ptu")   # 4 ps units
    assert np.bincount(pico.channel).tolist() == [531477, 388700]
    assert int((pico.time // 4).sum()) == 893490934609771172


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_real_file_chunking_invariant(real_data, chunk):
    fn = real_data / "pqsd_hydraharp_v10_t3.ptu"
    whole = read_all(fn)
    r = open_tags(fn, chunk_size=chunk)
    parts = list(r.iter_chunks(stop=20_000))
    head = concat(parts)
    np.testing.assert_array_equal(head.time, whole.time[:len(head)])
    assert parts[-1].offset + len(parts[-1]) == len(head)


def test_iter_chunks_start_carries_overflow(real_data):
    fn = real_data / "pqsd_hydraharp_v20_t2.ptu"
    r = open_tags(fn, chunk_size=10_000)
    whole = read_all(fn)
    tail = concat(r.iter_chunks(start=200_000))
    np.testing.assert_array_equal(tail.time, whole.time[-len(tail):])


# ------------------------------------------------------------------------------------------------- chunk invariance
@given(st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=300), st.integers(1, 40),
       st.sampled_from(sorted(P.RECORD_TYPES)))
def test_decode_independent_of_chunking(words, step, rectype):
    rec = np.array(words, np.uint32)
    _, fam, t3 = P.RECORD_TYPES[rectype]
    whole = P._RecordDecoder(fam, t3, 2.5e-12, 1.6e-11).decode(rec)
    dec = P._RecordDecoder(fam, t3, 2.5e-12, 1.6e-11)
    parts = [dec.decode(rec[i:i + step]) for i in range(0, rec.size, step)]
    t = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    c = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
    np.testing.assert_array_equal(t, whole[0])
    np.testing.assert_array_equal(c, whole[1])


# ---------------------------------------------------------------------------------------------------- bad headers
def _header(*tags, magic=P.MAGIC):
    return magic + b"1.0.00\0\0" + b"".join(tags)


def _minimal_tags(nrec=None):
    tags = [P._tag("TTResultFormat_TTTRRecType", P.TY_INT8, 0x01010204),
            P._tag("MeasDesc_GlobalResolution", P.TY_FLOAT8, 1e-12)]
    if nrec is not None:
        tags.append(P._tag("TTResult_NumberOfRecords", P.TY_INT8, nrec))
    return tags + [P._tag("Header_End", P.TY_EMPTY8, 0)]


def test_header_cut_short_names_offset(tmp_path):
    full = _header(P._tag("File_Comment", P.TY_ANSISTRING, "a comment that is long enough"), *_minimal_tags())
    for cut in (10, 16 + 20, 16 + 48 + 5, len(full) - 3):
        fn = tmp_path / f"cut{cut}.ptu"
        fn.write_bytes(full[:cut])
        with pytest.raises(FormatError, match=r"cut short") as ei:
            open_tags(fn)
        assert ei.value.offset is not None and ei.value.offset <= cut


def test_unknown_tag_type_code_is_named(tmp_path):
    bad = struct.pack("<32siI", b"Weird_Tag".ljust(32, b"\0"), -1, 0x30000008) + b"\0" * 8
    fn = tmp_path / "bad.ptu"
    fn.write_bytes(_header(bad, *_minimal_tags()))
    with pytest.raises(FormatError, match=r"Weird_Tag.*0x30000008"):
        open_tags(fn)


def test_wrong_magic_with_ptu_extension(tmp_path):
    fn = tmp_path / "x.ptu"
    fn.write_bytes(b"NOTPTU\0\0" + b"\0" * 100)
    with pytest.raises(FormatError, match="magic"):
        open_tags(fn)


def test_unsupported_record_type(tmp_path):
    fn = tmp_path / "x.ptu"
    fn.write_bytes(_header(P._tag("TTResultFormat_TTTRRecType", P.TY_INT8, 0x00010999),
                           P._tag("MeasDesc_GlobalResolution", P.TY_FLOAT8, 1e-12),
                           P._tag("Header_End", P.TY_EMPTY8, 0)))
    with pytest.raises(FormatError, match="0x00010999"):
        open_tags(fn)


def test_truncated_final_record_warns_and_keeps_rest(tmp_path):
    rec = np.array([(1 << 25) | 5, (2 << 25) | 9], np.uint32)
    fn = tmp_path / "t.ptu"
    fn.write_bytes(_header(*_minimal_tags()) + rec.tobytes() + b"\x01\x02")
    with pytest.warns(TimetagWarning, match="2 trailing bytes"):
        c = read_all(fn)
    assert c.time.tolist() == [5, 9] and c.channel.tolist() == [1, 2]


def test_declared_more_records_than_present_warns(tmp_path):
    rec = np.array([(1 << 25) | 5], np.uint32)
    fn = tmp_path / "t.ptu"
    fn.write_bytes(_header(*_minimal_tags(nrec=10)) + rec.tobytes())
    with pytest.warns(TimetagWarning, match="declares 10 records"):
        c = read_all(fn)
    assert len(c) == 1


# ---------------------------------------------------------------------------------------------------------- writer
def _stream(rng, n=2000):
    t = np.cumsum(rng.integers(0, 10**8, n)).astype(np.int64)
    t[n // 2:] += 10**11           # a 0.1 s gap needs several overflow records
    c = rng.choice([0, 1, 5, P.SYNC_CHANNEL, P.MARKER_BASE, P.MARKER_BASE + 3], n).astype(np.int32)
    return TagChunk(t, c)


def test_writer_round_trip_and_ptufile_reads_it(tmp_path):
    ch = _stream(np.random.default_rng(1))
    fn = tmp_path / "w.ptu"
    P.write_ptu(fn, [ch.__class__(ch.time[:700], ch.channel[:700]), ch.__class__(ch.time[700:], ch.channel[700:])])
    back = read_all(fn)
    np.testing.assert_array_equal(back.time, ch.time)
    np.testing.assert_array_equal(back.channel, ch.channel)
    ptufile = pytest.importorskip("ptufile")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = ptufile.PtuFile(fn).decode_records()
    photons = ch.channel < P.SYNC_CHANNEL
    ph = d[(d["channel"] >= 0) & (d["marker"] == 0)]
    # ptufile also reports the sync as channel 0 in T2; photons + syncs in ptufile order
    keep = photons | (ch.channel == P.SYNC_CHANNEL)
    np.testing.assert_array_equal(ph["time"].astype(np.int64), ch.time[keep])


def test_writer_refuses_lost_data_unless_dropped(tmp_path):
    lost = np.zeros(1, LOST_DTYPE)
    lost["time"], lost["kind"] = 5, 1
    ch = TagChunk(np.array([1, 10]), np.array([0, 1]), lost)
    with pytest.raises(FormatError, match="lost-data"):
        P.write_ptu(tmp_path / "a.ptu", ch)
    P.write_ptu(tmp_path / "b.ptu", ch, drop_lost=True)
    assert read_all(tmp_path / "b.ptu").time.tolist() == [1, 10]


@pytest.mark.parametrize("time,channel,msg", [([5, 3], [0, 0], "earlier"), ([-1], [0], "negative"),
                                              ([1], [70], "channel 70")])
def test_writer_rejects_unrepresentable(tmp_path, time, channel, msg):
    with pytest.raises(FormatError, match=msg):
        P.write_ptu(tmp_path / "a.ptu", TagChunk(np.array(time), np.array(channel)))


def test_written_file_is_described_by_ptufile_with_its_guid(tmp_path):
    """PicoQuant files name themselves by a GUID; ptufile's description of a file needs it."""
    ptufile = pytest.importorskip("ptufile")
    ch = TagChunk(np.array([5, 1_000, 2**40], np.int64), np.array([1, 2, 1], np.int32))
    P.write_ptu(tmp_path / "a.ptu", ch)
    P.write_ptu(tmp_path / "b.ptu", ch)
    guids = []
    for name in ("a.ptu", "b.ptu"):
        with ptufile.PtuFile(tmp_path / name) as f:
            assert "HydraHarp2T2" in str(f)
            guids.append(f.tags["File_GUID"])
            np.testing.assert_array_equal(f.decode_records()["time"][f.decode_records()["channel"] >= 0][:3],
                                          ch.time)
    assert guids[0] != guids[1] and all(g.startswith("{") and len(g) == 38 for g in guids)
