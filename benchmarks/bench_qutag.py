"""quTAG reader: peak RSS that does not grow with the file, and the input checksum taken from the reader's reads.

Input: the real monotonic quTAG file ``eta_200204_qutag_320MHz_HBT_sync_filtered.qutag`` (see
/work/shared/data/real/SOURCES.md; 211 773 records) tiled into a larger file (each tile's times shifted past the
previous tile's end, so the order check passes), x95 (~200 MB) and x380 (~800 MB); x24 and x96 in ``--quick``.

* ``qutag_real_peak_rss_growth``: peak RSS of a fresh process reading the large file to the end minus the same
  for the small one (also with the checksum fed from the reads).  A whole-file mapping grows by the file size.
* ``qutag_real_read_rate`` and ``qutag_real_hashed_read_vs_read_then_hash``: the reader iterated to the end with
  the block checksum fed from its reads, against the reader followed by a second read of the file for the
  checksum (what ``process`` did before the quTAG reader fed it, on a thread of its own), timed interleaved, page
  cache warm: both do the same work on one thread here, so the ratio is ~1; what the reader's feed saves in
  ``process`` is the second read from disk of a file not in the page cache and the checksum thread's CPU.

Scratch files go to a temporary directory under ``$TMPDIR``, removed at exit.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE = "eta_200204_qutag_320MHz_HBT_sync_filtered.qutag"

# a fresh process reads the file to the end, keeping no chunk: its peak RSS is the reader's (argv: path, records,
# "hash" to feed the block checksum from the reads)
_RSS_READ = """
import sys
from timetag.formats.qutag import QutagReader
from timetag.provenance import InputChecksums
r = QutagReader(sys.argv[1])
sums = None
if sys.argv[3] == "hash":
    sums = InputChecksums([sys.argv[1]], in_stream=lambda _p: True)
    sums.attach(r)
n = sum(len(c) for c in r)
assert n == int(sys.argv[2]), n
if sums is not None:
    sums.result()
"""


def tiled(src: Path, n_tiles: int, out: Path) -> dict:
    """``src``'s records ``n_tiles`` times, each tile's times shifted 1 us past the previous tile's last time, under
    ``src``'s header with its size field patched."""
    from timetag.formats.qutag import HEADER_SIZE, RECORD_DTYPE

    raw = src.read_bytes()
    rec = np.frombuffer(raw, RECORD_DTYPE, offset=HEADER_SIZE, count=(len(raw) - HEADER_SIZE) // RECORD_DTYPE.itemsize)
    span = int(rec["time"].max()) - int(rec["time"][0]) + 1_000_000
    size = HEADER_SIZE + n_tiles * rec.nbytes
    header = bytearray(raw[:HEADER_SIZE])
    struct.pack_into("<I", header, 4, size & 0xFFFFFFFF)
    tile = rec.copy()
    with open(out, "xb") as fh:
        fh.write(header)
        for i in range(n_tiles):
            tile["time"] = rec["time"] + np.uint64(i * span)
            tile.tofile(fh)
    return {"records": int(n_tiles * rec.size), "file_mb": size / 1e6, "tiles": n_tiles}


def run(quick: bool) -> list[dict]:
    sys.path.insert(0, str(HERE))
    import _realistic as R

    src = R.REAL_DIR / SOURCE
    if not src.is_file():
        return []
    small, large = (24, 96) if quick else (95, 380)
    rows = []
    rss: dict = {}
    files: dict = {}
    for tiles in (small, large):
        path = R.scratch() / f"qutag_x{tiles}.qutag"
        info = tiled(src, tiles, path)
        files[tiles] = (path, info)
        for mode in ("read", "hash"):
            runs = [R.run_child([sys.executable, "-c", _RSS_READ, path, info["records"], mode]) for _ in range(2)]
            bad = [r for r in runs if r["rc"] != 0]
            if bad:
                raise RuntimeError(f"reading {path} failed: {bad[0]['err']}")
            rss[tiles, mode] = max(r["rss_mb"] for r in runs)
        if tiles == large:
            rows += _rates(path, info, repeat=3 if quick else 5)
            path.unlink()
    for mode, what in (("read", "read to the end"), ("hash", "read to the end, block checksum fed from the reads")):
        growth = rss[large, mode] - rss[small, mode]
        mb_s, mb_l = files[small][1]["file_mb"], files[large][1]["file_mb"]
        rows.append({"name": "qutag_real_peak_rss_growth" + ("_hashed" if mode == "hash" else ""), "value": growth,
                     "unit": "MB", "baseline": f"peak RSS of a fresh process, {what}: the real quTAG file tiled "
                                               f"x{large} ({mb_l:.0f} MB) minus x{small} ({mb_s:.0f} MB): "
                                               f"{rss[large, mode]:.0f} - {rss[small, mode]:.0f} MB",
                     "target": "flat (a few MB; the whole-file mapping grew by the file size)",
                     "gross_regression": growth > 64,
                     "peak_rss_mb": {f"x{small}": rss[small, mode], f"x{large}": rss[large, mode]}})
    files[small][0].unlink()
    return rows


def _rates(path: Path, info: dict, repeat: int) -> list[dict]:
    import _realistic as R
    from timetag.checksums import file_checksum
    from timetag.formats.qutag import QutagReader
    from timetag.provenance import InputChecksums

    n = info["records"]

    def hashed():
        r = QutagReader(path)
        sums = InputChecksums([path], in_stream=lambda _p: True)
        sums.attach(r)
        assert sum(len(c) for c in r) == n
        return sums.result()[0]

    def read_then_hash():
        assert sum(len(c) for c in QutagReader(path)) == n
        return file_checksum(path)

    def read():
        assert sum(len(c) for c in QutagReader(path)) == n

    assert hashed() == read_then_hash()
    ts = R.interleaved({"hashed": hashed, "read_then_hash": read_then_hash, "read": read}, repeat)
    what = f"real quTAG file tiled x{info['tiles']}: {n / 1e6:.1f} M records, {info['file_mb']:.0f} MB"
    return [{"name": "qutag_real_read_rate", "value": n / R.best(ts["read"]) / 1e6,
             "median": n / R.median(ts["read"]) / 1e6, "unit": "M records/s",
             "baseline": f"absolute; {what}; QutagReader(FILE) iterated to the end", "target": "report",
             "gross_regression": False, "repeat": repeat},
            R.ratio_row("qutag_real_hashed_read_vs_read_then_hash", ts["hashed"], ts["read_then_hash"],
                        "x read-then-hash speed", f"the reader, then file_checksum(FILE) (a second read); {what}",
                        "report (~1 here: the same work on one thread, page cache warm)", faster=True,
                        gross_below=0.7),
            R.ratio_row("qutag_real_hashed_read_vs_read", ts["hashed"], ts["read"], "x plain-read speed",
                        f"the reader without a checksum; {what}", "report", faster=True)]


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--full" not in sys.argv), indent=1))
