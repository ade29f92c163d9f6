"""Dask as a campaign runs it: `dask scheduler` and two `dask worker` processes started by hand, in another folder
than the client; the client gives relative paths.  The merged output equals the single-process run."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from timetag.roundsfile import read_rounds

pytest.importorskip("distributed")
DASK = Path(sys.executable).with_name("dask")


def _start(argv, cwd, log):
    return subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-threaded workers, all running in tmp_path/elsewhere; yields the address."""
    if not DASK.exists():
        pytest.skip("the dask command line is not installed")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    sched_file = elsewhere / "scheduler.json"
    log = open(elsewhere / "cluster.log", "wb")
    procs = [_start([str(DASK), "scheduler", "--scheduler-file", str(sched_file), "--port", "0", "--no-dashboard"],
                    elsewhere, log)]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sched_file.exists(), (elsewhere / "cluster.log").read_text()
        for _ in range(2):
            procs.append(_start([str(DASK), "worker", "--scheduler-file", str(sched_file), "--nthreads", "1",
                                 "--nworkers", "1", "--no-dashboard"], elsewhere, log))
        address = json.loads(sched_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()


def test_relative_paths_from_another_folder_give_the_single_process_output(cluster, tmp_path, monkeypatch):
    from timetag.distributed.run import process_files_dask
    from timetag.process import process_files
    from timetag.simulator import load_preset, simulate

    client_dir = tmp_path / "client"
    client_dir.mkdir()
    monkeypatch.chdir(client_dir)
    p = load_preset("lmu2022")
    simulate(p, 30, 5, Path("run"), speedup=p.speedup * 20)
    process_files([Path("run/alice.dump")], Path("run/setup.toml"), "alice", Path("single.h5"), progress=False)
    process_files_dask([Path("run/alice.dump")], Path("run/setup.toml"), "alice", Path("dask.h5"), dask=cluster,
                       n_partitions=4, chunk_size=4096)
    a, b = read_rounds("single.h5"), read_rounds("dask.h5")
    assert len(b.provenance["distributed"]["partitions"]) > 1
    np.testing.assert_array_equal(b.rounds, a.rounds)
    np.testing.assert_array_equal(b.heralds, a.heralds)
    # the scratch parts lived next to the output, and are gone; nothing was left in the workers' folder
    assert not Path("dask.h5.parts").exists()
    assert sorted(x.name for x in (tmp_path / "elsewhere").iterdir()
                  if not x.name.startswith("dask-scratch")) == ["cluster.log", "scheduler.json"]


def test_a_worker_that_cannot_see_the_input_says_so(cluster, tmp_path, monkeypatch):
    """The client sees the file, the workers (here: after it is moved away) do not: one clear error, no output."""
    from timetag.distributed.partition import Partition, Segment
    from timetag.distributed.worker import process_partition
    from distributed import Client

    from timetag.setupfile import load_setup
    from timetag.simulator import load_preset, simulate

    p = load_preset("lmu2022")
    sim = simulate(p, 10, 6, tmp_path / "run", speedup=p.speedup * 20)
    lab = load_setup(sim.setup).lab("alice")
    gone = tmp_path / "not-on-the-workers.dump"
    part = Partition(index=0, segments=(Segment(str(gone)),))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with Client(cluster) as client:
        rep = client.submit(process_partition, part, lab, str(scratch), pure=False).result()
    assert "cannot see the input" in rep["error"] and "shared file system" in rep["error"]
    assert not list(scratch.iterdir())
