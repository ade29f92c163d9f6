"""`timetag estimate` end to end on hand-made rounds files, and its error messages."""
import json

import numpy as np
import pytest

from timetag.cli import main
from timetag.estimators import estimate
from timetag.estimators.model import sample_pairs
from timetag.records import FLAG_LOST_DATA, ROUND_DTYPE
from timetag.roundsfile import write_rounds


def labs(n=3000, V=0.9, seed=0, drop_b=(), x_allowed=None):
    rng = np.random.default_rng(seed)
    x, y, a, b = sample_pairs(n, V, rng)
    if x_allowed is not None:
        x = np.asarray(x_allowed)[x % len(x_allowed)]
    t = 10**12 + np.cumsum(rng.exponential(1e9, n)).astype(np.int64)
    A = np.zeros(n, ROUND_DTYPE)
    B = np.zeros(n, ROUND_DTYPE)
    A["trigger_time"], A["setting"], A["output"] = t, x, a
    B["trigger_time"], B["setting"], B["output"] = t + 1_234_567_890_123 + np.rint(5e-7 * t).astype(np.int64), y, b
    B = np.delete(B, list(drop_b))
    A["index"], B["index"] = np.arange(len(A)), np.arange(len(B))
    return A, B


def write_pair(tmp_path, A, B, hash_a="h1", hash_b="h1", role_a="alice", role_b="bob"):
    pa = write_rounds(tmp_path / "alice.h5", A, lab="lab1", role=role_a, setup_hash=hash_a)
    pb = write_rounds(tmp_path / "bob.h5", B, lab="lab2", role=role_b, setup_hash=hash_b)
    return pa, pb


def run(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_object_keys_and_values(tmp_path, capsys):
    A, B = labs(drop_b=[10, 500])
    pa, pb = write_pair(tmp_path, A, B)
    code, out, err = run(["estimate", str(pa), str(pb), "--json", "--samples", "2000"], capsys)
    assert code == 0, err
    res = json.loads(out)  # exactly one JSON object
    for k in ("rounds", "S", "S_err", "E", "Q0", "Q1", "Q", "key_rate_per_event", "min_block_length"):
        assert k in res
    assert set(res["E"]) == {f"{x},{y}" for x in range(4) for y in range(2)}
    assert set(res["key_rate_per_event"]) >= {"random_basis", "original"}
    assert res["rounds"] == len(A) - 2 and res["join"]["unmatched_alice"] == 2
    assert abs(res["S"] - 2 * np.sqrt(2) * 0.9) < 5 * res["S_err"]
    assert abs(res["Q"] - 0.05) < 5 * res["Q_err"]


def test_table_and_plots(tmp_path, capsys):
    A, B = labs(n=1500)
    A["flags"][:50] = FLAG_LOST_DATA
    pa, pb = write_pair(tmp_path, A, B)
    code, out, err = run(["estimate", str(pa), str(pb), "--plots", str(tmp_path / "figs"), "--samples", "500"], capsys)
    assert code == 0, err
    for word in ("E20", "S", "Q0", "Q1", "key rate", "block length"):
        assert word in out
    assert (tmp_path / "figs" / "correlations.png").stat().st_size > 1000
    assert (tmp_path / "figs" / "finite_key.png").stat().st_size > 1000


def test_flag_policy_reported_both_ways(tmp_path):
    A, B = labs(n=1500)
    A["flags"][:100] = FLAG_LOST_DATA
    pa, pb = write_pair(tmp_path, A, B)
    keep = estimate(pa, pb, samples=0)
    drop = estimate(pa, pb, flagged="drop", samples=0)
    assert keep["rounds"] == 1500 and drop["rounds"] == 1400
    assert keep["flagged_other_policy"]["rounds"] == 1400 and keep["flagged_other_policy"]["S"] == drop["S"]


def test_swapped_argument_order_is_sorted_by_role(tmp_path):
    A, B = labs(n=800)
    pa, pb = write_pair(tmp_path, A, B)
    assert estimate(pb, pa, samples=0)["S"] == estimate(pa, pb, samples=0)["S"]


@pytest.mark.parametrize("case, match", [
    ("same_lab", "same lab"),
    ("hash", "different runs"),
    ("empty", "empty"),
    ("no_test", "no test rounds"),
    ("no_key", "no key rounds"),
])
def test_bad_inputs_clear_messages(tmp_path, capsys, case, match):
    A, B = labs(n=600)
    kw = {}
    if case == "same_lab":
        kw = {"role_b": "alice"}
    elif case == "hash":
        kw = {"hash_a": "aaaa1111", "hash_b": "bbbb2222"}
    elif case == "empty":
        B = B[:0]
    elif case == "no_test":
        A, B = labs(n=600, x_allowed=[0, 1])
    elif case == "no_key":
        A, B = labs(n=600, x_allowed=[2, 3])
    pa, pb = write_pair(tmp_path, A, B, **kw)
    code, out, err = run(["estimate", str(pa), str(pb), "--json"], capsys)
    assert code == 2 and match in err and "Traceback" not in err
    if case == "hash":
        assert "aaaa1111" in err and "bbbb2222" in err


def test_missing_file_is_format_error(tmp_path, capsys):
    code, _, err = run(["estimate", str(tmp_path / "nope.h5"), str(tmp_path / "nope2.h5")], capsys)
    assert code == 2 and "no such file" in err
