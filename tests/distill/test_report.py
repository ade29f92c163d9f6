import json


def test_report_is_strict_json(run):
    d = run.report.to_json()
    s = json.dumps(d, allow_nan=False)
    for k in ("rounds_alice", "key_rounds", "test_rounds", "S", "Q0", "Q1", "syndrome_bits", "hash_bits",
              "frames_failed", "f_measured", "eps_sec", "eps_cor", "final_length"):
        assert k in d
    assert json.loads(s)["final_length"] == run.report.final_length
