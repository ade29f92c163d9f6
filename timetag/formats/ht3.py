"""PicoQuant legacy HydraHarp ``.ht3`` files (format versions 1.0 and 2.0), T3 mode only.

A fixed ASCII header (ident "HydraHarp"), a binary header whose length depends on the number of input
channels and the imaging header size, then 32-bit HydraHarp T3 records (same layout as PTU).  Version 1.0
overflow records add 1024 sync periods; version 2.0 adds 1024 x the count they carry.  The sync period is
1/SyncRate from the header (an integer in Hz, so absolute times carry its rounding).  Channel convention and
time arithmetic as in :mod:`timetag.formats.ptu`.
"""
from __future__ import annotations

import struct

from ..chunk import DEFAULT_CHUNK_SIZE
from ..errors import FormatError
from ._common import check_readable
from .ptu import FAM_HH1, FAM_HH2, PtuReader

NAME = "ht3"
EXTENSIONS = (".ht3",)
MAGIC = b"HydraHarp"


def sniff(path, head: bytes) -> bool:
    return head[:16].startswith(MAGIC)


def parse_ht3_header(path) -> dict:
    with open(path, "rb") as fh:
        b = fh.read(65536)

    def need(pos: int, n: int, what: str):
        if pos + n > len(b):
            raise FormatError(f"HT3 header cut short while reading {what}: file has {len(b)} bytes",
                              path=path, offset=pos)

    need(0, 328, "the ASCII header")
    if not b[:16].startswith(MAGIC):
        raise FormatError(f"wrong ident {b[:16]!r} (an HT3 file starts with {MAGIC!r})", path=path, offset=0)
    text = lambda lo, hi: b[lo:hi].split(b"\0", 1)[0].decode("latin-1").strip()
    h = {"ident": text(0, 16), "format_version": text(16, 22), "creator": text(22, 40),
         "creator_version": text(40, 52), "file_time": text(52, 70), "comment": text(72, 328)}
    p = 328
    need(p, 72, "the binary header")
    _curves, bits, _active, mode, _sub, _binning = struct.unpack_from("<6i", b, p)
    p += 24
    h["resolution_ps"] = struct.unpack_from("<d", b, p)[0]
    p += 8
    _off, h["tacq_ms"] = struct.unpack_from("<ii", b, p)
    p += 40                         # offset, tacq, stop/restart/display settings
    p += 8 * 8 + 3 * 12 + 16 + 20   # curve mapping, params, repeat settings, script name
    need(p, 16 + 8 + 8 + 80 + 8 + 8 + 32, "the hardware header")
    h["hardware"] = text(p, p + 16)
    p += 24
    h["serial"], _nmod = struct.unpack_from("<ii", b, p)
    p += 8 + 80 + 8 + 8                # modules, base resolution, inputs enabled
    n_inputs = struct.unpack_from("<i", b, p)[0]
    p += 32
    if not 0 <= n_inputs <= 64:
        raise FormatError(f"implausible number of input channels {n_inputs}", path=path, offset=p - 32)
    p += 16 * n_inputs + 4 * n_inputs   # per-input settings, then input rates
    need(p, 24, "the TTTR header")
    h["sync_rate_hz"], _stop_after, _reason, img_hdr = struct.unpack_from("<4i", b, p)
    p += 16
    h["declared_records"] = struct.unpack_from("<q", b, p)[0]
    p += 8 + 4 * img_hdr
    h.update(bits=bits, mode=mode, n_inputs=n_inputs, data_offset=p)
    if bits != 32 or mode != 3:
        raise FormatError(f"only T3 mode (3) with 32-bit records is supported, file has mode {mode}, "
                          f"{bits} bits per record", path=path)
    if h["sync_rate_hz"] <= 0:
        raise FormatError(f"SyncRate is {h['sync_rate_hz']} Hz, cannot compute the sync period", path=path)
    return h


class Ht3Reader(PtuReader):
    format = NAME

    def _parse_header(self) -> None:
        h = parse_ht3_header(self.path)
        self.header = h
        self.tags = h
        self.version = h["format_version"]
        self.data_offset = h["data_offset"]
        v1 = self.version.startswith("1.")
        self.rectype = 0x00010304 if v1 else 0x01010304
        self.device = f"HydraHarp HT3 v{self.version}"
        self.family = FAM_HH1 if v1 else FAM_HH2
        self.is_t3 = True
        self.global_resolution_s = 1.0 / h["sync_rate_hz"]
        self.resolution_s = h["resolution_ps"] * 1e-12
        self.declared_records = h["declared_records"]

    @property
    def meta(self) -> dict:
        m = super().meta
        m.update(acquisition_time_s=self.header["tacq_ms"] / 1000.0, sync_rate_hz=self.header["sync_rate_hz"],
                 created=self.header["file_time"], declared_records=self.declared_records,
                 hardware=self.header["hardware"])
        return m


def open_reader(path, chunk_size: int = DEFAULT_CHUNK_SIZE, **opts) -> Ht3Reader:
    return Ht3Reader(check_readable(path), chunk_size, **opts)
