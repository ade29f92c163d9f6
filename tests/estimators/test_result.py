"""The typed estimate: Estimate.to_json() is the JSON object of `timetag estimate --json`, and reads back."""
import json

import pytest

from estimate_cases import labs, run, write_pair
from timetag.errors import EstimationError
from timetag.estimators import Estimate, estimate
from timetag.estimators.result import Bayes, Clock, Fidelity, JoinSummary, Posterior, SiftStats, WorstCase

# the key order of the JSON object scripts have been reading (changing it changes the printed bytes)
TOP_KEYS = ["rounds", "test_rounds", "key_rounds", "N", "E", "E_err", "P_same", "S", "S_err", "Q0", "Q0_err", "Q1",
            "Q1_err", "Q", "Q_err", "H_key_given_E", "key_rate_per_event", "key_rate_per_key_round",
            "thresholds_depolarising", "min_block_length", "finite_key", "fidelity", "bayes", "worst_case",
            "flagged_other_policy", "join", "sift", "files", "incomplete_inputs",
            "intervals", "warnings"]  # added by issue 21 (keys are only ever appended)
JOIN_KEYS = ["pairs", "unmatched_alice", "unmatched_bob", "offset_ps", "drift", "tolerance_ps", "method",
             "residual_rms_ps", "index_slips", "notes", "clock"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    A, B = labs(1500, drop_b=[3, 400])
    return write_pair(tmp_path_factory.mktemp("est"), A, B)


def test_estimate_is_typed(pair):
    est = estimate(*pair, samples=2000)
    assert isinstance(est, Estimate)
    assert isinstance(est.fidelity, Fidelity) and isinstance(est.join, JoinSummary)
    assert isinstance(est.join.clock, Clock) and isinstance(est.sift, SiftStats)
    assert isinstance(est.bayes, Bayes) and isinstance(est.bayes.S, Posterior)
    assert isinstance(est.bayes.key_rate_per_event["random_basis"], Posterior)
    assert isinstance(est.worst_case, WorstCase)
    assert est.join.unmatched_alice == 2 and est.join.clock.source == "estimated"
    assert est.S == est["S"] and 2.0 < est.S < 2.9


def test_to_json_is_what_the_command_prints(pair, capsys):
    code, out, err = run(["estimate", str(pair[0]), str(pair[1]), "--json", "--samples", "2000"], capsys)
    assert code == 0, err
    est = estimate(*pair, samples=2000)
    assert out == json.dumps(est.to_json(), allow_nan=False) + "\n"
    assert list(est.to_json()) == TOP_KEYS
    assert list(est.to_json()["join"]) == JOIN_KEYS


def test_without_samples_there_is_no_bayes_and_no_worst_case(pair):
    obj = estimate(*pair, samples=0).to_json()
    assert "bayes" not in obj and "worst_case" not in obj and "plots" not in obj
    assert list(obj) == [k for k in TOP_KEYS if k not in ("bayes", "worst_case")]


@pytest.mark.parametrize("samples", [0, 1000])
def test_from_json_reads_back_the_same_object(pair, samples):
    est = estimate(*pair, samples=samples)
    text = json.dumps(est.to_json(), allow_nan=False)
    back = Estimate.from_json(json.loads(text))
    assert back == est
    assert json.dumps(back.to_json(), allow_nan=False) == text


def test_dict_style_reading_and_fresh_copies(pair):
    est = estimate(*pair, samples=1000)
    assert "worst_case" in est and "plots" not in est
    assert est.get("plots") is None and est.get("plots", 1) == 1
    assert dict(est) == est.to_json() and list(est) == TOP_KEYS
    obj = est.to_json()
    obj["join"]["notes"].append("edited")
    obj["fidelity"]["V"][0] = -1
    assert "edited" not in est.join.notes and est.fidelity.V[0] != -1
    est.plots = ["a.png"]
    assert est.to_json()["plots"] == ["a.png"] and list(est.to_json())[-1] == "plots"


def test_from_json_refuses_unknown_and_missing_keys(pair):
    obj = estimate(*pair, samples=0).to_json()
    with pytest.raises(EstimationError, match="unknown key.*'Sigma'"):
        Estimate.from_json({**obj, "Sigma": 1})
    del obj["join"]["clock"]
    with pytest.raises(EstimationError, match="JoinSummary.*clock"):
        Estimate.from_json(obj)
