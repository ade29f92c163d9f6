"""Start-up of the command line: `timetag --help`, `timetag info --help`, `timetag process --help` and
`timetag calibrate --help` as fresh processes (the wall time a user waits), and the fixed cost of a run: `timetag
process` on a small file (two rounds of the lmu2022 link, ~89,000 tags, one thread, summary table printed), timed
interleaved with two floors: `python -c pass` (the interpreter) and `python -c "import typer"` (the CLI library
every command pays for).  Best and median of the repetitions; also the CPU time (user + sys) of each process, which
other jobs on a shared machine disturb less than the wall time.

The targets (issue 18): <= 0.15 s for each `--help`; <= 0.2 s for the small run, whose engine work is a few ms:
the rest is what every `process` pays to start and finish (numpy, h5py, typer, rich, the engine's modules, the
rounds file).  A command's `--help` imports what its module imports at module level (`process`: the largest
signature; `calibrate`: a plugin, found through its entry point); the root `--help` imports no command module
(timetag.cli.SUMMARIES).  The untimed first run of each case fills the plugin cache (timetag.plugins.command_names),
as the first `--help` after an install does.  The package is compiled to bytecode first (benchmarks/_installed.py):
the times are those of an installed package, not of a checkout that a ``PYTHONDONTWRITEBYTECODE=1`` shell compiles
again in every process.
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
RUN_TARGET_S = 0.2
SMALL_ROUNDS = 2


def _timetag() -> list[str]:
    exe = shutil.which("timetag") or str(Path(sys.executable).with_name("timetag"))
    if Path(exe).exists():
        return [exe]
    return [sys.executable, "-m", "timetag"]


def _small_run(folder: Path):
    from timetag.simulator import load_preset, simulate

    return simulate(load_preset("lmu2022"), SMALL_ROUNDS, 2022, folder)


def _cases(small, out: Path) -> dict[str, list[str]]:
    tt = _timetag()
    return {
        "python": [sys.executable, "-c", "pass"],
        "typer": [sys.executable, "-c", "import typer"],
        "help": [*tt, "--help"],
        "info_help": [*tt, "info", "--help"],
        "process_help": [*tt, "process", "--help"],
        "calibrate_help": [*tt, "calibrate", "--help"],
        "process_small": [*tt, "process", str(small.alice), "--setup", str(small.setup), "--lab", "alice",
                          "--out", str(out), "--threads", "1", "--force"],
    }


LABELS = {"help": "`timetag --help`", "info_help": "`timetag info --help`",
          "process_help": "`timetag process --help`", "calibrate_help": "`timetag calibrate --help`",
          "process_small": f"`timetag process` of {SMALL_ROUNDS} lmu2022 rounds (one thread, summary printed)"}
TARGETS = {"process_small": RUN_TARGET_S}


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
    from _installed import compile_package

    compile_package()
    repeat = 5 if quick else 10
    small = _small_run(R.scratch() / "startup_small")
    argvs = _cases(small, R.scratch() / "startup_small" / "alice_rounds.h5")
    cpu = {k: [] for k in argvs}
    cases = {k: _runner(v, cpu[k]) for k, v in argvs.items()}
    load_before = os.getloadavg()[0]
    ts = R.interleaved(cases, repeat)
    load = f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    cpu = {k: v[-repeat:] for k, v in cpu.items()}   # the timed runs, not the warm-up
    rows = []
    for key, label in LABELS.items():
        target = TARGETS.get(key, TARGET_S)
        rows.append({"name": f"startup_{key}_s", "value": R.best(ts[key]), "median": R.median(ts[key]), "unit": "s",
                     "baseline": f"absolute; {label} as a fresh process, wall time (output to /dev/null); {load}",
                     "target": f"<= {target}", "gross_regression": R.best(ts[key]) > 4 * target,
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
