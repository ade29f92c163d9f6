"""Start-up of the command line: `timetag --help`, `timetag info --help`, `timetag process --help` and
`timetag calibrate --help` as fresh processes (the wall time a user waits), timed interleaved with two floors:
`python -c pass` (the interpreter) and `python -c "import typer"` (the CLI library every command pays for).  Best and
median of the repetitions; also the CPU time (user + sys) of each process, which other jobs on a shared machine
disturb less than the wall time.

The target (issue 18): <= 0.15 s for each.  A command's `--help` imports what its module imports at module level
(`process`: the largest signature; `calibrate`: a plugin, found through its entry point); the root `--help` imports
no command module (timetag.cli.SUMMARIES).  The untimed first run of each case fills the plugin cache
(timetag.plugins.command_names), as the first `--help` after an install does.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_S = 0.15


def _timetag() -> list[str]:
    exe = shutil.which("timetag") or str(Path(sys.executable).with_name("timetag"))
    if Path(exe).exists():
        return [exe]
    return [sys.executable, "-m", "timetag"]


def _cases() -> dict[str, list[str]]:
    tt = _timetag()
    return {
        "python": [sys.executable, "-c", "pass"],
        "typer": [sys.executable, "-c", "import typer"],
        "help": [*tt, "--help"],
        "info_help": [*tt, "info", "--help"],
        "process_help": [*tt, "process", "--help"],
        "calibrate_help": [*tt, "calibrate", "--help"],
    }


LABELS = {"help": "`timetag --help`", "info_help": "`timetag info --help`",
          "process_help": "`timetag process --help`", "calibrate_help": "`timetag calibrate --help`"}


def _runner(argv: list[str], cpu: list[float]):
    """A case: run ``argv`` to its end, its CPU time (user + sys, from wait4) appended to ``cpu``."""
    def run():
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, argv)
        cpu.append(usage.ru_utime + usage.ru_stime)
    return run


def run(quick: bool) -> list[dict]:
    sys.path.insert(0, str(HERE))
    import _realistic as R

    repeat = 5 if quick else 10
    cpu = {k: [] for k in _cases()}
    cases = {k: _runner(v, cpu[k]) for k, v in _cases().items()}
    load_before = os.getloadavg()[0]
    ts = R.interleaved(cases, repeat)
    load = f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    cpu = {k: v[-repeat:] for k, v in cpu.items()}   # the timed runs, not the warm-up
    rows = []
    for key, label in LABELS.items():
        rows.append({"name": f"startup_{key}_s", "value": R.best(ts[key]), "median": R.median(ts[key]), "unit": "s",
                     "baseline": f"absolute; {label} as a fresh process, wall time (output to /dev/null); {load}",
                     "target": f"<= {TARGET_S}", "gross_regression": R.best(ts[key]) > 4 * TARGET_S,
                     "repeat": repeat})
        rows.append({"name": f"startup_{key}_cpu_s", "value": R.best(cpu[key]), "median": R.median(cpu[key]),
                     "unit": "s", "baseline": f"absolute; {label}: CPU time (user + sys) of the process "
                     f"(`python -c pass`: best {R.best(cpu['python']):.3f} s, `python -c 'import typer'`: best "
                     f"{R.best(cpu['typer']):.3f} s)", "target": "report", "gross_regression": False,
                     "repeat": repeat})
        rows.append({"name": f"startup_{key}_minus_typer_s", "value": R.best(ts[key]) - R.best(ts["typer"]),
                     "median": R.median(ts[key]) - R.median(ts["typer"]), "unit": "s",
                     "baseline": f"{label} minus `python -c 'import typer'` (best {R.best(ts['typer']):.3f} s, "
                                 f"median {R.median(ts['typer']):.3f} s; `python -c pass`: best "
                                 f"{R.best(ts['python']):.3f} s, median {R.median(ts['python']):.3f} s)",
                     "target": "report", "gross_regression": False, "repeat": repeat})
    return rows


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--full" not in sys.argv), indent=1))
