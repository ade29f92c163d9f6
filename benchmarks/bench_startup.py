"""Start-up of the command line: `timetag --help` and `timetag info --help` as fresh processes (the wall time a user
waits), timed interleaved with two floors: `python -c pass` (the interpreter) and `python -c "import typer"` (the
CLI library every command pays for).  Best and median of the repetitions.

The target (issue 18): <= 0.15 s for both.  `info --help` imports what `timetag/commands/info.py` imports at
module level; the root `--help` imports no command module (timetag.cli.SUMMARIES).
"""
from __future__ import annotations

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
    }


def _runner(argv: list[str]):
    def run():
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return run


def run(quick: bool) -> list[dict]:
    sys.path.insert(0, str(HERE))
    import _realistic as R

    repeat = 5 if quick else 10
    cases = {k: _runner(v) for k, v in _cases().items()}
    ts = R.interleaved(cases, repeat)
    rows = []
    for key, label in (("help", "`timetag --help`"), ("info_help", "`timetag info --help`")):
        rows.append({"name": f"startup_{key}_s", "value": R.best(ts[key]), "median": R.median(ts[key]), "unit": "s",
                     "baseline": f"absolute; {label} as a fresh process, wall time (output to /dev/null)",
                     "target": f"<= {TARGET_S}", "gross_regression": R.best(ts[key]) > 4 * TARGET_S,
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
