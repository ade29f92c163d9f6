"""A/B: the engine of two source trees on the same full-scale lmu2022 stream, interleaved in one run.

    python benchmarks/ab_trees.py OLD_TREE NEW_TREE [--rounds 3342] [--repeat 5]

Each tree must have its extensions built in place (``python setup.py build_ext --inplace``).  The stream is
simulated once (preset ``lmu2022``, seed 2022, with the NEW tree); then, ``repeat`` times, each tree in turn runs
``LabPipeline`` over Alice's tags (in memory, chunks of the default size) in a fresh interpreter, timing the
engine only.  Reports best and median tags/s per tree and the ratio NEW/OLD.  Used for refactors that must leave
the engine's speed unchanged (issue #17); the numbers go to ``docs/performance.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_PROBE = r"""
import json, sys, time
import numpy as np
from timetag.chunk import DEFAULT_CHUNK_SIZE, TagChunk
from timetag.engine import LabPipeline
from timetag.formats import read_all
from timetag.setupfile import load_setup
tags = read_all(sys.argv[1])
lab = load_setup(sys.argv[2]).lab("alice")
n = len(tags)
step = DEFAULT_CHUNK_SIZE
chunks = [TagChunk(tags.time[i:i + step], tags.channel[i:i + step]) for i in range(0, n, step)]
LabPipeline(lab).run(chunks[:1])  # warm-up (first-touch of the buffers)
t0 = time.perf_counter()
rounds, heralds = LabPipeline(lab).run(chunks)
dt = time.perf_counter() - t0
print(json.dumps({"tags": n, "seconds": dt, "rounds": int(rounds.size)}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--rounds", type=int, default=3342)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    env_new = dict(os.environ, PYTHONPATH=str(a.new.resolve()))
    with tempfile.TemporaryDirectory(prefix="timetag-ab-") as tmp:
        sim = (f"from timetag.simulator import load_preset, simulate; "
               f"simulate(load_preset('lmu2022'), {a.rounds}, 2022, {str(Path(tmp) / 'run')!r})")
        subprocess.run([sys.executable, "-c", sim], env=env_new, check=True)
        dump, setup = Path(tmp) / "run" / "alice.dump", Path(tmp) / "run" / "setup.toml"
        got: dict[str, list[float]] = {"old": [], "new": []}
        rounds = {}
        for _ in range(a.repeat):
            for name, tree in (("old", a.old), ("new", a.new)):
                env = dict(os.environ, PYTHONPATH=str(tree.resolve()))
                out = subprocess.run([sys.executable, "-c", _PROBE, str(dump), str(setup)], env=env, check=True,
                                     capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                got[name].append(r["tags"] / r["seconds"])
                rounds[name] = r["rounds"]
    if rounds["old"] != rounds["new"]:
        print(f"the trees disagree: {rounds}", file=sys.stderr)
        return 1
    for name in ("old", "new"):
        v = got[name]
        print(f"{name}: {a.old if name == 'old' else a.new}: best {max(v) / 1e6:.1f} M tags/s, "
              f"median {statistics.median(v) / 1e6:.1f} M tags/s ({len(v)} runs)")
    print(f"new/old: best {max(got['new']) / max(got['old']):.3f}, "
          f"median {statistics.median(got['new']) / statistics.median(got['old']):.3f}; {rounds['new']} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
