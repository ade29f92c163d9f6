"""The library side of `timetag convert` and `timetag info`: formats.convert and formats.summary, no CLI."""
import numpy as np
import pytest

from timetag.chunk import LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from timetag.errors import TimetagError
from timetag.formats import read_all
from timetag.formats.convert import convert
from timetag.formats.dump import write_dump
from timetag.formats.summary import OrderWatch, summarize


def _dump(path, n=10_000, channels=3, lost=True):
    t = np.arange(n, dtype=np.int64) * 10
    c = (np.arange(n) % channels).astype(np.int32) - 1   # channel -1: a Swabian falling edge
    lo = np.zeros(3 if lost else 0, LOST_DTYPE)
    if lost:
        lo["time"], lo["kind"], lo["channel"], lo["count"] = [15, 35, 50], [OVERFLOW_BEGIN, OVERFLOW_END, MISSED], \
            [0, 0, 1], [0, 0, 7]
    write_dump(path, TagChunk(t, c, lo))
    return t, c


def test_convert_reports_progress_and_the_open_partial(tmp_path):
    src = tmp_path / "a.dump"
    t, c = _dump(src, lost=False)
    seen, opened = [], []
    s = convert(src, tmp_path / "a.h5", chunk_size=3000, progress=lambda done, total: seen.append((done, total)),
                on_open=opened.append)
    assert s == {"tags": t.size, "from": "dump", "to": "h5", "output": str(tmp_path / "a.h5"), "lost_dropped": 0}
    assert [d for d, _ in seen] == [3000, 6000, 9000, 10_000] and seen[-1][1] == t.size
    assert opened == [tmp_path / "a.h5.partial"] and not opened[0].exists()
    back = read_all(tmp_path / "a.h5")
    assert np.array_equal(back.time, t) and np.array_equal(back.channel, c)


def test_convert_refusal_leaves_nothing(tmp_path):
    src = tmp_path / "a.dump"
    _dump(src)
    with pytest.raises(TimetagError, match="lost-data"):
        convert(src, tmp_path / "b.ptu", progress=lambda *a: None)
    assert list(tmp_path.iterdir()) == [src]


def test_summarize_counts_channels_lost_data_and_order(tmp_path):
    src = tmp_path / "a.dump"
    t, c = _dump(src)
    s = summarize(src, chunk_size=777)
    assert s["tags"] == t.size and s["records"] == t.size + 3
    assert s["channels"] == {str(k): int(v) for k, v in zip(*np.unique(c, return_counts=True))}
    assert s["lost"][0] == {"kind": "overflow", "start_ps": 15, "end_ps": 35}
    assert s["lost"][1]["kind"] == "missed" and s["lost"][1]["count"] == 7
    assert s["order"]["backward_steps"] == 0 and s["order"]["process_checks_order"] is True
    assert s["duration_ps"] == int(t[-1] - t[0])


@pytest.mark.parametrize("split", [1, 2, 3, 8])
def test_order_watch_is_independent_of_the_chunking(split):
    t = np.array([0, 10, 20, 15, 30, 5, 40, -50], np.int64)
    w = OrderWatch()
    for part in np.array_split(t, split):
        w.process(TagChunk(part, np.zeros(part.size, np.int32)))
    o = w.summary()
    assert o["backward_steps"] == 3 and o["max_backward_ps"] == 90
    assert o["first_backward"] == {"tag_index": 3, "before_ps": 20, "after_ps": 15}
    assert o["negative_times"] == 1 and o["first_negative"] == {"tag_index": 7, "time_ps": -50}
