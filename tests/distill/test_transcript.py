import numpy as np

from timetag.distill.transcript import Transcript, read_h5
from timetag.distill.verify import TAG_BITS


def test_leak_in_report_equals_bits_in_transcript(run, tmp_path):
    p = tmp_path / "t.h5"
    run.transcript.write_h5(p)
    msgs = read_h5(p)
    by = {}
    for m in msgs:
        by.setdefault(m["kind"], []).append(m)
    plan = by["code_plan"][0]["payload"]
    syn = by["syndromes"][0]["payload"]["syndromes"]
    frames, m = syn.shape
    # recomputed from the payloads, not from the leak attributes
    counted = (frames * m - frames * len(plan["punctured_positions"])
               + by["frame_status"][0]["payload"]["ok"].size
               + sum(x["payload"]["bits"].size for x in by.get("sample_bits", []))
               + by["verify_tags"][0]["payload"]["tags"].size * TAG_BITS + 1)
    assert counted == run.report.leak_total == sum(x["leak_bits"] for x in msgs)
    assert run.report.leak_ec == frames * m - frames * len(plan["punctured_positions"]) + frames


def test_roundtrip_of_packed_payloads(tmp_path):
    tr = Transcript()
    bits = np.random.default_rng(0).integers(0, 2, (3, 13), dtype=np.uint8)
    tr.send("alice", "syndromes", {"syndromes": bits, "note": "x"}, leak_bits=39, packed=("syndromes",))
    tr.write_h5(tmp_path / "t.h5")
    (m,) = read_h5(tmp_path / "t.h5")
    assert m["sender"] == "alice" and m["leak_bits"] == 39 and m["payload"]["note"] == "x"
    assert np.array_equal(m["payload"]["syndromes"], bits)
