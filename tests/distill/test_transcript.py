import numpy as np
import pytest

from timetag.distill.transcript import Transcript, read_h5
from timetag.distill.verify import TAG_BITS


@pytest.fixture(scope="module")
def blind_run(labs):
    # frames designed for QBER 0.025 while the raw keys differ in ~3 %: blind rounds are needed
    from timetag.distill import distill
    return distill(*labs, seed=5, qber=0.025)


@pytest.mark.parametrize("which", ["run", "blind_run", "batched_run"])
def test_leak_in_report_equals_bits_in_transcript(which, request, tmp_path):
    run = request.getfixturevalue(which)
    p = tmp_path / "t.h5"
    run.transcript.write_h5(p)
    msgs = read_h5(p)
    by = {}
    for m in msgs:
        by.setdefault(m["kind"], []).append(m)
    # recomputed from the payloads, not from the leak attributes; one code plan, syndromes and tags per batch
    assert len(by["code_plan"]) == len(by["syndromes"]) == len(by["frame_tags"]) == len(by.get("error_count", [])) + 1
    syndrome = sum(x["payload"]["syndromes"].size for x in by["syndromes"])
    credit = sum(x["payload"]["syndromes"].shape[0] * len(c["payload"]["punctured_positions"])
                 for x, c in zip(by["syndromes"], by["code_plan"]))
    status = sum(x["payload"]["ok"].size for x in by["frame_status"])
    revealed = sum(x["payload"]["bits"].size for x in by.get("reveal", []))
    tag_bits = sum(x["payload"]["tags"].size for x in by["frame_tags"]) * 16
    counts = sum(int(np.ceil(np.log2(int(x["payload"]["bits"]) + 1))) for x in by.get("error_count", []))
    ec = syndrome - credit + status + revealed + tag_bits + counts
    counted = (ec + sum(x["payload"]["bits"].size for x in by.get("sample_bits", []))
               + by["verify_tags"][0]["payload"]["tags"].size * TAG_BITS + 1)
    assert counted == run.report.leak_total == sum(x["leak_bits"] for x in msgs)
    assert run.report.leak_ec == ec and run.report.error_count_bits == counts
    assert run.report.frames == sum(x["payload"]["syndromes"].shape[0] for x in by["syndromes"])
    # blind rounds (if any), each answered by a status bit per undecoded frame; all were revealed punctured bits
    assert revealed == run.report.revealed_bits
    assert len(by["frame_status"]) == len(by["syndromes"]) + len(by.get("reveal", []))
    if which == "blind_run":
        assert by.get("reveal") and run.report.keys_equal and run.report.final_length > 0
    if which == "batched_run":
        assert len(by["error_count"]) == 1 and counts > 0
    for rv, st in zip(msgs, msgs[1:]):  # every blind round is answered at once, a status bit per frame in it
        if rv["kind"] == "reveal":
            assert st["kind"] == "frame_status"
            assert rv["payload"]["frames"].size == st["payload"]["ok"].size == rv["payload"]["bits"].shape[0]
    # the key permutation's seed is public and charged nothing
    (perm,) = by["key_permutation"]
    assert perm["leak_bits"] == 0 and int(perm["payload"]["seed"]) == run.report.code["permutation_seed"]


def test_roundtrip_of_packed_payloads(tmp_path):
    tr = Transcript()
    bits = np.random.default_rng(0).integers(0, 2, (3, 13), dtype=np.uint8)
    tr.send("alice", "syndromes", {"syndromes": bits, "note": "x"}, leak_bits=39, packed=("syndromes",))
    tr.write_h5(tmp_path / "t.h5")
    (m,) = read_h5(tmp_path / "t.h5")
    assert m["sender"] == "alice" and m["leak_bits"] == 39 and m["payload"]["note"] == "x"
    assert np.array_equal(m["payload"]["syndromes"], bits)
