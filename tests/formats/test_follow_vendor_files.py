"""`follow:` on files that vendor software writes live: PicoQuant PTU (T2, T3) and quTAG binary.

Each test writes a real-format file in pieces (the header first with a record count of 0, then records, cut at
arbitrary bytes, also inside the header and inside records) while the source follows it, then checks that the
followed tags equal those of reading the finished file with ``open_tags``.
"""
from __future__ import annotations

import os
import struct
import time
import warnings

import numpy as np
import pytest

from follow_cases import POLL, _drain, _later, _n_tags, _tags
from timetag.chunk import TagChunk, concat
from timetag.errors import DataValidationError, FormatError, TimetagWarning
from timetag.formats import read_all
from timetag.formats.ptu import PtuWriter, write_ptu
from timetag.formats.qutag import HEADER_SIZE, write_qutag_raw
from timetag.live.replay import FollowPtuSource, FollowQutagSource, FollowSource, follow_source


def _quiet_read(path, **kw) -> TagChunk:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TimetagWarning)
        return read_all(path, **kw)


def _followed(batches) -> TagChunk:
    return concat(b.chunks["alice"] for b in batches)


def _feed(path, data: bytes, cuts, finish=None, delay: float = 0.02):
    """Write ``data`` to ``path`` in pieces ending at the byte positions ``cuts`` (a writer in the background),
    then call ``finish`` (the vendor patching its header)."""
    bounds = [0] + sorted(cuts) + [len(data)]
    path.write_bytes(data[:bounds[1]])

    def piece(lo, hi):
        return lambda: (open(path, "ab").write(data[lo:hi]), None)[1]

    steps = [(delay, piece(lo, hi)) for lo, hi in zip(bounds[1:], bounds[2:])]
    if finish is not None:
        steps.append((delay, finish))
    return _later(*steps)


def _patch(path, offset: int, value: bytes):
    def run():
        with open(path, "r+b") as fh:
            fh.seek(offset)
            fh.write(value)
    return run


def _while_recording(data: bytes, field: bytes, width: int = 8) -> tuple[bytes, int]:
    """``data`` with the 8-byte value of PTU header tag ``field`` zeroed (as while recording) and its offset."""
    at = data.index(field.ljust(32, b"\0")) + 40
    return data[:at] + bytes(width) + data[at + width:], at


def _stream(n: int, seed: int, max_step: int = 3_000_000, channels=(0, 1, 2, 64, 100, 101)) -> TagChunk:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(0, max_step, n)).astype(np.int64)
    c = rng.choice(np.array(channels, np.int32), n)
    return TagChunk(t, c)


# ------------------------------------------------------------------------------------------------------ PTU T2
def test_ptu_t2_written_live_by_the_ptu_writer(tmp_path):
    """The project's writer puts the header (0 records) first and the count at close, like the vendor's."""
    whole = _stream(30_000, seed=1)
    path = tmp_path / "live.ptu"
    w = PtuWriter(path)
    w._fh.flush()
    pieces = np.array_split(np.arange(len(whole)), 7)

    def write(idx):
        def run():
            w.write(TagChunk(whole.time[idx], whole.channel[idx]))
            w._fh.flush()
        return run

    writer = _later(*[(0.02, write(idx)) for idx in pieces], (0.02, w.close))
    src = follow_source(path, poll_interval=POLL)
    assert isinstance(src, FollowPtuSource)
    batches, exc = _drain(src, _n_tags(len(whole)), timeout=10)
    writer.join()                                  # the finished file: count patched, closed
    got, ref = _followed(batches), _quiet_read(path)
    assert exc is None and len(ref) == len(whole)
    assert np.array_equal(got.time, ref.time) and np.array_equal(got.channel, ref.channel)
    assert np.array_equal(got.time, whole.time) and np.array_equal(got.channel, whole.channel)
    stats = src.stats()
    assert stats["mode"] == "T2" and stats["n_overflow"] > 0 and stats["backward_steps"] == 0


def test_ptu_cut_inside_the_header_and_inside_records(tmp_path):
    whole = _stream(5_000, seed=2)
    write_ptu(tmp_path / "done.ptu", whole)
    data, at = _while_recording((tmp_path / "done.ptu").read_bytes(), b"TTResult_NumberOfRecords")
    path = tmp_path / "live.ptu"
    rng = np.random.default_rng(5)
    cuts = [5, 60, at + 3] + sorted(rng.integers(at + 50, len(data), 8).tolist())
    writer = _feed(path, data, cuts, finish=_patch(path, at, (tmp_path / "done.ptu").read_bytes()[at:at + 8]))
    src = FollowPtuSource(path, poll_interval=POLL)
    batches, exc = _drain(src, _n_tags(len(whole)), timeout=10)
    writer.join()
    got, ref = _followed(batches), _quiet_read(path)
    assert exc is None and np.array_equal(got.time, ref.time) and np.array_equal(got.channel, ref.channel)
    assert len(ref) == len(whole)
    heartbeats = [b for b in batches if not b.n_tags]
    assert heartbeats                              # it waited (for the header, for records) without an error


# ------------------------------------------------------------------------------------------------------ PTU T3
def _ptu_header(rectype: int, global_res: float, res: float) -> bytes:
    """A PTU header written by hand from formats.md (record count 0, as while recording)."""
    def tag(name, typ, value):
        head = name.encode().ljust(32, b"\0") + struct.pack("<iI", -1, typ)
        return head + (struct.pack("<d", value) if typ == 0x20000008 else struct.pack("<q", value))

    return b"".join([b"PQTTTR\0\0", b"1.0.00\0\0",
                     tag("TTResultFormat_TTTRRecType", 0x10000008, rectype),
                     tag("TTResultFormat_BitsPerRecord", 0x10000008, 32),
                     tag("MeasDesc_GlobalResolution", 0x20000008, global_res),
                     tag("MeasDesc_Resolution", 0x20000008, res),
                     tag("TTResult_NumberOfRecords", 0x10000008, 0),
                     tag("Header_End", 0xFFFF0008, 0)])


def _hh2_t3_records(n: int, seed: int) -> tuple[np.ndarray, list]:
    """HydraHarp v2 T3 records (special bit, 6-bit channel, 15-bit dtime, 10-bit nsync; overflow: special and
    channel 63 with the overflow count in nsync; marker: special and channel 1..15) and the photons as
    (sync index, dtime, channel)."""
    rng = np.random.default_rng(seed)
    words, photons = [], []
    sync, wraps = 0, 0
    for _ in range(n):
        sync += int(rng.integers(0, 3000))
        while sync - wraps * 1024 >= 1024:
            k = min((sync - wraps * 1024) // 1024, 1023)
            words.append((1 << 31) | (63 << 25) | k)
            wraps += k
        nsync = sync - wraps * 1024
        if rng.random() < 0.1:
            words.append((1 << 31) | (int(rng.integers(1, 16)) << 25) | nsync)                  # marker bits
        else:
            ch, dtime = int(rng.integers(0, 4)), int(rng.integers(0, 1 << 15))
            words.append((ch << 25) | (dtime << 10) | nsync)
            photons.append((sync, dtime, ch))
    return np.array(words, "<u4"), photons


def _picoharp_t3_records(n: int, seed: int) -> tuple[np.ndarray, list]:
    """PicoHarp T3 records (4-bit channel, 12-bit dtime, 16-bit nsync; channel 15 with dtime 0 is an overflow of
    65536 syncs, otherwise marker bits; photon channels 1..4)."""
    rng = np.random.default_rng(seed)
    words, photons = [], []
    sync, wraps = 0, 0
    for _ in range(n):
        sync += int(rng.integers(0, 40000))
        while sync - wraps * 65536 >= 65536:
            words.append(15 << 28)
            wraps += 1
        nsync = sync - wraps * 65536
        if rng.random() < 0.1:
            words.append((15 << 28) | (int(rng.integers(1, 16)) << 16) | nsync)
        else:
            ch, dtime = int(rng.integers(1, 5)), int(rng.integers(0, 4096))
            words.append((ch << 28) | (dtime << 16) | nsync)
            photons.append((sync, dtime, ch - 1))
    return np.array(words, "<u4"), photons


@pytest.mark.parametrize("rectype, records", [(0x01010304, _hh2_t3_records), (0x00010303, _picoharp_t3_records)])
def test_ptu_t3_written_by_hand(tmp_path, rectype, records):
    period_s, res_s = 12.5e-9, 25e-12
    words, photons = records(4_000, seed=3)
    head = _ptu_header(rectype, period_s, res_s)
    data = head + words.tobytes()
    path = tmp_path / "t3.ptu"
    at = data.index(b"TTResult_NumberOfRecords".ljust(32, b"\0")) + 40
    cuts = [30, len(head) - 7] + list(range(len(head) + 1001, len(data), 2999))
    done = tmp_path / "done.ptu"
    done.write_bytes(data[:at] + struct.pack("<q", words.size) + data[at + 8:])
    expected = len(read_all(done))
    writer = _feed(path, data, cuts, finish=_patch(path, at, struct.pack("<q", words.size)))
    src = follow_source(path, poll_interval=POLL)
    assert isinstance(src, FollowPtuSource)
    batches, exc = _drain(src, _n_tags(expected), timeout=10)
    writer.join()
    got, ref = _followed(batches), read_all(path)
    assert path.read_bytes() == done.read_bytes()
    assert exc is None and src.stats()["mode"] == "T3"
    assert np.array_equal(got.time, ref.time) and np.array_equal(got.channel, ref.channel)
    # the photons, by hand: sync index x period + dtime x resolution
    want = [(s * 12500 + d * 25, c) for s, d, c in photons]
    ph = got.channel < 64
    assert list(zip(got.time[ph].tolist(), got.channel[ph].tolist())) == want
    assert (got.channel >= 100).any()


@pytest.mark.parametrize("name", ["pqsd_hydraharp_v20_t3.ptu", "tdctoolkit_multiharp160_1min_ch1_t2.ptu",
                                  "eta_200204_qutag_320MHz_HBT_sync_filtered.qutag"])
def test_real_files_replayed_as_if_recorded_live(tmp_path, real_data, name):
    """A real instrument file fed in pieces (its header's count/size zeroed until the end, as while recording)."""
    src_path = real_data / name
    final = src_path.read_bytes()
    if name.endswith(".ptu"):
        data, at = _while_recording(final, b"TTResult_NumberOfRecords")
        width = 8
    else:
        at, width = 4, 4
        data = final[:4] + bytes(4) + final[8:]
    path = tmp_path / name
    cuts = list(range(17, len(data), len(data) // 9 + 7))
    writer = _feed(path, data, cuts, finish=_patch(path, at, final[at:at + width]))
    ref = _quiet_read(src_path)
    batches, exc = _drain(follow_source(path, poll_interval=POLL), _n_tags(len(ref)), timeout=20)
    writer.join()
    assert path.read_bytes() == final
    got = _followed(batches)
    assert exc is None and np.array_equal(got.time, ref.time) and np.array_equal(got.channel, ref.channel)


# ---------------------------------------------------------------------------------------------------------- quTAG
def _qutag_bytes(tmp_path, t, c) -> bytes:
    write_qutag_raw(tmp_path / "done.qutag", np.asarray(t), np.asarray(c))
    return (tmp_path / "done.qutag").read_bytes()


def test_qutag_cut_inside_the_header_and_inside_records(tmp_path):
    whole = _stream(3_000, seed=4, channels=(1, 2, 3, 100, 200))
    final = _qutag_bytes(tmp_path, whole.time, whole.channel)
    data = final[:4] + bytes(4) + final[8:]           # the size field: unknown while recording
    path = tmp_path / "live.qutag"
    cuts = [3, 21, HEADER_SIZE + 4] + list(range(HEADER_SIZE + 1003, len(data), 4001))
    writer = _feed(path, data, cuts, finish=_patch(path, 4, final[4:8]))
    src = follow_source(path, poll_interval=POLL)
    assert isinstance(src, FollowQutagSource)
    batches, exc = _drain(src, _n_tags(len(whole)), timeout=10)
    writer.join()
    got, ref = _followed(batches), read_all(path)
    assert exc is None and np.array_equal(got.time, ref.time) and np.array_equal(got.channel, ref.channel)
    assert np.array_equal(got.time, whole.time)


def test_qutag_order_checks_are_the_file_readers(tmp_path):
    final = _qutag_bytes(tmp_path, [0, 10, 20, 15, 30], [1] * 5)
    path = tmp_path / "back.qutag"
    _feed(path, final, [HEADER_SIZE + 20]).join()
    batches, exc = _drain(FollowQutagSource(path, poll_interval=POLL))
    with pytest.raises(DataValidationError) as ref_exc:
        read_all(path)
    assert _tags(batches) == [0, 10, 20] and isinstance(exc, DataValidationError)
    assert str(exc) == str(ref_exc.value) and "record 3" in str(exc) and "byte 70" in str(exc)
    src = FollowQutagSource(path, poll_interval=POLL, on_bad_record="lost")
    with pytest.warns(TimetagWarning):
        batches, exc = _drain(src, _n_tags(4), timeout=2)
    assert exc is None and _tags(batches) == [0, 10, 20, 30] and src.stats()["bad_records"] == 1


def test_qutag_tolerance_releases_the_held_tags_at_the_end(tmp_path, real_data):
    """The real 80 MHz quTAG file steps back by up to 85918 ps: with that tolerance the follower reorders it as
    the file reader does, and the tags it holds back come out when following ends."""
    name = "eta_19_qutag_80MHz_HBT_sync_filtered.qutag"
    path = tmp_path / name
    path.write_bytes((real_data / name).read_bytes())
    src = FollowQutagSource(path, poll_interval=POLL, idle_timeout=0.2, tolerance_ps=85918)
    batches, exc = _drain(src, timeout=10)
    ref = _quiet_read(path, tolerance_ps=85918)
    got = _followed(batches)
    assert exc is None and src.end_reason.startswith("idle timeout")
    assert np.array_equal(got.time, ref.time) and np.array_equal(got.channel, ref.channel)


# --------------------------------------------------------------------------------- the followed file changes
def test_ptu_truncation_rewrite_and_replacement_are_noticed(tmp_path):
    write_ptu(tmp_path / "a.ptu", _stream(100, seed=6))
    data = (tmp_path / "a.ptu").read_bytes()
    path = tmp_path / "run.ptu"
    path.write_bytes(data)
    it = iter(FollowPtuSource(path, poll_interval=POLL))
    assert next(it).n_tags == 100
    with open(path, "r+b") as fh:                   # one record, 2 records before the end, rewritten
        fh.seek(len(data) - 8)
        fh.write(b"\xff\xff\xff\x7f")
    with pytest.raises(DataValidationError, match=f"rewritten while being followed: the record at byte "
                                                  f"{len(data) - 8} changed"):
        next(it)
    path.write_bytes(data)
    src = FollowPtuSource(path, poll_interval=POLL)
    _later((0.05, lambda: os.truncate(path, 100)))
    batches, exc = _drain(src)
    assert isinstance(exc, DataValidationError) and f"truncated from {len(data)} to 100 bytes" in str(exc)

    def replace():
        (tmp_path / "new.ptu").write_bytes(data)
        os.replace(tmp_path / "new.ptu", path)

    _later((0.05, replace))
    batches, exc = _drain(FollowPtuSource(path, poll_interval=POLL))
    assert isinstance(exc, DataValidationError) and "replaced (inode changed" in str(exc)


def test_bad_headers_and_waiting(tmp_path):
    bad = tmp_path / "bad.ptu"
    bad.write_bytes(b"NOTAPTU!" + bytes(100))
    _, exc = _drain(FollowPtuSource(bad, poll_interval=POLL))
    assert isinstance(exc, FormatError) and "wrong magic" in str(exc)
    badq = tmp_path / "bad.qutag"
    badq.write_bytes(b"\x87\xb3\x00")
    _, exc = _drain(FollowQutagSource(badq, poll_interval=POLL))
    assert isinstance(exc, FormatError) and "87 b3 00" in str(exc)
    cut = tmp_path / "cut.ptu"                       # a header that never completes: the idle timeout ends it
    cut.write_bytes(_ptu_header(0x01010304, 1e-8, 1e-12)[:50])
    src = FollowPtuSource(cut, poll_interval=POLL, idle_timeout=0.15)
    batches, exc = _drain(src)
    assert exc is None and src.end_reason.startswith("idle timeout") and not any(b.n_tags for b in batches)


def test_follow_source_picks_the_follower_and_waits_for_the_file(tmp_path):
    for name, cls in [("a.ptu", FollowPtuSource), ("a.qutag", FollowQutagSource), ("a.dump", FollowSource)]:
        assert type(follow_source(tmp_path / name)) is cls
    odd = tmp_path / "recording.dat"                 # magic bytes beat the extension
    write_ptu(odd, _stream(10, seed=7))
    assert type(follow_source(odd)) is FollowPtuSource
    path = tmp_path / "late.qutag"
    final = _qutag_bytes(tmp_path, [5, 6, 7], [1, 2, 3])
    _later((0.1, lambda: path.write_bytes(final)))
    batches, exc = _drain(follow_source(path, poll_interval=POLL, wait_for_file=2.0), _n_tags(3))
    assert exc is None and _tags(batches) == [5, 6, 7]


def test_build_source_follows_ptu_with_the_cli_options(tmp_path):
    from live_cases import toy_setup
    from timetag.live.factory import build_source

    write_ptu(tmp_path / "x.ptu", _stream(10, seed=8))
    src, labs = build_source("follow:" + str(tmp_path / "x.ptu"), toy_setup(), lab="alice", idle_timeout=0.1,
                             on_bad_record="lost")
    assert isinstance(src, FollowPtuSource) and labs == ("alice",)
    t0 = time.monotonic()
    batches = list(src)
    assert sum(b.n_tags for b in batches) == 10 and time.monotonic() - t0 < 5
