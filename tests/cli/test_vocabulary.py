"""One CLI vocabulary (issue 20): what a new user meets in ``timetag CMD --help`` reads the same in every command.

The rows are those of ``benchmarks/cli_flags.py`` (which writes ``docs/cli.md``): every option of every command as
typer builds it for --help.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from timetag.chunk import TagChunk
from timetag.cli import main
from timetag.errors import SetupError, TimetagError, TimetagWarning, for_cli
from timetag.formats._common import OrderGuard

ROOT = Path(__file__).resolve().parents[2]
# every command that shows progress or prints tables or a summary (live has --no-view / --json-lines)
QUIET_COMMANDS = ("info", "convert", "simulate", "process", "calibrate", "estimate", "recover", "scan", "demo")


def _flags_module():
    spec = importlib.util.spec_from_file_location("cli_flags", ROOT / "benchmarks" / "cli_flags.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def rows():
    return _flags_module().option_rows()


def _commands(rows):
    return {r["command"] for r in rows if r["command"]}


def test_one_meaning_per_short_flag(rows):
    meaning: dict[str, set[str]] = {}
    for r in rows:
        for short in filter(None, r["short"].split("/")):
            meaning.setdefault(short, set()).add(r["long"])
    twice = {s: sorted(longs) for s, longs in meaning.items() if len(longs) > 1}
    assert not twice, f"short flags with several meanings: {twice}"
    assert meaning["-s"] == {"--setup"}


def test_every_setup_out_lab_option_has_its_short_flag(rows):
    for r in rows:
        if r["hidden"]:
            continue
        for long, short in (("--setup", "-s"), ("--out", "-o"), ("--quiet", "-q")):
            if r["long"] == long:
                assert r["short"] == short, f"{r['command']} {long} has no {short}"


def test_flags_show_no_metavar(rows):
    bad = [f"{r['command']} {r['long']}: {r['metavar']}" for r in rows if "<bool>" in r["metavar"]]
    assert not bad, bad
    assert all(r["metavar"] == "" for r in rows if r["is_flag"])


def test_commands_that_print_progress_have_quiet(rows):
    assert set(QUIET_COMMANDS) <= _commands(rows)
    for cmd in QUIET_COMMANDS:
        assert any(r["command"] == cmd and r["long"] == "--quiet" and r["short"] == "-q" for r in rows), cmd


def test_every_default_is_shown(rows):
    missing = [f"{r['command']} {r['long']}" for r in rows if r["has_default"] and not r["default"]]
    assert not missing, f"options whose --help hides their default: {missing}"


def test_every_optional_value_says_what_happens_without_it():
    """An option without a default value (None) either shows what not giving it means, or says it in its help."""
    import typer

    from timetag.cli import app

    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="timetag")
    silent = []
    for name in root.list_commands(ctx):
        cmd = root.get_command(ctx, name)
        for p in cmd.params:
            if p.param_type_name != "option" or p.required or p.hidden or p.is_flag or p.multiple:
                continue
            if p.default in (None, "") and not isinstance(p.show_default, str) \
                    and "default" not in (p.help or "").lower():
                silent.append(f"{name} {p.opts[0]}")
    assert not silent, f"options that do not say what their absence means: {silent}"


def test_in_and_out_format_everywhere(rows):
    shown = {(r["command"], r["long"]) for r in rows if not r["hidden"]}
    hidden = {(r["command"], r["long"]) for r in rows if r["hidden"]}
    for cmd in ("process", "info", "convert"):
        assert (cmd, "--in-format") in shown
    for cmd in ("convert", "simulate"):
        assert (cmd, "--out-format") in shown
    assert not any(long == "--format" for _, long in shown)
    assert hidden == {(c, "--format") for c in ("process", "info", "convert", "simulate")}


def test_scan_chunk_size_as_process(rows):
    def row(cmd):
        return next(r for r in rows if r["command"] == cmd and r["long"] == "--chunk-size")

    assert row("scan")["metavar"] == row("process")["metavar"] == "<int range> [x>=1]"
    assert row("scan")["default"] == row("process")["default"]


def test_docs_table_is_current():
    """docs/cli.md is what the script makes from the code as it is (regenerate it when a flag changes)."""
    import json

    mod = _flags_module()
    before = json.loads((ROOT / "benchmarks" / "cli_flags_before.json").read_text())
    assert (ROOT / "docs" / "cli.md").read_text() == mod.markdown(mod.option_rows(), before)


# ------------------------------------------------------------------------------------------------- behaviour


def _run(argv, capfd):
    with pytest.raises(SystemExit) as ei:
        main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return (ei.value.code or 0), out, err


@pytest.fixture(scope="module")
def text_tags(tmp_path_factory):
    d = tmp_path_factory.mktemp("vocab")
    p = d / "tags.txt"
    t = np.arange(1, 2001, dtype=np.int64) * 1000
    p.write_text("".join(f"{1 + i % 3} {v}\n" for i, v in enumerate(t)))
    return p


def test_old_format_still_works_with_a_warning(text_tags, tmp_path, capfd):
    code, out, err = _run(["convert", text_tags, tmp_path / "a.bin", "--format", "dump", "-q"], capfd)
    assert code == 0, err
    assert err.strip() == "warning: --format is deprecated, use --out-format (same meaning)"
    code, _, err = _run(["convert", text_tags, tmp_path / "b.bin", "-f", "dump", "-q"], capfd)
    assert code == 0, err
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    code, _, err = _run(["convert", text_tags, tmp_path / "c.bin", "--out-format", "dump", "-q"], capfd)
    assert code == 0 and err == "", err
    assert (tmp_path / "c.bin").read_bytes() == (tmp_path / "a.bin").read_bytes()
    code, out_old, err = _run(["info", tmp_path / "a.bin", "--format", "dump", "--json"], capfd)
    assert code == 0 and "deprecated, use --in-format" in err
    code, out_new, err = _run(["info", tmp_path / "a.bin", "--in-format", "dump", "--json"], capfd)
    assert code == 0 and err == "" and out_new == out_old


def test_old_and_new_format_disagreeing_is_refused(text_tags, tmp_path, capfd):
    code, _, err = _run(["convert", text_tags, tmp_path / "a.h5", "--format", "dump", "--out-format", "h5"], capfd)
    assert code == 2
    assert "--out-format h5 and --format dump disagree" in err
    assert not list(tmp_path.iterdir())


def test_quiet_convert_prints_nothing(text_tags, tmp_path, capfd):
    code, out, err = _run(["convert", text_tags, tmp_path / "q.h5", "--quiet"], capfd)
    assert code == 0 and out == "" and err == ""
    code, out, err = _run(["convert", text_tags, tmp_path / "v.h5"], capfd)
    assert code == 0 and "2000 tags text ->" in err


def _first_error(guard, chunk):
    with pytest.raises(TimetagError) as info:
        list(guard.checked(chunk))
    return info.value


def test_a_backward_step_names_the_reorder_option_in_each_audiences_words():
    # the library names its keyword argument, the command line its flag (issue 20): both forms travel with the
    # exception (TimetagError.cli_message), nothing rewrites the text afterwards
    t = np.array([10, 20, 15, 30], np.int64)
    err = _first_error(OrderGuard("q.bin", reorders=True), TagChunk(t, np.ones(4, np.int32)))
    assert "use tolerance_ps=N" in str(err)
    cli = for_cli(err)
    assert "use timetag convert --tolerance-ps N" in cli and cli.startswith("q.bin, record 2: ")
    assert not re.search(r"\b[a-z]+_[a-z_]+=", cli), cli
    plain = _first_error(OrderGuard("t.txt"), TagChunk(t, np.ones(4, np.int32)))  # no such option there
    assert "tolerance" not in str(plain) and for_cli(plain) == str(plain)


def test_a_dropped_bad_record_warning_names_the_flag(recwarn):
    t = np.array([10, 20, 15, 30], np.int64)
    list(OrderGuard("d.dump", on_bad_record="lost").checked(TagChunk(t, np.ones(4, np.int32))))
    w = [x.message for x in recwarn if isinstance(x.message, TimetagWarning)]
    assert len(w) == 1
    assert "on_bad_record='lost'" in str(w[0]) and "meta['bad_records']" in str(w[0])
    assert "(--on-bad-record lost; later ones are counted in the summary)" in for_cli(w[0])
    assert not re.search(r"\b[a-z]+_[a-z_]+=", for_cli(w[0]))


@pytest.mark.parametrize("message,key,said", [
    ("--max-jump-ps is not available with --dask yet", "max_jump_ps", "p.h5: --max-jump-ps is not available"),
    ("--swmr applies to HDF5 output only", "swmr", "p.h5: --swmr applies"),
    ("must be >= 1 (got 0)", "labs.alice.round.threshold", "p.h5: [labs.alice.round.threshold] must be"),
])
def test_a_setup_error_names_its_key_once(message, key, said):
    assert str(SetupError(message, key=key, path="p.h5")).startswith(said)


def test_ptu_lost_data_error_names_the_flag(tmp_path, capfd):
    """The PTU writer's refusal of lost data, said by `timetag convert`: the flag, not drop_lost=True."""
    from timetag.chunk import LOST_DTYPE, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
    from timetag.formats.dump import write_dump

    lost = np.zeros(2, LOST_DTYPE)
    lost["time"], lost["kind"] = [150, 350], [OVERFLOW_BEGIN, OVERFLOW_END]
    src = tmp_path / "lost.dump"
    write_dump(src, TagChunk(np.arange(0, 1000, 10, dtype=np.int64), np.ones(100, np.int32), lost))
    code, _, err = _run(["convert", src, tmp_path / "out.ptu", "-q"], capfd)
    assert code == 2
    assert "--drop-lost" in err and "drop_lost" not in err, err
