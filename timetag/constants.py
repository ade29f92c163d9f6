"""Constants shared by Python, the Cython modules and the C kernels, with what they mean.

Their values are written once, in ``cext/tt_constants.h``: the kernels include that header, and the
extension ``timetag._cext.constants`` hands the same values to this module, which names and documents
them (``tests/test_constants.py`` checks that every value of the header is here).  Codes are
:class:`enum.IntEnum` / :class:`enum.IntFlag` members, so they compare, hash and go into numpy arrays as
the plain integers stored in files.  The names of the provenance checksums, which are Python's only, sit at
the end, outside ``__all__``: here so that a command's help can show them without importing numpy.
"""
from __future__ import annotations

import enum

from ._cext import constants as _c

__all__ = [
    "INF", "PAD", "MAX_SLOTS", "MAX_LAB_CHANNELS", "MAX_BSM_DETECTORS", "SETTING_NONE",
    "PTU_SYNC_CHANNEL", "PTU_MARKER_BASE", "DEFAULT_CHUNK_SIZE",
    "Pattern", "RoundFlag", "TriggerMode", "Role", "LostKind", "DumpType", "PtuFamily", "PtuWrap",
]

# --- the readers --------------------------------------------------------------------------------------------

DEFAULT_CHUNK_SIZE: int = _c.DEFAULT_CHUNK_SIZE
"""Records a reader hands on per chunk unless told otherwise (memory ~ 60 bytes per record of a chunk).  Here, not
in :mod:`timetag.chunk`, so that command lines can show it as a default without importing numpy."""

# --- the engine -------------------------------------------------------------------------------------------

INF: int = _c.INF
"""Time 'never' (2**62 ps).  Real times stay inside +-2**61 ps (~27 days), so ``t +- INF`` never overflows."""

PAD: int = _c.PAD
"""Cells (INT64_MAX) after a row's tags: the kernels' searches read 8 at a time without a bounds check."""

MAX_SLOTS: int = _c.MAX_SLOTS
"""Length of the split's per-slot tables: a lab's channels and the junk slot of the others."""

MAX_LAB_CHANNELS: int = _c.MAX_LAB_CHANNELS
"""Channels one lab may use (its slots, the junk slot and room below :data:`MAX_SLOTS`)."""

MAX_BSM_DETECTORS: int = _c.MAX_BSM_DETECTORS
"""BSM detectors one lab may have (a click's key keeps its BSM row in 8 bits)."""

SETTING_NONE: int = _c.SETTING_NONE
"""Round 'setting' when the setting window holds no setting tag or more than one."""


class Pattern(enum.IntEnum):
    """Click pattern of a herald (herald and round records, field ``pattern``)."""

    NONE = _c.PATTERN_NONE
    """No BSM herald: Bob's rounds, or a 'ready' without a herald."""
    PSI_PLUS = _c.PATTERN_PSI_PLUS
    """Two detectors of the same arm, orthogonal polarisations."""
    PSI_MINUS = _c.PATTERN_PSI_MINUS
    """Detectors in different arms, orthogonal polarisations."""
    OTHER = _c.PATTERN_OTHER
    """Any other pattern of an attempt with >= 2 clicks (equal polarisations, 3+ clicks, too far apart)."""


class RoundFlag(enum.IntFlag):
    """Why a round is doubtful (round records, field ``flags``, a bit mask)."""

    LOST_DATA = _c.FLAG_LOST_DATA
    """A window of the round overlaps lost data (overflow, missed events, device error)."""
    SETTING_MISSING = _c.FLAG_SETTING_MISSING
    """No setting tag in the setting window."""
    SETTING_AMBIGUOUS = _c.FLAG_SETTING_AMBIGUOUS
    """More than one setting tag in the setting window."""
    HERALD_WITHOUT_READY = _c.FLAG_HERALD_WITHOUT_READY
    """A software herald without a hardware 'ready' tag (trigger 'both')."""
    READY_WITHOUT_HERALD = _c.FLAG_READY_WITHOUT_HERALD
    """A 'ready' tag without a matching software herald (trigger 'both')."""
    TRUNCATED = _c.FLAG_TRUNCATED
    """A window of the round is cut by the end of the data."""


class TriggerMode(enum.IntEnum):
    """What makes a round (setup key ``round.trigger``)."""

    HERALD = _c.TRIGGER_HERALD
    """The software herald, at herald time + ``ready_delay_ps``."""
    READY = _c.TRIGGER_READY
    """The hardware 'ready' tag."""
    BOTH = _c.TRIGGER_BOTH
    """The 'ready' tag, cross-checked against the software herald."""


class Role(enum.IntFlag):
    """What a lab's channel is for (a channel may have several roles, e.g. BSM and fluorescence)."""

    SYNC = _c.ROLE_SYNC
    """Excitation-attempt sync."""
    BSM = _c.ROLE_BSM
    """A detector of the Bell-state measurement."""
    READY = _c.ROLE_READY
    """The hardware 'event ready' signal."""
    SETTING = _c.ROLE_SETTING
    """A setting (input) channel."""
    FLUORESCENCE = _c.ROLE_FLUORESCENCE
    """A fluorescence (read-out) channel."""


class LostKind(enum.IntEnum):
    """Lost-data event of a tag stream (``timetag.chunk.LOST_DTYPE``, field ``kind``)."""

    OVERFLOW_BEGIN = _c.LOST_OVERFLOW_BEGIN
    """The device starts dropping tags."""
    OVERFLOW_END = _c.LOST_OVERFLOW_END
    """The device records tags again."""
    MISSED = _c.LOST_MISSED
    """``count`` tags of ``channel`` were lost around ``time``."""
    ERROR = _c.LOST_ERROR
    """A device error: the data around ``time`` are untrustworthy."""


class DumpType(enum.IntEnum):
    """Record type of a Swabian Time Tagger dump file (``timetag.formats.dump.RECORD_DTYPE``, field ``type``)."""

    TAG = _c.DUMP_TAG
    """A time tag (TimeTag)."""
    ERROR = _c.DUMP_ERROR
    """A device error (Error)."""
    OVERFLOW_BEGIN = _c.DUMP_OVERFLOW_BEGIN
    """The device starts dropping tags (OverflowBegin)."""
    OVERFLOW_END = _c.DUMP_OVERFLOW_END
    """The device records tags again (OverflowEnd)."""
    MISSED = _c.DUMP_MISSED
    """Tags lost on one channel, ``missed_events`` of them (MissedEvents)."""


# --- PicoQuant TTTR records -------------------------------------------------------------------------------

PTU_SYNC_CHANNEL: int = _c.PTU_SYNC_CHANNEL
"""Tag channel of the T2 sync record (HydraHarp family)."""

PTU_MARKER_BASE: int = _c.PTU_MARKER_BASE
"""Tag channel of marker bit 0; bits 0..3 give channels 100..103."""


class PtuFamily(enum.IntEnum):
    """How a PicoQuant device lays out its TTTR records."""

    PICOHARP = _c.PTU_FAMILY_PICOHARP
    """PicoHarp 300."""
    HYDRAHARP1 = _c.PTU_FAMILY_HYDRAHARP1
    """HydraHarp v1: a T2 overflow record is one wrap of 33 552 000 units."""
    HYDRAHARP2 = _c.PTU_FAMILY_HYDRAHARP2
    """HydraHarp v2, TimeHarp 260 N/P, MultiHarp, PicoHarp 330: overflow records carry a wrap count."""


class PtuWrap(enum.IntEnum):
    """Overflow period: one wrap-around of a record's time field, in time units (T2) or sync periods (T3)."""

    T2_PICOHARP = _c.PTU_T2_WRAP_PICOHARP
    """PicoHarp 300 T2 (28-bit field, the device's period)."""
    T2_HYDRAHARP1 = _c.PTU_T2_WRAP_HYDRAHARP1
    """HydraHarp v1 T2 (25-bit field, the device's period)."""
    T2_HYDRAHARP2 = _c.PTU_T2_WRAP_HYDRAHARP2
    """HydraHarp v2 family T2: 2**25."""
    T3_PICOHARP = _c.PTU_T3_WRAP_PICOHARP
    """PicoHarp 300 T3: 2**16 syncs."""
    T3_HYDRAHARP = _c.PTU_T3_WRAP_HYDRAHARP
    """HydraHarp family T3: 2**10 syncs."""


# --- provenance (Python only, not in the header) --------------------------------------------------------------
# Outside __all__, which lists the header's values (tests/test_constants.py checks each against it).  Here, not only
# in timetag.provenance (numpy, hashlib), so that `timetag process --help` can show them without those imports.

BLOCK_CHECKSUM: str = "xxh3_128_1mib"
"""xxh3-128 of the xxh3-128 digests of a file's :data:`CHECKSUM_BLOCK_BYTES` blocks (:mod:`timetag.checksums`):
threads reading parts of a file hash the blocks they map, none is read twice."""

CHECKSUM_BLOCK_BYTES: int = 1 << 20
"""The block of :data:`BLOCK_CHECKSUM` (part of its definition: changing it changes every checksum)."""

DEFAULT_CHECKSUM: str = BLOCK_CHECKSUM
"""Checksum of each input in a file's provenance unless told otherwise.  xxh3-128 hashes at memory speed (~20 GB/s
per core against ~1.5 for sha256): the checksum of a campaign's recordings costs less than reading them."""

CHECKSUMS: tuple[str, ...] = (BLOCK_CHECKSUM, "xxh3_128", "sha256", "blake2b")
"""The checksums a provenance can record (``--checksum``); the whole-file ones (``xxh3_128`` as ``xxhsum -H2``
gives it, sha256 e.g. for archives that index it) are read once more, in order, where threads read the file."""


def _attach_member_docs() -> None:
    """Give each enum member the string written under it as its ``__doc__`` (Python drops such strings at run
    time): ``help(Pattern.PSI_PLUS)``, the legends of rounds files and ``timetag info`` read them."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    for node in tree.body:
        cls = globals().get(getattr(node, "name", ""))
        if not (isinstance(node, ast.ClassDef) and isinstance(cls, type) and issubclass(cls, enum.Enum)):
            continue
        for stmt, nxt in zip(node.body, node.body[1:]):
            if (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                cls[stmt.targets[0].id].__doc__ = nxt.value.value


_attach_member_docs()
