"""Swabian's closed Time Tagger library, where it is installed (``pip install "timetag[swabian]"``).

Current packages install it as ``Swabian.TimeTagger``, older installers as a top-level ``TimeTagger``.
Used by the ``.ttbin`` reader and the live device source (each says in its own words what is missing), with
the one conversion of the vendor's event arrays (time, channel, TagType, missed events) into a TagChunk.
"""
from __future__ import annotations

import numpy as np

from ..chunk import ERROR, LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from ..errors import FormatError


def vendor_module():
    """The vendor module, or None when it is not installed."""
    try:
        from Swabian import TimeTagger  # type: ignore[import-not-found]

        return TimeTagger
    except ImportError:
        pass
    try:
        import TimeTagger  # type: ignore[import-not-found]

        return TimeTagger
    except ImportError:
        return None


# Codes of the Time Tagger's TagType enum (identical to the Dump file's type byte); read from the module when
# it is there, so that a renumbering would be noticed.
TT_TIMETAG, TT_ERROR, TT_OVERFLOW_BEGIN, TT_OVERFLOW_END, TT_MISSED = 0, 1, 2, 3, 4
_DEFAULT_CODES = {TT_ERROR: ERROR, TT_OVERFLOW_BEGIN: OVERFLOW_BEGIN, TT_OVERFLOW_END: OVERFLOW_END,
                  TT_MISSED: MISSED}


def type_codes(module) -> tuple[int, dict[int, int]]:
    """(TimeTag code, {other TagType code: lost kind}) from the module's enum."""
    tt = module.TagType
    return int(tt.TimeTag), {int(tt.Error): ERROR, int(tt.OverflowBegin): OVERFLOW_BEGIN,
                             int(tt.OverflowEnd): OVERFLOW_END, int(tt.MissedEvents): MISSED}


def buffer_events(buf, offset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(time, channel, event type, missed count) of a ``TimeTagStreamBuffer``."""
    t = np.asarray(buf.getTimestamps(), dtype=np.int64)
    c = np.asarray(buf.getChannels(), dtype=np.int32)
    y = np.asarray(buf.getEventTypes()).astype(np.int64, copy=False)
    m = np.asarray(buf.getMissedEvents(), dtype=np.int64)
    if not (t.size == c.size == y.size == m.size):
        raise FormatError(f"Time Tagger buffer arrays differ in length at event {offset}: timestamps {t.size}, "
                          f"channels {c.size}, event types {y.size}, missed events {m.size}")
    return t, c, y, m


def events_to_chunk(t, c, y, m, *, codes: dict[int, int] | None = None, tag_code: int = TT_TIMETAG,
                    offset: int = 0) -> TagChunk:
    """Tags and the device's lost-data events (in time order, as the buffer holds them) as a TagChunk."""
    codes = codes or _DEFAULT_CODES
    is_tag = y == tag_code
    lost_sel = ~is_tag
    kinds = np.zeros(y.size, np.uint8)
    for code, kind in codes.items():
        kinds[y == code] = kind
    unknown = lost_sel & (kinds == 0)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise FormatError(f"unknown Time Tagger event type {int(y[i])} at event {offset + i} "
                          f"(known: {tag_code} TimeTag, {sorted(codes)})")
    lost = np.zeros(int(lost_sel.sum()), LOST_DTYPE)
    lost["time"], lost["kind"], lost["channel"], lost["count"] = t[lost_sel], kinds[lost_sel], c[lost_sel], m[lost_sel]
    return TagChunk(t[is_tag], c[is_tag], lost, offset)
