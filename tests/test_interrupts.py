"""timetag.interrupts: a Ctrl-C whose KeyboardInterrupt was swallowed (raised inside a ``__del__``, as happens while
numba compiles) still stops the run at the next chunk."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from timetag import interrupts
from timetag.chunk import TagChunk
from timetag.stream import Collect, run_stream

ROOT = Path(__file__).resolve().parents[1]


def test_a_swallowed_interrupt_is_raised_again_between_chunks():
    previous = interrupts.install()
    try:
        try:
            interrupts.on_sigint(signal.SIGINT, None)
        except KeyboardInterrupt:
            pass  # swallowed, as "Exception ignored in __del__" does
        assert interrupts.requested()
        chunks = (TagChunk(np.arange(3, dtype=np.int64) + 10 * k, np.ones(3, np.int32)) for k in range(5))
        seen = Collect()
        with pytest.raises(KeyboardInterrupt):
            run_stream(chunks, seen)
        assert len(seen.events) == 1  # stopped after the first chunk, not at the end
    finally:
        interrupts.restore(previous)
    assert not interrupts.requested()
    interrupts.check()  # nothing pending: no exception


SWALLOWED = textwrap.dedent("""
    import sys, time
    import numpy as np
    from timetag import interrupts
    from timetag.chunk import TagChunk
    from timetag.stream import Collect, run_stream

    interrupts.install()

    class Slow:
        def __del__(self):
            print("ready", flush=True)
            time.sleep(3)       # Ctrl-C arrives here: Python would print "Exception ignored" and go on

    Slow()
    chunks = (TagChunk(np.arange(3, dtype=np.int64) + 10 * k, np.ones(3, np.int32)) for k in range(10**6))
    try:
        run_stream(chunks, Collect())
    except KeyboardInterrupt:
        print("stopped", flush=True)
        sys.exit(130)
    print("ran to the end", flush=True)
""")


def test_ctrl_c_inside_a_destructor_still_stops_the_run():
    p = subprocess.Popen([sys.executable, "-c", SWALLOWED], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        os.kill(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    # the first one was swallowed by Python, silently (no "Exception ignored" traceback on the terminal)...
    assert "Exception ignored" not in err and "Traceback" not in err, err
    assert p.returncode == 130 and out.strip() == "stopped", (out, err)  # ...and the run stopped all the same


def _wrapped_interrupt():
    """What a Ctrl-C during numba's loading of a cached kernel raises: a SystemError caused by the interrupt."""
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise SystemError("<function _numba_unpickle> returned a result with an exception set") from inner
    except SystemError as exc:
        return exc


def test_ctrl_c_wrapped_in_another_error_exits_130_in_one_line(monkeypatch, capsys):
    from timetag import cli

    exc = _wrapped_interrupt()

    def invoke(argv):
        raise exc

    monkeypatch.setattr(cli, "_invoke", invoke)
    monkeypatch.setattr(interrupts, "requested", lambda: True)
    with pytest.raises(SystemExit) as e:
        cli._run(["simulate"])
    assert e.value.code == 130
    assert capsys.readouterr().err.strip() == "error: interrupted (Ctrl-C)"
    # without a Ctrl-C the same error is not taken for one
    monkeypatch.setattr(interrupts, "requested", lambda: False)
    with pytest.raises(SystemError):
        cli._run(["simulate"])
    monkeypatch.setattr(interrupts, "requested", lambda: True)
    plain = SystemError("a bug")
    monkeypatch.setattr(cli, "_invoke", lambda argv: (_ for _ in ()).throw(plain))
    with pytest.raises(SystemError):
        cli._run(["simulate"])


def test_a_deferred_block_remembers_ctrl_c_and_raises_it_on_leaving(monkeypatch):
    """Inside `deferred` the handler only records the Ctrl-C (a KeyboardInterrupt raised in a lock's code could
    leave the lock held); leaving the block raises it, a cleanup block leaves it to the next check."""
    previous = interrupts.install()
    try:
        reached = []
        with pytest.raises(KeyboardInterrupt):
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                reached.append("after the signal")   # not interrupted here
        assert reached == ["after the signal"]
        with interrupts.deferred(raise_on_exit=False):
            os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    finally:
        interrupts.restore(previous)


def test_waiting_for_a_future_lets_ctrl_c_through_between_slices():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    previous = interrupts.install()
    release = threading.Event()
    try:
        with ThreadPoolExecutor(1) as pool:
            f = pool.submit(release.wait)
            threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
            with pytest.raises(KeyboardInterrupt):
                interrupts.result(f)
            release.set()
            interrupts.wait_quietly(f)   # the future's lock still works: it ends, nothing raised
            assert f.done()
    finally:
        release.set()
        interrupts.restore(previous)
