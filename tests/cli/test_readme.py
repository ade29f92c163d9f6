"""Every command in the README runs, in order, as a user would type it (on simulated files)."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def _commands():
    cmds = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            line = line.strip()
            if "&&" in line:  # quick start: 'pip install ... && <command>'; the install is CI's job
                line = line.split("&&", 1)[1].strip()
            if line.startswith("timetag "):
                cmds.append(line)
    return cmds


def test_readme_has_the_quick_start_and_commands():
    cmds = _commands()
    assert "timetag demo" in cmds
    for name in ("simulate", "info", "process", "estimate", "calibrate", "convert", "live", "scan"):
        assert any(c.startswith(f"timetag {name} ") for c in cmds), name


@pytest.mark.slow
def test_readme_commands_and_python_api_run(tmp_path):
    for cmd in _commands():
        argv = [sys.executable, "-m", "timetag"] + shlex.split(cmd)[1:]
        proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    for out in ("alice_rounds.h5", "bob_rounds.h5", "calibrated.toml", "plots/correlations.png",
                "live/alice_rounds.h5", "alice_dask.h5", "scan/scan.csv", "run/alice.h5", "timetag-demo/plots"):
        assert (tmp_path / out).exists(), out
    (api,) = _blocks("python")
    proc = subprocess.run([sys.executable, "-c", api], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rounds, s = proc.stdout.split()
    # the snippet keeps the rounds of every chunk (the file holds several chunks of 20 000 records)
    assert (tmp_path / "run" / "alice.dump").stat().st_size // 16 > 3 * 20_000
    assert int(rounds) == 500 and 1.5 < float(s) < 2.9
