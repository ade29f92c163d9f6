"""A corpus of bad inputs for every command of the CLI: each must end in one clear line, the right exit code, no
traceback, and with every file that was there before byte-identical (nothing left beside a refused output).

Each case is a row ``(id, argv, exit code, regex on stderr)``, run in-process through :func:`timetag.cli.main`
in a fresh working folder.  ``{fx}`` in argv is the module's shared fixture folder: a tiny simulated run, both
labs' rounds files, hand-made broken tag files and setup files.  Cases named ``bug_*`` pin a bug the corpus found.
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest
import tomli_w

from timetag.cli import main
from timetag.custody import OutputLock

# ------------------------------------------------------------------------------------------------- the fixtures


def _sim(argv: list[str]) -> None:
    try:
        main(argv)
    except SystemExit as exc:
        assert not exc.code, f"fixture command failed: {argv}"


def _bad_dumps(fx: Path) -> None:
    """Copies of Alice's dump with one bad record (record 100) each, and a size that is not a multiple of 16."""
    from timetag.formats.dump import RECORD_DTYPE

    good = np.fromfile(fx / "run" / "alice.dump", dtype=RECORD_DTYPE)
    for name, field, value in (("backwards", "time", None), ("negative", "time", -5),
                               ("unknown_type", "type", 9), ("reserved", "reserved", 1)):
        rec = good.copy()
        rec[100][field] = int(rec[50]["time"]) if value is None else value
        rec.tofile(fx / "bad" / f"{name}.dump")
    (fx / "bad" / "odd_size.dump").write_bytes((fx / "run" / "alice.dump").read_bytes()[:16 * 50 + 7])


def _lost_dump(path: Path) -> None:
    from timetag.chunk import LOST_DTYPE, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
    from timetag.formats.dump import write_dump

    lost = np.zeros(2, LOST_DTYPE)
    lost["time"], lost["kind"] = [150, 350], [OVERFLOW_BEGIN, OVERFLOW_END]
    write_dump(path, TagChunk(np.arange(0, 1000, 10, dtype=np.int64), np.ones(100, np.int32), lost))


def _bad_files(fx: Path) -> None:
    bad = fx / "bad"
    bad.mkdir()
    rng = np.random.default_rng(7)
    garbage = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (bad / "empty.dump").write_bytes(b"")
    (bad / "random.bin").write_bytes(garbage[:4000 - 3])
    (bad / "random").write_bytes(garbage)
    for ext in ("ptu", "h5", "qutag", "ht3"):
        (bad / f"garbage.{ext}").write_bytes(garbage)
    (bad / "garbage.txt").write_text("1 1000\n2 2000\nhello world\n3 x\n")
    (bad / "a_folder.dump").mkdir()
    with h5py.File(bad / "not_tags.h5", "w") as f:
        f.create_dataset("spectrum", data=np.arange(10.0))
    _bad_dumps(fx)
    (bad / "backwards.txt").write_text("1 2000\n1 1000\n")
    (bad / "negative.txt").write_text("1 -5\n1 1000\n")
    (bad / "one_tag.dump").write_bytes((fx / "run" / "alice.dump").read_bytes()[:16])
    _lost_dump(bad / "lost.dump")
    _sim(["convert", str(fx / "run" / "alice.dump"), str(bad / "good.ptu")])
    ptu = (bad / "good.ptu").read_bytes()
    (bad / "header_cut.ptu").write_bytes(ptu[:200])
    damaged = bytearray(ptu)
    damaged[16 + 32 + 4:16 + 32 + 8] = b"\xde\xad\xbe\xef"  # the second header tag's type code
    (bad / "header_damaged.ptu").write_bytes(bytes(damaged))
    (bad / "good.ptu").unlink()


def _incomplete_rounds(fx: Path) -> None:
    """A rounds file whose run was interrupted, and a killed run's partial file (still 'running')."""
    from timetag.custody import Completion
    from timetag.roundsfile import RoundsWriter, read_rounds

    data = read_rounds(fx / "alice.h5")
    w = RoundsWriter(fx / "bad" / "interrupted.h5", lab="alice", role="alice")
    w.append(data.rounds[:10], None)
    w.close(state=Completion.INTERRUPTED, reason="interrupted (Ctrl-C)")
    w = RoundsWriter(fx / "bad" / "empty_rounds.h5", lab="alice", role="alice")
    w.close()
    w = RoundsWriter(fx / "bad" / "eve.h5", lab="eve", role="eve")
    w.append(data.rounds, None)
    w.close()
    w = RoundsWriter(fx / "bad" / "running.h5.partial", lab="alice", role="alice")
    w.append(data.rounds[:5], None)
    w.flush()
    w._f.close()  # as a killed writer leaves it: state 'running', never closed by its writer
    (fx / "bad" / "alice_copy.h5.partial").write_bytes((fx / "alice.h5").read_bytes())
    (fx / "bad" / "garbage.h5.partial").write_bytes((fx / "bad" / "garbage.h5").read_bytes())


def _setups(fx: Path) -> None:
    """Broken variants of the simulated setup: setups/<name>.toml."""
    good = tomllib.loads((fx / "run" / "setup.toml").read_text())
    d = fx / "setups"
    d.mkdir()
    (d / "not_toml.toml").write_text("[labs.alice\nrole = alice\n")
    (d / "empty.toml").write_text("")
    for name, edit in {**SETUP_EDITS, **CLOCK_EDITS}.items():
        s = tomllib.loads(tomli_w.dumps(good))  # a deep copy
        edit(s)
        (d / f"{name}.toml").write_text(tomli_w.dumps(s))


def _drop(dotted: str):
    def edit(s):
        *head, last = f"labs.alice.{dotted}".split(".")
        t = s
        for k in head:
            t = t[k]
        del t[last]
    return edit


def _put(dotted: str, value):
    def edit(s):
        *head, last = dotted.split(".")
        t = s
        for k in head:
            t = t[k]
        t[last] = value
    return edit


def _rename(dotted: str, new: str):
    def edit(s):
        *head, last = dotted.split(".")
        t = s
        for k in head:
            t = t[k]
        t[new] = t.pop(last)
    return edit


REQUIRED = ["role", "setting_channels", "fluorescence_channels", "delays_ps", "round.trigger",
            "round.setting_window_ps", "round.fluorescence_window_ps", "round.threshold",  # ALWAYS_REQUIRED
            "sync_channel", "herald.sync_reference", "herald.window_start_ps", "herald.window_stop_ps",
            "herald.coincidence_ps",  # HERALD_REQUIRED
            "ready_channel", "bsm", "round.ready_delay_ps", "round.ready_tolerance_ps"]  # trigger 'both'

SETUP_EDITS = {
    **{f"missing_{k}": _drop(k) for k in REQUIRED},
    "typo_threshold": _rename("labs.alice.round.threshold", "treshold"),
    "typo_lab_key": _rename("labs.alice.sync_channel", "sync_chanel"),
    "typo_table": _rename("labs", "lab"),
    "threshold_string": _put("labs.alice.round.threshold", "12"),
    "threshold_zero": _put("labs.alice.round.threshold", 0),
    "threshold_bool": _put("labs.alice.round.threshold", True),
    "threshold_float": _put("labs.alice.round.threshold", 4.5),
    "sync_channel_string": _put("labs.alice.sync_channel", "one"),
    "window_reversed": _put("labs.alice.round.fluorescence_window_ps", [25_000_000, -5]),
    "window_one_number": _put("labs.alice.round.setting_window_ps", [234000]),
    "herald_window_after_sync": _put("labs.alice.herald.window_stop_ps", 5000),
    "coincidence_negative": _put("labs.alice.herald.coincidence_ps", -1),
    "ready_delay_negative": _put("labs.alice.round.ready_delay_ps", -1000),
    "unknown_trigger": _put("labs.alice.round.trigger", "sometimes"),
    "unknown_pattern": _put("labs.alice.herald.patterns", ["phi+"]),
    "no_patterns": _put("labs.alice.herald.patterns", []),
    "unknown_sync_reference": _put("labs.alice.herald.sync_reference", "last"),
    "unknown_role": _put("labs.alice.role", "eve"),
    "bsm_same_arm_pol": _put("labs.alice.bsm", [{"channel": 2, "arm": "a", "pol": "H"},
                                                {"channel": 3, "arm": "a", "pol": "H"},
                                                {"channel": 4, "arm": "b", "pol": "H"},
                                                {"channel": 5, "arm": "b", "pol": "V"}]),
    "bsm_same_channel": _put("labs.alice.bsm", [{"channel": 2, "arm": "a", "pol": "H"},
                                                {"channel": 2, "arm": "a", "pol": "V"},
                                                {"channel": 4, "arm": "b", "pol": "H"},
                                                {"channel": 5, "arm": "b", "pol": "V"}]),
    "bsm_bad_arm": _put("labs.alice.bsm", [{"channel": 2, "arm": "c", "pol": "H"},
                                           {"channel": 3, "arm": "a", "pol": "V"}]),
    "bsm_not_table": _put("labs.alice.bsm", [2, 3, 4, 5]),
    "bsm_missing_pol": _put("labs.alice.bsm", [{"channel": 2, "arm": "a"}, {"channel": 3, "arm": "a", "pol": "V"}]),
    "setting_channels_three": _put("labs.alice.setting_channels", [7, 8, 9]),
    "setting_is_sync": _put("labs.alice.setting_channels", [1, 8, 9, 10]),
    "delay_missing_channel": _drop("delays_ps.7"),
    "delay_key_not_number": _put("labs.alice.delays_ps.x", 0),
    "delays_not_table": _put("labs.alice.delays_ps", 5),
    "round_not_table": _put("labs.alice.round", 5),
    "schema_2": _put("meta.schema", 2),
    "labs_empty": _put("labs", {}),
    "hist_bin_zero": _put("labs.alice.histograms.arrival_bin_ps", 0),
}
CLOCK_EDITS = {"clock_not_table": _put("clock", "soon"),
               "clock_inf": _put("clock", {"offset_ps": float("inf"), "drift": 0.0})}

# the fixture files cases may name; listed so that a typo in a row fails loudly instead of testing nothing
FX_FILES = ["run/alice.dump", "run/bob.dump", "run/setup.toml", "run/truth.h5", "alice.h5", "bob.h5"]


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> Path:
    fx = tmp_path_factory.mktemp("bad_inputs")
    _sim(["simulate", "--preset", "lmu2022", "--rounds", "30", "--seed", "1", "--speedup", "20000",
          "--out", str(fx / "run"), "-q"])
    for lab in ("alice", "bob"):
        _sim(["process", str(fx / "run" / f"{lab}.dump"), "--setup", str(fx / "run" / "setup.toml"), "--lab", lab,
              "--out", str(fx / f"{lab}.h5"), "-q", "--no-checksum"])
    _bad_files(fx)
    _incomplete_rounds(fx)
    _setups(fx)
    for p in FX_FILES:
        assert (fx / p).is_file(), p
    return fx


# ------------------------------------------------------------------------------------------------- the checks


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file (and a marker for every folder and link) under the roots."""
    snap = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_symlink():
                snap[str(p)] = "link:" + os.readlink(p)
            elif p.is_dir():
                snap[str(p)] = "dir"
            elif p.is_file():
                snap[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def _prepare(cwd: Path, fx: Path, pre: dict, locks: list) -> None:
    """Files the case needs in its working folder: bytes, 'dir', ('link', target), ('copy', source), or ('lock',)
    for a writer holding that output (its lock is appended to ``locks``)."""
    for rel, what in pre.items():
        p = cwd / _fill(rel, fx)
        p.parent.mkdir(parents=True, exist_ok=True)
        if what == "dir":
            p.mkdir()
        elif isinstance(what, bytes):
            p.write_bytes(what)
        elif what[0] == "link":
            p.symlink_to(_fill(what[1], fx))
        elif what[0] == "copy":
            p.write_bytes(Path(_fill(what[1], fx)).read_bytes())
        elif what[0] == "lock":  # a live writer of that output (released by the test)
            locks.append(OutputLock(p).acquire())
        else:
            raise ValueError(what)


def _fill(s: str, fx: Path) -> str:
    return s.replace("{fx}", str(fx))


def run_cli(argv: list[str], capfd) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ei:
        main(argv)
    out, err = capfd.readouterr()
    code = ei.value.code
    return (0 if code is None else code), out, err


def check_one_error_line(err: str, code: int) -> None:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    if code == 2 and any(ln.startswith("Usage: ") for ln in lines):  # click's own usage block
        assert any("Error: " in ln for ln in lines), err
        return
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("error: "), err


def case(id, argv, code, regex, pre=None, new=None, marks=()):
    """One row.  ``pre``: files made in the working folder first; ``new``: a regex of the working-folder paths
    the failing run may leave (a rounds file marked failed); by default it may leave nothing at all."""
    return pytest.param(argv, code, regex, pre or {}, new, id=id, marks=marks)


D = "{fx}/run/alice.dump"
DB = "{fx}/run/bob.dump"
S = "{fx}/run/setup.toml"
A = "{fx}/alice.h5"
B = "{fx}/bob.h5"
BAD = "{fx}/bad"
PROC = f"process {D} --setup {S} --lab alice -q"
EST = f"estimate {A} {B} --samples 0"
SIM = "simulate --rounds 3 --speedup 20000 -q"
LIVE = f"live --setup {S} --lab alice --no-view --speed max"
OLD = b"old output: must stay byte-identical"
AT_LEAST = r".*(greater than or equal to|not in the range|>=)"  # click's range message (it varies by version)
INPUT_FILES = [  # (name, file, what the message says)
    ("missing", "{fx}/nope.dump", r"nope\.dump: no such file"),
    ("folder", f"{BAD}/a_folder.dump", r"a_folder\.dump: is a directory"),
    ("empty", f"{BAD}/empty.dump", r"empty\.dump: file is empty"),
    ("random_bytes", f"{BAD}/random", r"random: cannot tell the format"),
    ("garbage_ptu", f"{BAD}/garbage.ptu", r"garbage\.ptu.*extension \.ptu says ptu"),
    ("garbage_h5", f"{BAD}/garbage.h5", r"garbage\.h5.*extension \.h5 says h5"),
    ("garbage_qutag", f"{BAD}/garbage.qutag", r"garbage\.qutag.*extension \.qutag says qutag"),
    ("garbage_ht3", f"{BAD}/garbage.ht3", r"garbage\.ht3.*extension \.ht3 says ht3"),
    ("garbage_text", f"{BAD}/garbage.txt", r"garbage\.txt.*line 3.*hello world"),
    ("h5_not_tags", f"{BAD}/not_tags.h5", r"not_tags\.h5.*(not a|no) .*tag"),
    ("ptu_header_cut", f"{BAD}/header_cut.ptu", r"header_cut\.ptu.*(header|byte)"),
    ("ptu_header_damaged", f"{BAD}/header_damaged.ptu", r"header_damaged\.ptu.*(tag|type|header)"),
    ("rounds_file", A, r"alice\.h5: a timetag rounds file .*not a tag file"),
]
BAD_RECORDS = [  # (name, what the message says)
    ("backwards", r"backwards\.dump.*record 100.*time goes backwards"),
    ("negative", r"negative\.dump.*record 100.*negative time -5 ps"),
    ("unknown_type", r"unknown_type\.dump, byte 1600: unknown event type code 9 in record 100"),
    ("reserved", r"reserved\.dump, byte 1600: reserved byte is 1 in record 100"),
]
SETUP_MESSAGES = {
    **{f"missing_{k}": rf"\[labs\.alice\.{re.escape(k)}\] is required" for k in REQUIRED},
    "typo_threshold": r"\[labs\.alice\.round\.treshold\] unknown key \(did you mean 'threshold'",
    "typo_lab_key": r"\[labs\.alice\.sync_chanel\] unknown key \(did you mean 'sync_channel'",
    "typo_table": r"\[lab\] unknown table \(did you mean \[labs\]",
    "threshold_string": r"\[labs\.alice\.round\.threshold\] must be an integer \(got '12'\)",
    "threshold_zero": r"\[labs\.alice\.round\.threshold\] must be >= 1 \(got 0\)",
    "threshold_bool": r"\[labs\.alice\.round\.threshold\] must be an integer \(got True\)",
    "threshold_float": r"\[labs\.alice\.round\.threshold\] must be an integer \(got 4\.5\)",
    "sync_channel_string": r"\[labs\.alice\.sync_channel\] must be an integer \(got 'one'\)",
    "window_reversed": r"\[labs\.alice\.round\.fluorescence_window_ps\] stop must be after start",
    "window_one_number": r"\[labs\.alice\.round\.setting_window_ps\] must be a \[start, stop\] pair",
    "herald_window_after_sync": r"\[labs\.alice\.herald\.window_stop_ps\] with sync_reference 'next'.*\(got 5000\)",
    "coincidence_negative": r"\[labs\.alice\.herald\.coincidence_ps\] must be >= 0 \(got -1\)",
    "ready_delay_negative": r"\[labs\.alice\.round\.ready_delay_ps\] must be >= 0 \(got -1000\)",
    "unknown_trigger": r"\[labs\.alice\.round\.trigger\] must be one of 'herald', 'ready', 'both' \(got 'sometimes'\)",
    "unknown_pattern": r"\[labs\.alice\.herald\.patterns\] must be one of 'psi\+', 'psi-' \(got 'phi\+'\)",
    "no_patterns": r"\[labs\.alice\.herald\.patterns\] at least one heralding pattern",
    "unknown_sync_reference": r"\[labs\.alice\.herald\.sync_reference\] must be one of 'previous', 'next' "
                              r"\(got 'last'\)",
    "unknown_role": r"\[labs\.alice\.role\] must be one of 'alice', 'bob' \(got 'eve'\)",
    "bsm_same_arm_pol": r"\[labs\.alice\.bsm\] two BSM detectors share the same arm and polarisation",
    "bsm_same_channel": r"\[labs\.alice\.bsm\] channel already used as bsm \(got 2\)",
    "bsm_bad_arm": r"\[labs\.alice\.bsm\[0\]\.arm\] must be one of 'a', 'b' \(got 'c'\)",
    "bsm_not_table": r"\[labs\.alice\.bsm\[0\]\] must be a table \(got 2\)",
    "bsm_missing_pol": r"\[labs\.alice\.bsm\[0\]\.pol\] is required",
    "setting_channels_three": r"\[labs\.alice\.setting_channels\] role 'alice' needs 4 setting channels",
    "setting_is_sync": r"\[labs\.alice\.setting_channels\] channel already used as sync_channel \(got 1\)",
    "delay_missing_channel": r"\[labs\.alice\.delays_ps\.7\] is required",
    "delay_key_not_number": r"\[labs\.alice\.delays_ps\] keys must be channel numbers \(got 'x'\)",
    "delays_not_table": r"\[labs\.alice\.delays_ps\] must be a table",
    "round_not_table": r"\[labs\.alice\.round\] must be a table \(got 5\)",
    "schema_2": r"\[meta\.schema\] unsupported schema version",
    "labs_empty": r"\[labs\] the setup must define at least one lab",
    "hist_bin_zero": r"\[labs\.alice\.histograms\.arrival_bin_ps\] must be >= 1 \(got 0\)",
}
assert set(SETUP_MESSAGES) == set(SETUP_EDITS)
SETUP_BUGS = {"bsm_same_channel": "_accepted"}  # setup mistakes that were taken silently (the suffix says how)

CASES = [
    # --- input files, for process, info and convert ------------------------------------------------------------
    # (a text file read up to its bad line: process keeps the rounds before it in a file marked failed)
    *[case(f"{'bug_' if n == 'missing' else ''}process-{n}{'_exit_1' if n == 'missing' else ''}",
           f"process {f} --setup {S} --lab alice --out out.h5 -q", 2, rx,
           new=r"out\.h5" if n == "garbage_text" else None) for n, f, rx in INPUT_FILES],
    *[case(f"info-{n}", f"info {f}", 2, rx) for n, f, rx in INPUT_FILES if n != "rounds_file"],
    *[case(f"convert-{n}", f"convert {f} out.h5", 2, rx) for n, f, rx in INPUT_FILES],
    # (info on a rounds file is no bad input: it describes the file, see tests/test_roundsschema.py)
    case("bug_process-second_file_missing_exit_1", f"process {D} {BAD}/nope.dump --setup {S} --lab alice "
         "--out out.h5 -q", 2,
         r"nope\.dump: no such file"),
    case("process-same_file_twice", f"process {D} {D} --setup {S} --lab alice --out out.h5 -q", 2,
         r"alice\.dump, record 0: file starts at \d+ ps, before the previous file .* ended", new=r"out\.h5"),
    case("process-format_ptu_on_dump", f"{PROC} --out out.h5 --in-format ptu", 2, r"alice\.dump.*(PQTTTR|ptu|magic)"),
    case("process-format_h5_on_dump", f"{PROC} --out out.h5 --in-format h5", 2, r"alice\.dump.*(HDF5|h5)"),
    case("process-format_qutag_on_dump", f"{PROC} --out out.h5 --in-format qutag", 2,
         r"alice\.dump, byte 0: wrong magic .*quTAG"),
    case("process-format_text_on_dump", f"{PROC} --out out.h5 --in-format text", 2,
         r"alice\.dump: line 1: binary data, not text", new=r"out\.h5"),
    case("info-format_ht3_on_garbage", f"info {BAD}/random --in-format ht3", 2, r"random.*(HydraHarp|ht3|header)"),
    case("info-format_dump_on_text", f"info {BAD}/garbage.txt --in-format dump", 2, r"garbage\.txt.*(16|record)"),
    # bad records: process keeps the rounds before it in a file marked failed; convert leaves nothing; info says
    *[case(f"process-bad_record_{n}", f"{PROC.replace(D, f'{BAD}/{n}.dump')} --out out.h5", 2,
           rx + r".*kept \d+ rounds", new=r"out\.h5") for n, rx in BAD_RECORDS],
    *[case(f"convert-bad_record_{n}", f"convert {BAD}/{n}.dump out.h5", 2, rx) for n, rx in BAD_RECORDS],
    *[case(f"info-bad_record_{n}", f"info {BAD}/{n}.dump", 2, rx) for n, rx in BAD_RECORDS[2:]],
    # --- setup files --------------------------------------------------------------------------------------------
    case("setup-missing", f"{PROC} --setup {{fx}}/nope.toml --out out.h5", 2, r"nope\.toml: cannot read setup file"),
    case("setup-folder", f"{PROC} --setup {BAD} --out out.h5", 2, r"bad: is a directory, expected a setup TOML"),
    case("setup-not_toml", f"{PROC} --setup {{fx}}/setups/not_toml.toml --out out.h5", 2,
         r"not_toml\.toml: not valid TOML"),
    case("setup-empty", f"{PROC} --setup {{fx}}/setups/empty.toml --out out.h5", 2,
         r"empty\.toml: \[labs\] the setup must define at least one lab"),
    case("bug_setup-binary_file_traceback", f"{PROC} --setup {D} --out out.h5", 2,
         r"alice\.dump: not a text \(TOML\) file: byte \d+ is b'\\x[0-9a-f]{2}'"),
    case("setup-rounds_file", f"{PROC} --setup {A} --out out.h5", 2, r"alice\.h5: not a text \(TOML\) file"),
    *[case(f"{'bug_' if n in SETUP_BUGS else ''}setup-{n}{SETUP_BUGS.get(n, '')}",
           f"process {D} --setup {{fx}}/setups/{n}.toml --lab alice --out out.h5 -q", 2, rf"{n}\.toml: " + rx)
      for n, rx in SETUP_MESSAGES.items()],
    case("setup-unknown_lab", f"process {D} --setup {S} --lab carol --out out.h5 -q", 2,
         r"no lab 'carol' in the setup \(labs: alice, bob\)"),
    case("setup-wrong_lab_for_file", f"process {DB} --setup {S} --lab carol --out out.h5 -q", 2, r"carol"),
    case("calibrate-setup_threshold_zero", f"calibrate {D} {DB} --setup {{fx}}/setups/threshold_zero.toml "
         "--out cal.toml", 2, r"threshold_zero\.toml: \[labs\.alice\.round\.threshold\] must be >= 1"),
    case("calibrate-unknown_lab", f"calibrate {D} --setup {S} --lab carol --out cal.toml", 2, r"no lab 'carol'"),
    case("live-setup_typo", f"live --source replay:{D} --setup {{fx}}/setups/typo_threshold.toml --lab alice "
         "--out live --no-view", 2, r"typo_threshold\.toml: \[labs\.alice\.round\.treshold\] unknown key"),
    case("live-unknown_lab", f"{LIVE} --source replay:{D} --lab carol --out live", 2, r"no lab 'carol'"),
    case("estimate-setup_not_toml", f"{EST} --setup {{fx}}/setups/not_toml.toml", 2, r"not_toml\.toml: not valid"),
    case("scan-setup_missing", f"scan {D} {DB} --setup {{fx}}/nope.toml --vary threshold=2,3 --out scan", 2,
         r"nope\.toml: cannot read"),
    # --- outputs ------------------------------------------------------------------------------------------------
    case("process-out_exists", f"{PROC} --out out.h5", 2, r"out\.h5: exists; pass --force", pre={"out.h5": OLD}),
    case("convert-out_exists", f"convert {D} out.h5", 2, r"out\.h5: exists; pass --force", pre={"out.h5": OLD}),
    case("simulate-out_exists", f"{SIM} --out sim", 2, r"sim: setup\.toml exists already; pass --force",
         pre={"sim/setup.toml": OLD}),
    case("calibrate-out_exists", f"calibrate {D} {DB} --setup {S} --out cal.toml", 2,
         r"cal\.toml: exists; pass --force", pre={"cal.toml": OLD}),
    case("calibrate-plots_exist", f"calibrate {D} {DB} --setup {S} --out cal.toml --plots plots", 2,
         r"plots/.*\.png: exists; pass --force", pre={"plots/alice_arrival.png": OLD}),
    case("scan-out_exists", f"scan {D} {DB} --setup {S} --vary threshold=2,3 --out scan", 2,
         r"scan: scan\.csv exists? already; pass --force", pre={"scan/scan.csv": OLD}),
    case("estimate-plots_exist", f"{EST} --plots plots", 2, r"plots/correlations\.png: exists",
         pre={"plots/correlations.png": OLD}),
    case("process-out_is_input", f"{PROC} --out {D}", 2, r"alice\.dump: this is an input file"),
    case("process-out_is_input_via_link", f"{PROC} --out link.dump", 2, r"link\.dump: this is an input file",
         pre={"link.dump": ("link", D)}),
    case("bug_process-out_is_setup_overwritten", f"{PROC} --out {S} --force", 2,
         r"setup\.toml: this is an input file"),
    case("bug_process-dask_out_is_setup_overwritten", f"{PROC} --out {S} --force --dask local:1", 2,
         r"setup\.toml: this is an input file"),
    case("bug_process-out_is_setup_via_link_overwritten", f"{PROC} --out link.toml --force", 2,
         r"link\.toml: this is an input file", pre={"link.toml": ("link", S)}),
    case("convert-out_is_input", f"convert {D} {D} --force", 2, r"alice\.dump: this is an input file"),
    case("convert-out_is_input_via_link", f"convert {D} link.dump --force", 2, r"link\.dump: this is an input",
         pre={"link.dump": ("link", D)}),
    case("calibrate-out_is_setup", f"calibrate {D} {DB} --setup {S} --out {S} --force", 2,
         r"setup\.toml: this is an input file"),
    case("simulate-out_is_file", f"{SIM} --out file.txt", 2, r"file\.txt.*(is a file|not a folder)",
         pre={"file.txt": OLD}),
    case("process-out_inside_file", f"{PROC} --out file.txt/sub.h5", 2, r"file\.txt is a file, not a folder",
         pre={"file.txt": OLD}),
    case("convert-out_inside_file", f"convert {D} file.txt/sub.h5", 2, r"file\.txt is a file, not a folder",
         pre={"file.txt": OLD}),
    case("calibrate-out_inside_file", f"calibrate {D} {DB} --setup {S} --out file.txt/cal.toml", 2,
         r"file\.txt is a file, not a folder", pre={"file.txt": OLD}),
    case("estimate-plots_inside_file", f"{EST} --plots file.txt/plots", 2, r"file\.txt is a file, not a folder",
         pre={"file.txt": OLD}),
    case("live-out_inside_file", f"{LIVE} --source replay:{D} --out file.txt/live", 2, r"file\.txt",
         pre={"file.txt": OLD}),
    case("scan-out_inside_file", f"scan {D} {DB} --setup {S} --vary threshold=2,3 --out file.txt/scan", 2,
         r"file\.txt", pre={"file.txt": OLD}),
    case("bug_process-out_under_proc_phantom_writer", f"{PROC} --out /proc/timetag_out.h5", 1,
         r"/proc/timetag_out\.h5: cannot create its lock file \.timetag_out\.h5\.lock: "),
    case("bug_convert-out_under_proc_phantom_writer", f"convert {D} /proc/timetag_out.h5", 1,
         r"/proc/timetag_out\.h5: cannot create its lock file"),
    case("bug_calibrate-out_under_proc_phantom_writer", f"calibrate {D} {DB} --setup {S} --out /proc/cal.toml", 1,
         r"/proc/cal\.toml: cannot create its lock file"),
    case("bug_estimate-plots_under_proc_phantom_writer", f"{EST} --plots /proc", 1,
         r"/proc/correlations\.png: cannot create its lock file"),
    case("simulate-out_under_proc", f"{SIM} --out /proc/timetag_sim", 1, r"/proc/timetag_sim: No such file"),
    case("live-out_under_proc", f"{LIVE} --source replay:{D} --out /proc/timetag_live", 1,
         r"/proc/timetag_live.*No such file"),
    case("process-out_is_folder", f"{PROC} --out sub", 2, r"sub: is a folder", pre={"sub": "dir"}),
    case("process-out_empty", f"{PROC} --out ''", 2, r"output '\.' names no file"),
    case("convert-out_is_folder", f"convert {D} sub.h5", 2, r"sub\.h5: is a folder", pre={"sub.h5": "dir"}),
    case("calibrate-out_is_folder", f"calibrate {D} {DB} --setup {S} --out sub", 2, r"sub: is a folder",
         pre={"sub": "dir"}),
    case("process-stale_partial", f"{PROC} --out out.h5", 2, r"out\.h5\.partial: left by an earlier run.*recover",
         pre={"out.h5.partial": OLD}),
    case("convert-stale_partial", f"convert {D} out.h5", 2, r"out\.h5\.partial: left by an earlier run",
         pre={"out.h5.partial": OLD}),
    case("bug_calibrate-out_is_plots_folder_left_partials", f"calibrate {D} {DB} --setup {S} --out cal.toml "
         "--plots cal.toml", 2, r"cal\.toml: asked for both as an output file and as the folder of cal\.toml/"),
    case("bug_calibrate-out_is_a_plot_locked_itself", f"calibrate {D} {DB} --setup {S} --out pl/alice_fom.png "
         "--plots pl", 2, r"pl/alice_fom\.png: named twice as an output"),
    case("demo-out_under_proc", "demo --out /proc/timetag_demo --rounds 5 --no-plots", 1,
         r"/proc/timetag_demo: No such file"),
    case("live-stale_partial", f"{LIVE} --source replay:{D} --out live", 2,
         r"live/alice_rounds\.h5\.partial: left by an earlier run.*timetag recover live/alice_rounds\.h5\.partial",
         pre={"live/alice_rounds.h5.partial": OLD}),
    case("live-out_has_rounds", f"{LIVE} --source replay:{D} --out live", 2, r"alice_rounds\.h5: exists",
         pre={"live/alice_rounds.h5": OLD}),
    # --- option values ------------------------------------------------------------------------------------------
    case("process-chunk_size_0", f"{PROC} --out out.h5 --chunk-size 0", 2, r"'--chunk-size'" + AT_LEAST),
    case("process-chunk_size_negative", f"{PROC} --out out.h5 --chunk-size -1", 2, r"'--chunk-size'" + AT_LEAST),
    case("info-chunk_size_0", f"info {D} --chunk-size 0", 2, r"'--chunk-size'" + AT_LEAST),
    case("convert-chunk_size_0", f"convert {D} out.h5 --chunk-size 0", 2, r"'--chunk-size'" + AT_LEAST),
    case("scan-chunk_size_0", f"scan {D} {DB} --setup {S} --vary threshold=2,3 --out scan --chunk-size 0", 2,
         r"'--chunk-size'" + AT_LEAST),
    case("process-on_bad_record_bogus", f"{PROC} --out out.h5 --on-bad-record bogus", 2,
         r"--on-bad-record.*'bogus'"),
    case("process-max_jump_0", f"{PROC} --out out.h5 --max-jump-ps 0", 2, r"'--max-jump-ps'" + AT_LEAST),
    case("process-format_bogus", f"{PROC} --out out.h5 --in-format bogus", 2, r"unknown format 'bogus'"),
    case("process-chunk_size_text", f"{PROC} --out out.h5 --chunk-size many", 2,
         r"'--chunk-size'.*(valid integer|'many')"),
    case("process-unknown_option", f"{PROC} --out out.h5 --frobnicate", 2, r"No such option.*--frobnicate"),
    case("process-no_out", f"{PROC}", 2, r"Missing option '--out'"),
    case("info-format_bogus", f"info {D} --in-format bogus", 2, r"unknown format 'bogus'"),
    case("convert-format_bogus", f"convert {D} out.h5 --out-format bogus", 2, r"unknown format 'bogus'"),
    case("bug_convert-to_ht3_said_unknown_extension", f"convert {D} out.ht3", 2,
         r"out\.ht3: extension \.ht3 is ht3, which timetag can read but not write"),
    case("bug_convert-to_qutag_said_unknown_extension", f"convert {D} out.qutag", 2,
         r"out\.qutag: extension \.qutag is qutag, which timetag can read but not write"),
    case("convert-format_ht3", f"convert {D} out.x --out-format ht3", 2, r"format 'ht3' can be read but not written"),
    case("bug_convert-lost_data_to_ptu_named_partial_file", f"convert {BAD}/lost.dump out.ptu", 2,
         r"^error: out\.ptu: 2 lost-data event\(s\) .*\(--drop-lost\)$"),
    case("convert-in_format_bogus", f"convert {D} out.h5 --in-format bogus", 2, r"unknown format 'bogus'"),
    case("bug_convert-tolerance_ignored_for_text", f"convert {BAD}/backwards.txt out.h5 --tolerance-ps 5000", 2,
         r"--tolerance-ps reorders quTAG files only; .*backwards\.txt is text"),
    case("bug_convert-text_backwards_hint_for_other_format", f"convert {BAD}/backwards.txt out.h5", 2,
         r"backwards\.txt, record 1: time goes backwards: 1000 ps after 2000 ps \(step 1000 ps\)$"),
    case("bug_process-text_backwards_hint_names_missing_option", f"{PROC.replace(D, BAD + '/backwards.txt')} "
         "--out out.h5", 2, r"record 1: time goes backwards: 1000 ps after 2000 ps \(step 1000 ps\); kept 0 rounds",
         new=r"out\.h5"),
    case("process-text_negative", f"{PROC.replace(D, BAD + '/negative.txt')} --out out.h5", 2,
         r"negative\.txt, record 0: negative time -5 ps; kept 0 rounds", new=r"out\.h5"),
    case("process-one_tag", f"{PROC.replace(D, BAD + '/one_tag.dump')} --out out.h5", 0, r"^$", new=r"out\.h5"),
    case("process-size_not_16_warns", f"{PROC.replace(D, BAD + '/odd_size.dump')} --out out.h5", 0,
         r"^warning: .*odd_size\.dump: truncated final record: 7 trailing bytes ignored\n$", new=r"out\.h5"),
    case("info-size_not_16_warns", f"info {BAD}/odd_size.dump", 0, r"odd_size\.dump: truncated final record: 7 "),
    case("convert-size_not_16_warns", f"convert {BAD}/odd_size.dump out.h5", 0, r"truncated final record",
         new=r"out\.h5"),
    case("process-lock_held", f"{PROC} --out out.h5", 2, r"out\.h5: another writer is writing it: pid \d+",
         pre={"out.h5": ("lock",)}),
    case("recover-writer_alive", f"recover {BAD}/running.h5.partial", 2,
         r"running\.h5: another writer is writing it: pid \d+", pre={"{fx}/bad/running.h5": ("lock",)}),
    case("convert-unknown_extension", f"convert {D} out.xyz", 2, r"out\.xyz.*(extension|format)"),
    case("convert-no_extension", f"convert {D} out", 2, r"out.*(extension|format)"),
    case("convert-swmr_to_dump", f"convert {D} out.dump --swmr", 2, r"--swmr.*HDF5"),
    case("convert-tolerance_negative", f"convert {D} out.h5 --tolerance-ps -1", 2, r"'--tolerance-ps'" + AT_LEAST),
    case("simulate-rounds_0", f"simulate --rounds 0 --out sim -q", 2, r"--rounds.*0"),
    case("simulate-rounds_negative", f"simulate --rounds -5 --out sim -q", 2, r"--rounds.*-5"),
    case("simulate-unknown_preset", f"{SIM} --out sim --preset lmu2099", 2, r"lmu2099"),
    case("simulate-set_no_equals", f"{SIM} --out sim --set state_visibility", 2, r"--set.*'state_visibility'"),
    case("simulate-set_unknown_key", f"{SIM} --out sim --set visibilty=0.9", 2, r"visibilty"),
    case("simulate-set_bad_value", f"{SIM} --out sim --set state_visibility=high", 2, r"state_visibility.*high"),
    case("simulate-set_out_of_range", f"{SIM} --out sim --set state_visibility=2.5", 2, r"state_visibility.*2\.5"),
    case("simulate-format_bogus", f"{SIM} --out sim --out-format bogus", 2, r"bogus"),
    case("simulate-speedup_negative", f"{SIM} --out sim --speedup -3", 2, r"\[speedup\] must be > 0 \(got -3"),
    case("bug_simulate-speedup_nan_simulated_nonsense", f"{SIM} --out sim --speedup nan", 2,
         r"\[speedup\] expects a finite number \(got nan\)"),
    case("bug_simulate-set_nan_accepted", f"{SIM} --out sim --set overflow_rate_hz=nan", 2,
         r"\[overflow_rate_hz\] expects a finite number \(got nan\)"),
    case("bug_simulate-seed_negative_traceback", f"{SIM} --out sim --seed -1", 2,
         r"'--seed'" + AT_LEAST),
    case("bug_simulate-preset_binary_traceback", f"{SIM} --out sim --preset {D}", 2,
         r"alice\.dump: preset is not a text \(TOML\) file"),
    case("simulate-preset_is_setup", f"{SIM} --out sim --preset {S}", 2,
         r"setup\.toml: \[schema\] unknown simulation parameter 'schema'"),
    case("simulate-set_bad_toml", f"{SIM} --out sim --set dead_channels_alice=[3", 2,
         r"\[dead_channels_alice\] cannot parse value '\[3'"),
    case("simulate-set_wrong_length", f"{SIM} --out sim --set dark_rate_hz_alice=[1,2]", 2,
         r"\[dark_rate_hz_alice\] needs one rate per BSM detector \(4\)"),
    case("simulate-format_ht3", f"{SIM} --out sim --out-format ht3", 2, r"unknown output format 'ht3'"),
    case("live-flush_interval_2", f"{LIVE} --source replay:{D} --out live --flush-interval 2", 2,
         r"--flush-interval must be in \(0, 1\] seconds \(got 2"),
    case("live-status_interval_0", f"{LIVE} --source replay:{D} --out live --status-interval 0", 2,
         r"--status-interval must be > 0 \(got 0"),
    case("live-speed_bogus", f"{LIVE} --source replay:{D} --out live --speed bogus", 2, r"--speed.*'bogus'"),
    case("live-speed_negative", f"{LIVE} --source replay:{D} --out live --speed -2", 2, r"--speed.*-2"),
    case("live-source_bogus", f"{LIVE} --source bogus --out live", 2, r"--source.*'bogus'"),
    case("live-follow_no_file", f"{LIVE} --source follow: --out live", 2, r"follow:.*(file|FILE)"),
    case("live-replay_missing", f"{LIVE} --source replay:{{fx}}/nope.dump --out live", 2, r"nope\.dump: no such file"),
    case("bug_live-replay_garbage_left_rounds_file", f"{LIVE} --source replay:{BAD}/random --out live", 2,
         r"random: cannot tell the format"),
    case("bug_live-replay_empty_left_rounds_file", f"{LIVE} --source replay:{BAD}/empty.dump --out live", 2,
         r"empty\.dump: file is empty"),
    case("bug_live-replay_ptu_header_left_rounds_file", f"{LIVE} --source replay:{BAD}/header_cut.ptu --out live",
         2, r"header_cut\.ptu"),
    case("live-replay_folder", f"{LIVE} --source replay:{BAD} --out live", 2, r"bad: is a directory"),
    case("live-replay_bad_record", f"{LIVE} --source replay:{BAD}/backwards.dump --out live", 2,
         r"backwards\.dump.*record 100.*time goes backwards", new=r"live|live/alice_rounds\.h5"),
    case("live-swabian_fake_missing_file", f"{LIVE} --source swabian-fake:{{fx}}/nope.dump --out live", 2,
         r"nope\.dump: no such file"),
    case("bug_live-speed_nan_traceback", f"{LIVE} --source replay:{D} --out live --speed nan", 2,
         r"--speed must be positive \(got 'nan'\)"),
    case("bug_live-status_interval_nan_accepted", f"{LIVE} --source replay:{D} --out live --status-interval nan",
         2, r"--status-interval must be > 0 \(got nan"),
    case("bug_live-duration_nan_accepted", f"{LIVE} --source replay:{D} --out live --duration nan", 2,
         r"--duration must be > 0 seconds \(got nan"),
    # without the vendor package: 'not installed'; with it but no device: its RuntimeError was a traceback
    case("bug_live-swabian_no_device_traceback", f"{LIVE} --source swabian --out live", 2,
         r"(Swabian Time Tagger software is not installed|cannot open the Swabian Time Tagger: )"),
    case("bug_live-sim_unknown_lab_left_setup", "live --source sim --lab carol --out live --no-view --duration 1",
         2, r"no lab 'carol'"),
    case("bug_live-sim_bad_preset_left_rounds_files", f"live --source sim --setup {S} --out live --no-view "
         "--duration 1 --preset nope", 2, r"no simulator preset 'nope'"),
    case("live-sim_speedup_negative", "live --source sim --out live --no-view --duration 1 --speedup -5", 2,
         r"\[speedup\] must be > 0"),
    case("live-replay_needs_lab", f"live --source replay:{D} --setup {S} --out live --no-view", 2,
         r"a replayed file is one lab: choose it with --lab \(alice \| bob\)"),
    case("live-on_bad_record_bogus", f"{LIVE} --source replay:{D} --out live --on-bad-record bogus", 2,
         r"error: --on-bad-record must be 'fail'.*got 'bogus'"),
    case("live-no_setup", f"live --source replay:{D} --lab alice --out live --no-view", 2, r"--setup is required"),
    case("bug_live-duration_negative_accepted", f"{LIVE} --source replay:{D} --out live --duration -1", 2,
         r"--duration must be > 0 seconds \(got -1"),
    case("live-inject_overflow_bogus", f"{LIVE} --source swabian-fake --out live --inject-overflow x", 2,
         r"--inject-overflow.*'x'"),
    case("estimate-same_file_twice", f"estimate {A} {A} --samples 0", 2,
         r"both rounds files are from the same lab \(role 'alice'\)"),
    case("estimate-same_lab_twice", f"estimate {A} alice2.h5 --samples 0", 2,
         r"both rounds files are from the same lab \(role 'alice'\): .*alice\.h5 and alice2\.h5",
         pre={"alice2.h5": ("copy", A)}),
    case("estimate-tags_not_rounds", f"estimate {D} {B} --samples 0", 2, r"alice\.dump.*(not a|rounds)"),
    case("estimate-missing", f"estimate {{fx}}/nope.h5 {B} --samples 0", 2, r"nope\.h5: no such file"),
    case("estimate-garbage_h5", f"estimate {BAD}/garbage.h5 {B} --samples 0", 2, r"garbage\.h5: not a readable"),
    case("estimate-not_rounds_h5", f"estimate {BAD}/not_tags.h5 {B} --samples 0", 2, r"not_tags\.h5.*no /rounds"),
    case("estimate-incomplete", f"estimate {BAD}/interrupted.h5 {B} --samples 0", 2,
         r"interrupted\.h5: incomplete rounds file, 10 rounds \(interrupted.*--accept-incomplete"),
    case("estimate-empty_rounds", f"estimate {BAD}/empty_rounds.h5 {B} --samples 0", 2,
         r"empty_rounds\.h5: rounds file is empty"),
    case("estimate-unknown_role", f"estimate {BAD}/eve.h5 {B} --samples 0", 2, r"unknown role 'eve'"),
    case("estimate-killed_partial", f"estimate {BAD}/running.h5.partial {B} --samples 0", 2,
         r"running\.h5\.partial: incomplete rounds file, 5 rounds \(never finished.*timetag recover"),
    case("bug_estimate-offset_nan_numpy_warnings", f"{EST} --offset-ps nan", 2,
         r"^error: --offset-ps must be a finite number, got nan\n$"),
    case("bug_estimate-drift_inf_numpy_warnings", f"{EST} --drift inf", 2,
         r"^error: --drift must be a finite number, got inf\n$"),
    case("estimate-setup_clock_not_table", f"{EST} --setup {{fx}}/setups/clock_not_table.toml", 2,
         r"clock_not_table\.toml: \[clock\] must be a table"),
    case("bug_estimate-setup_clock_inf_accepted", f"{EST} --setup {{fx}}/setups/clock_inf.toml", 2,
         r"clock_inf\.toml: \[clock\] offset_ps must be a finite number, got inf"),
    case("estimate-patterns_empty", f"{EST} --patterns ''", 2, r"empty herald pattern selection"),
    case("estimate-flagged_bogus", f"{EST} --flagged maybe", 2, r"--flagged.*'maybe'"),
    case("estimate-patterns_bogus", f"{EST} --patterns phi+", 2, r"phi\+"),
    case("bug_estimate-samples_negative_traceback", f"estimate {A} {B} --samples -1", 2,
         r"'--samples'" + AT_LEAST),
    case("bug_estimate-seed_negative_traceback", f"{EST} --seed -1", 2, r"'--seed'" + AT_LEAST),
    case("recover-missing", "recover {fx}/nope.h5.partial", 2, r"nope\.h5\.partial: no such file"),
    case("bug_recover-folder_said_no_such_file", f"recover {BAD}", 2, r"bad: is a directory, expected the partial"),
    case("estimate-setup_binary", f"{EST} --setup {D}", 2, r"alice\.dump: not a text \(TOML\) file"),
    case("estimate-setup_missing", f"{EST} --setup {{fx}}/nope.toml", 2, r"nope\.toml: cannot read setup file"),
    case("estimate-folder", f"estimate {BAD} {B} --samples 0", 2, r"bad: is a directory, expected a rounds file"),
    case("calibrate-folder", f"calibrate {BAD} {DB} --setup {S} --out cal.toml", 2,
         r"bad: is a directory, not a time-tag file"),
    case("recover-garbage", f"recover {BAD}/garbage.h5.partial --keep", 2, r"garbage\.h5\.partial: nothing to recover"),
    case("recover-not_partial_name", f"recover {A}", 2, r"alice\.h5: not a partial file.*give --out"),
    case("bug_recover-complete_file_deleted", f"recover {BAD}/alice_copy.h5.partial --out rec.h5", 2,
         r"alice_copy\.h5\.partial: nothing to recover: the file is complete"),
    case("bug_recover-complete_rounds_file_deleted", f"recover {A} --out rec.h5", 2,
         r"alice\.h5: nothing to recover: the file is complete"),
    case("recover-interrupted_out_exists", f"recover {BAD}/interrupted.h5 --out rec.h5", 2, r"rec\.h5: exists",
         pre={"rec.h5": OLD}),
    case("recover-out_is_input", f"recover {BAD}/garbage.h5.partial --out {BAD}/garbage.h5.partial", 2,
         r"garbage\.h5\.partial"),
    case("recover-tag_dump", f"recover {D} --out rec.h5", 2, r"alice\.dump.*nothing to recover"),
    case("calibrate-steps_bogus", f"calibrate {D} {DB} --setup {S} --out cal.toml --steps delays,bogus", 2,
         r"--steps: unknown step 'bogus' \(steps: delays, window"),
    case("bug_calibrate-steps_empty_accepted", f"calibrate {D} {DB} --setup {S} --out cal.toml --steps ,", 2,
         r"--steps: no step given"),
    case("calibrate-one_file", f"calibrate {D} --setup {S} --out cal.toml", 2, r"2 files"),
    case("bug_calibrate-count_model_bogus_only_warned", f"calibrate {D} {DB} --setup {S} --out cal.toml "
         "--count-model gauss", 2, r"--count-model must be poisson, negbin or auto \(got 'gauss'\)"),
    case("bug_calibrate-reference_not_bsm_only_warned", f"calibrate {D} {DB} --setup {S} --out cal.toml "
         "--reference 99", 2, r"--reference 99 is not a BSM detector channel of lab 'alice' \(2, 3, 4, 5\)"),
    case("bug_calibrate-fom_v_state_above_1_accepted", f"calibrate {D} {DB} --setup {S} --out cal.toml "
         "--fom-v-state 1.5", 2, r"'--fom-v-state'.*(less than or equal to|not in the range|<=)"),
    case("bug_calibrate-fom_p_double_negative_accepted", f"calibrate {D} {DB} --setup {S} --out cal.toml "
         "--fom-p-double -1", 2, r"'--fom-p-double'" + AT_LEAST),
    case("calibrate-lab_two_files", f"calibrate {D} {DB} --setup {S} --lab alice --out cal.toml", 2,
         r"--lab alice takes one tag file, got 2"),
    case("calibrate-rounds_files", f"calibrate {A} {B} --setup {S} --out cal.toml", 2,
         r"alice\.h5: a timetag rounds file"),
    case("calibrate-strict_one_tag", f"calibrate {BAD}/one_tag.dump {DB} --setup {S} --out cal.toml --strict", 2,
         r"(photons|counts|tags)"),
    case("calibrate-missing_tags", f"calibrate {{fx}}/nope.dump {DB} --setup {S} --out cal.toml", 2,
         r"nope\.dump: no such file"),
    case("scan-vary_bogus", f"scan {D} {DB} --setup {S} --vary bogus --out scan", 2, r"--vary.*'bogus'"),
    case("scan-vary_unknown_key", f"scan {D} {DB} --setup {S} --vary colour=1,2 --out scan", 2, r"colour"),
    case("scan-vary_bad_range", f"scan {D} {DB} --setup {S} --vary threshold=5:2:1 --out scan", 2,
         r"threshold.*5:2:1"),
    case("scan-one_file", f"scan {D} --setup {S} --vary threshold=2,3 --out scan", 2, r"Bob"),
    case("scan-missing_tags", f"scan {D} {{fx}}/nope.dump --setup {S} --vary threshold=2,3 --out scan", 2,
         r"nope\.dump"),
    case("bug_scan-vary_same_key_twice_wrong_rows", f"scan {D} {DB} --setup {S} --vary threshold=2,3 "
         "--vary threshold=4 --out scan", 2, r"--vary threshold and --vary threshold both set "
         r"labs\.alice\.round\.threshold: give each key once"),
    case("bug_scan-vary_overlapping_keys_wrong_rows", f"scan {D} {DB} --setup {S} --vary threshold=2,3 "
         "--vary labs.bob.round.threshold=4 --out scan", 2, r"both set labs\.bob\.round\.threshold"),
    case("scan-vary_zero_step", f"scan {D} {DB} --setup {S} --vary threshold=1:5:0 --out scan", 2,
         r"step 0 does not lead from 1 to 5"),
    case("scan-vary_too_many", f"scan {D} {DB} --setup {S} --vary threshold=1:100000000:1 --out scan", 2,
         r"100000000 values is too many"),
    case("scan-vary_bad_unit", f"scan {D} {DB} --setup {S} --vary window.stop=1ns,2parsec --out scan", 2,
         r"unknown unit 'parsec'"),
    case("scan-vary_invalid_point", f"scan {D} {DB} --setup {S} --vary threshold=-3,0 --out scan", 2,
         r"scan point \{'threshold': -3\}: \[labs\.alice\.round\.threshold\] must be >= 1"),
    case("scan-bob_files_0", f"scan {D} {DB} --setup {S} --vary threshold=2 --out scan --bob-files 0", 2,
         r"give Alice's tag file\(s\) then Bob's 0 file\(s\)"),
    case("scan-out_is_file", f"scan {D} {DB} --setup {S} --vary threshold=2 --out {S}", 2,
         r"setup\.toml: is a file, not a folder"),
    case("process-dask_zero_workers", f"{PROC} --out out.h5 --dask local:0", 2,
         r"the number of local workers must be >= 1"),
    case("scan-dask_bogus", f"scan {D} {DB} --setup {S} --vary threshold=2,3 --out scan --dask bogus", 2,
         r"--dask.*'bogus'"),
    case("process-dask_bogus", f"{PROC} --out out.h5 --dask bogus", 2, r"--dask.*'bogus'"),
    case("bug_demo-rounds_0_left_folder", "demo --rounds 0 --out demo --no-plots", 2,
         r"error: --rounds must be >= 1 \(got 0\)"),
    case("bug_demo-speedup_negative_left_folder", "demo --speedup -1 --out demo --no-plots", 2,
         r"\[speedup\] must be > 0 \(got -1"),
    case("bug_demo-seed_negative_left_folder", "demo --seed -1 --out demo --no-plots", 2,
         r"'--seed'" + AT_LEAST),
    case("demo-out_is_file", "demo --rounds 5 --out file.txt --no-plots", 2, r"file\.txt", pre={"file.txt": OLD}),
    case("demo-out_foreign_folder", "demo --rounds 5 --out mine --no-plots", 2, r"mine.*--force",
         pre={"mine/thesis.tex": OLD}),
    case("cli-unknown_command", "frobnicate", 2, r"No such command 'frobnicate'"),
]


@pytest.mark.parametrize("argv,code,regex,pre,new", CASES)
def test_bad_input(argv, code, regex, pre, new, fx, tmp_path, monkeypatch, capfd):
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    locks: list = []
    try:
        _prepare(cwd, fx, pre, locks)
        check_case(argv, code, regex, new, fx, cwd, capfd)
    finally:
        for lock in locks:
            lock.release()


def check_case(argv, code, regex, new, fx: Path, cwd: Path, capfd) -> None:
    before_fx, before = snapshot(fx), snapshot(cwd)
    got, out, err = run_cli(shlex.split(_fill(argv, fx)), capfd)
    report = f"argv: {argv}\nexit {got}\nstderr:\n{err}\nstdout:\n{out[-2000:]}"
    assert got == code, report
    assert re.search(regex, err, re.M), report
    if code:
        check_one_error_line(err, code)
    assert "Traceback" not in out, report
    assert snapshot(fx) == before_fx, "a shared fixture file changed"
    after = snapshot(cwd)
    for path, digest in before.items():
        assert after.get(path) == digest, f"{path} changed or vanished\n{report}"
    left = sorted(Path(p).relative_to(cwd).as_posix() for p in set(after) - set(before))
    allowed = [p for p in left if new is not None and re.fullmatch(new, p)]
    assert left == allowed, f"left behind: {left}\n{report}"


# ------------------------------------------------------------------------------------------------- in a real process


def _timetag(*args, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "timetag", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("argv,regex", [
    ("process {fx}/bad/garbage.h5 --setup {fx}/run/setup.toml --lab alice --out out.h5 -q", r"garbage\.h5"),
    ("info {fx}/bad/not_tags.h5", r"not_tags\.h5: no /photon_data group"),
    ("estimate {fx}/bad/garbage.h5 {fx}/bob.h5 --samples 0", r"garbage\.h5: not a readable HDF5"),
    ("recover {fx}/bad/garbage.h5.partial --keep", r"garbage\.h5\.partial: nothing to recover"),
], ids=["process-garbage_h5", "info-h5_not_tags", "estimate-garbage_h5", "recover-garbage"])
def test_no_crash_at_exit(argv, regex, fx, tmp_path):
    """HDF5 errors in a real process: one line, exit 2, no HDF5 diagnostics or crash when the library shuts down."""
    p = _timetag(*shlex.split(_fill(argv, fx)), cwd=tmp_path)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2, err
    assert re.search(regex, err), err
    assert "HDF5-DIAG" not in err
    check_one_error_line(err, 2)
    assert list(tmp_path.iterdir()) == []


def test_bug_ctrl_c_silent_exit_130(fx, tmp_path):
    """Ctrl-C in the middle of writing: exit 130 and one line saying so (typer made it a silent exit 130), the
    old files whole, no partial file left."""
    out = tmp_path / "sim"
    out.mkdir()
    (out / "setup.toml").write_bytes(OLD)
    p = _timetag("simulate", "--rounds", 2_000_000, "--speedup", 20000, "--out", out, "-q", "--force", cwd=tmp_path)
    try:
        _wait_for(out / "alice.dump.partial", p)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 130, err
        assert re.search(r"^error: interrupted \(Ctrl-C\)$", err, re.M), err
        check_one_error_line(err, 130)
        assert sorted(x.name for x in out.iterdir()) == ["setup.toml"]
        assert (out / "setup.toml").read_bytes() == OLD
    finally:
        _end(p)
        shutil.rmtree(out, ignore_errors=True)  # a run that was not stopped leaves big files


def test_ctrl_c_live(fx, tmp_path):
    """Ctrl-C of a live run: exit 130, no traceback, the rounds kept in a file marked interrupted."""
    from timetag.custody import Completion
    from timetag.roundsfile import read_rounds

    p = _timetag("live", "--source", f"replay:{fx / 'run' / 'alice.dump'}", "--setup", fx / "run" / "setup.toml",
                 "--lab", "alice", "--out", "live", "--no-view", "--speed", "1", cwd=tmp_path)
    try:
        _wait_for(tmp_path / "live" / "alice_rounds.h5.partial", p)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        _end(p)
    assert p.returncode == 130, err
    assert "Traceback" not in err + out
    data = read_rounds(tmp_path / "live" / "alice_rounds.h5", accept_incomplete=True)
    assert data.completion is Completion.INTERRUPTED


def _wait_for(path: Path, p: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def _end(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
        p.communicate()


def test_bug_failed_commit_left_partials_and_locks(tmp_path):
    """Outputs written together: when one cannot be renamed, none of the others stays as a partial file or a lock."""
    from timetag.custody import AtomicOutputs

    targets = [tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"]
    with pytest.raises(OSError):
        with AtomicOutputs(targets) as outs:
            for o in outs.outputs:
                o.partial.write_text("new")
            targets[1].mkdir()  # appears meanwhile: the rename of b fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]
    assert targets[1].is_dir() and not any(targets[1].iterdir())
