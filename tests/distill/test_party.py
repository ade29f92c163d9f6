"""The two-party form: the role drivers over TCP on loopback (threads and subprocesses), HMAC, tampering, loss."""
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from timetag.distill.channel import AuthenticationError, ChannelError, decode, encode, mac
from timetag.commands.distill_party import run_role
from timetag.distill.party import Options, run_over_socket
from timetag.distill.transcript import Message
from timetag.roundsfile import write_rounds

PSK = bytes(range(32))


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _pair(alice_fn, bob_fn, via=None):
    """Run alice_fn(address) and bob_fn(address) in threads (alice listens on port 0); ``via(port) -> port`` puts
    a proxy between them.  Returns ({'alice': result or exception, 'bob': ...})."""
    ready, port, out = threading.Event(), [], {}

    def on_listening(host, p):
        port.append(p)
        ready.set()

    def wrap(name, fn, *args):
        try:
            out[name] = fn(*args)
        except BaseException as exc:  # noqa: BLE001
            out[name] = exc
        finally:
            ready.set()

    ta = threading.Thread(target=wrap, args=("alice", alice_fn, on_listening))
    ta.start()
    assert ready.wait(20) and port, out
    p = via(port[0]) if via else port[0]
    tb = threading.Thread(target=wrap, args=("bob", bob_fn, f"127.0.0.1:{p}"))
    tb.start()
    ta.join(60)
    tb.join(60)
    assert not ta.is_alive() and not tb.is_alive()
    return out


def _proxy(target_port, flip_at=None, cut_at=None):
    """A man in the middle on loopback: forwards both ways; in the alice -> bob stream flips the byte at offset
    ``flip_at`` or closes both connections after ``cut_at`` bytes.  Returns the port Bob should connect to."""
    srv = socket.create_server(("127.0.0.1", 0))

    def pump(src, dst, tamper):
        n = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if tamper and cut_at is not None and n + len(data) >= cut_at:
                    dst.sendall(data[:cut_at - n])
                    break
                if tamper and flip_at is not None and n <= flip_at < n + len(data):
                    data = bytearray(data)
                    data[flip_at - n] ^= 0x01
                    data = bytes(data)
                n += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def run():
        bob, _ = srv.accept()
        srv.close()
        alice = socket.create_connection(("127.0.0.1", target_port))
        threading.Thread(target=pump, args=(alice, bob, True), daemon=True).start()
        threading.Thread(target=pump, args=(bob, alice, False), daemon=True).start()

    threading.Thread(target=run, daemon=True).start()
    return srv.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory, labs):
    d = tmp_path_factory.mktemp("p")
    A, B = labs
    psk = d / "psk"
    psk.write_bytes(PSK)
    return (write_rounds(d / "alice.h5", A.rounds, lab="lab1", role="alice", setup_hash="h"),
            write_rounds(d / "bob.h5", B.rounds, lab="lab2", role="bob", setup_hash="h"), psk)


@pytest.mark.parametrize("which", [("labs", "run"), ("big_labs", "batched_run")])
def test_two_parties_over_tcp_give_the_one_process_keys_and_transcript(which, request, tmp_path):
    (A, B), run = request.getfixturevalue(which[0]), request.getfixturevalue(which[1])
    out = _pair(lambda cb: run_over_socket("alice", A, "127.0.0.1:0", PSK, Options(), seed=5, on_listening=cb),
                lambda addr: run_over_socket("bob", B, addr, PSK, Options()))
    ra, rb = out["alice"], out["bob"]
    assert not isinstance(ra, BaseException) and not isinstance(rb, BaseException), out
    assert ra.key.tobytes() == run.alice_key.tobytes() and rb.key.tobytes() == run.bob_key.tobytes()
    assert len(ra.key) == run.report.final_length > 0
    paths = []
    for name, tr in (("one", run.transcript), ("alice", ra.transcript), ("bob", rb.transcript)):
        paths.append(tmp_path / f"{name}.h5")
        tr.write_h5(paths[-1], attrs={"seed_source": "s"})
    assert len({_digest(p) for p in paths}) == 1
    # each party reports what it knows; authentication is accounted for
    assert rb.report.f_measured == pytest.approx(run.report.f_measured) and ra.report.f_measured is None
    assert ra.report.auth_bits == 256 * len(ra.transcript.messages) == rb.report.auth_bits
    assert ra.report.net_length == ra.report.final_length - ra.report.auth_bits
    assert ra.report.auth["mac"].startswith("HMAC-SHA256") and run.report.auth["mac"].startswith("none")
    assert [m.kind for m in ra.transcript.messages][:5] == ["hello", "hello", "triggers", "inputs", "inputs"]


def _cli_pair(files, tmp_path, via=None, psk_bob=None, alice_opts=None):
    fa, fb, psk = files
    oa, ob = tmp_path / "A", tmp_path / "B"
    common = dict(eps_sec=1e-5, eps_cor=1e-10, qber=None, sample_bits=None, f_design=None, flagged="keep",
                  patterns=None)
    out = _pair(lambda cb: _run_alice_cli(fa, oa, psk, cb, {**common, **(alice_opts or {})}),
                lambda addr: run_role("bob", fb, None, ob, connect=addr, psk=psk_bob or psk, **common), via)
    return out, oa, ob


def _run_alice_cli(fa, oa, psk, cb, params):
    return run_role("alice", fa, None, oa, listen="127.0.0.1:0", psk=psk, seed=5, on_listening=cb, **params)


def _no_outputs(*dirs):
    for d in dirs:
        assert not d.exists() or not any(d.iterdir()), list(d.iterdir())


def test_a_flipped_byte_in_flight_aborts_both_with_one_line_and_no_key(files, tmp_path):
    out, oa, ob = _cli_pair(files, tmp_path, via=lambda p: _proxy(p, flip_at=2_000_000))
    assert isinstance(out["bob"], AuthenticationError), out
    assert isinstance(out["alice"], ChannelError), out
    for exc in out.values():
        assert "\n" not in str(exc)
    assert "authentication" in str(out["bob"])
    _no_outputs(oa, ob)


@pytest.mark.parametrize("cut_at", [500, 3_000_000])
def test_a_lost_connection_aborts_both_with_one_line_and_no_outputs(files, tmp_path, cut_at):
    out, oa, ob = _cli_pair(files, tmp_path, via=lambda p: _proxy(p, cut_at=cut_at))
    assert isinstance(out["alice"], ChannelError) and isinstance(out["bob"], ChannelError), out
    assert "connection lost" in str(out["bob"]) and "\n" not in str(out["alice"])
    _no_outputs(oa, ob)


def test_another_psk_fails_authentication(files, tmp_path):
    other = tmp_path / "other"
    other.write_bytes(bytes(32))
    out, oa, ob = _cli_pair(files, tmp_path, psk_bob=other)
    assert isinstance(out["bob"], AuthenticationError) or isinstance(out["alice"], AuthenticationError), out
    _no_outputs(oa, ob)


def test_differing_parameters_are_refused_by_both(files, tmp_path):
    out, oa, ob = _cli_pair(files, tmp_path, alice_opts={"eps_sec": 1e-6})
    for role in ("alice", "bob"):
        assert "parameters differ" in str(out[role]) and "eps_sec" in str(out[role]), out
    _no_outputs(oa, ob)


def test_cli_two_processes_match_the_one_process_form(files, run, tmp_path):
    fa, fb, psk = files
    one = tmp_path / "one"  # what `timetag distill A B --seed 5` writes (tests/distill/test_command.py)
    one.mkdir()
    (one / "alice.key").write_bytes(np.packbits(run.alice_key).tobytes())
    (one / "bob.key").write_bytes(np.packbits(run.bob_key).tobytes())
    run.transcript.write_h5(one / "transcript.h5", attrs={"family": run.report.code["family"],
                                                          "seed_source": run.report.seeds["source"]})
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "timetag", "distill"]
    pa = subprocess.Popen(cmd + ["--role", "alice", "--listen", "127.0.0.1:0", str(fa), "--out", str(tmp_path / "a"),
                                 "--psk", str(psk), "--seed", "5"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, env=env)
    try:
        line = pa.stderr.readline()
        assert "listening on" in line, line
        port = int(line.rsplit(":", 1)[1])
        pb = subprocess.run(cmd + ["--role", "bob", "--connect", f"127.0.0.1:{port}", str(fb), "--out",
                                   str(tmp_path / "b"), "--psk", str(psk)], capture_output=True, text=True,
                            env=env, timeout=60)
        a_out, a_err = pa.communicate(timeout=60)
    finally:
        pa.kill()
    assert pb.returncode == 0 and pa.returncode == 0, (pb.stderr, a_err)
    assert (tmp_path / "a" / "alice.key").read_bytes() == (one / "alice.key").read_bytes()
    assert (tmp_path / "b" / "bob.key").read_bytes() == (one / "bob.key").read_bytes()
    assert len((one / "alice.key").read_bytes()) > 0
    assert _digest(tmp_path / "a" / "transcript.h5") == _digest(tmp_path / "b" / "transcript.h5") \
        == _digest(one / "transcript.h5")
    rep = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep["role"] == "bob" and rep["f_measured"] > 1 and rep["auth_bits"] > 0


def test_cli_refuses_two_party_misuse_before_connecting(files, tmp_path):
    fa, fb, psk = files
    from timetag.errors import EstimationError
    with pytest.raises(EstimationError, match="--psk"):
        run_role("alice", fa, None, tmp_path / "x", listen="127.0.0.1:0", psk=None)
    with pytest.raises(EstimationError, match="--connect"):
        run_role("bob", fb, None, tmp_path / "x", listen="127.0.0.1:0", psk=psk)
    with pytest.raises(EstimationError, match="alice's option"):
        run_role("bob", fb, None, tmp_path / "x", connect="127.0.0.1:1", psk=psk, seed=3)
    with pytest.raises(EstimationError, match="only this lab"):
        run_role("alice", fa, fb, tmp_path / "x", listen="127.0.0.1:0", psk=psk)
    short = tmp_path / "short"
    short.write_bytes(b"123")
    with pytest.raises(ChannelError, match="at least 32"):
        run_role("alice", fa, None, tmp_path / "x", listen="127.0.0.1:0", psk=short)
    assert not (tmp_path / "x").exists()


def test_wire_format_roundtrip_and_mac_binds_position_and_direction():
    msg = Message("alice", "syndromes", {"syndromes": np.eye(3, 13, dtype=np.uint8), "n": np.int64(7), "s": "x",
                                         "pts": np.array([1, 2], np.uint64)}, 39, ("syndromes",))
    body = encode(msg, 4)
    seq, back = decode(body)
    assert seq == 4 and back.kind == "syndromes" and back.leak_bits == 39 and back.payload["s"] == "x"
    assert np.array_equal(back.payload["syndromes"], msg.payload["syndromes"])
    assert back.payload["n"].shape == () and int(back.payload["n"]) == 7
    assert back.payload["pts"].dtype == np.uint64
    session = b"s" * 32
    tag = mac(PSK, session, "alice", 4, body)
    assert tag != mac(PSK, session, "alice", 5, body) and tag != mac(PSK, session, "bob", 4, body)
    assert tag != mac(PSK, b"t" * 32, "alice", 4, body)
    with pytest.raises(ChannelError, match="malformed"):
        decode(body[:-1])
