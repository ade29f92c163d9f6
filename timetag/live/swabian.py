"""Live source over a Swabian Instruments Time Tagger (``pip install Swabian-TimeTagger``; closed source).

The vendor module is imported only when a :class:`SwabianSource` connects, so timetag works without it.  The
adapter opens the device (:func:`.device.open_tagger`: no device, busy, licence and USB failures in one line
each), sets it up from the lab's ``[labs.<name>.device]`` table (:func:`.device.apply`), optionally starts the
vendor's ``FileWriter`` (raw tags in its ``.ttbin`` format) and a ``TimeTagStream(tagger, n_max_events,
channels)``, and polls ``getData()``.  Each buffer becomes one :class:`~timetag.chunk.TagChunk`; the events that
are not tags become lost-data events:

=====================  ==========================
TagType                lost-data event
=====================  ==========================
OverflowBegin (2)      ``OVERFLOW_BEGIN``
OverflowEnd (3)        ``OVERFLOW_END``
MissedEvents (4)       ``MISSED`` (count = missed events of that channel)
Error (1)              ``ERROR``
=====================  ==========================

Those are the *device's* losses (USB or PC too slow; ``hasOverflows`` flags a buffer holding them).  The
stream's *own* buffer is a second place where tags are lost: it holds ``n_max_events`` events, and when more
arrive before the next ``getData()`` the rest are discarded silently -- the vendor documents ``size ==
n_max_events`` as the only sign.  Such a buffer opens a lost-data interval at its last event and the next buffer
with events closes it at its first one (:class:`StreamBufferReader`), so the engine flags every round whose
windows touch the gap.  ``tStart`` (where the stream started) and ``tGetData`` (where each ``getData()`` found it)
give the run's device time.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..chunk import ERROR, LOST_DTYPE, MISSED, OVERFLOW_BEGIN, OVERFLOW_END, TagChunk
from ..errors import OutputError, TimetagError
from ..formats.swabian_vendor import (_DEFAULT_CODES, TT_TIMETAG, buffer_events, events_to_chunk, type_codes,
                                      vendor_module)
from ..setupfile import DeviceConfig
from . import device as device_setup
from .sources import Batch, Source



def import_timetagger():
    """The vendor module (see :mod:`timetag.formats.swabian_vendor`); a one-line error when it is not installed."""
    module = vendor_module()
    if module is None:
        raise TimetagError("the Swabian Time Tagger software is not installed: `pip install Swabian-TimeTagger` "
                           "(or use --source swabian-fake for a demonstration without hardware)")
    return module


def buffer_to_chunk(buf, *, codes: dict[int, int] | None = None, tag_code: int = TT_TIMETAG,
                    offset: int = 0) -> TagChunk:
    """One ``TimeTagStreamBuffer`` as a TagChunk, on its own (a full stream buffer needs the next one too:
    :class:`StreamBufferReader`)."""
    return events_to_chunk(*buffer_events(buf, offset), codes=codes, tag_code=tag_code, offset=offset)


def _lost_event(time_ps: int, kind: int) -> np.ndarray:
    ev = np.zeros(1, LOST_DTYPE)
    ev["time"], ev["kind"] = time_ps, kind
    return ev


class StreamBufferReader:
    """The buffers of one ``TimeTagStream`` in order -> TagChunks, a full stream buffer made a lost interval.

    A buffer of ``n_max_events`` events may have lost any event after its last one, up to where the next buffer
    starts: OVERFLOW_BEGIN at its last event (after every event of that instant, so that a device OverflowEnd
    delivered just before cannot close it), OVERFLOW_END at the first event of the next buffer that has one
    (before every event of that instant).  Until then the interval stays open: rounds after it are flagged.
    """

    def __init__(self, n_max_events: int, *, codes: dict[int, int] | None = None, tag_code: int = TT_TIMETAG):
        if n_max_events < 1:
            raise ValueError(f"n_max_events must be >= 1 (got {n_max_events})")
        self.n_max_events = int(n_max_events)
        self.codes, self.tag_code = codes or _DEFAULT_CODES, tag_code
        self.offset = 0
        self.gap_open = False
        self.full_buffers = 0

    def read(self, buf) -> TagChunk:
        t, c, y, m = buffer_events(buf, self.offset)
        chunk = events_to_chunk(t, c, y, m, codes=self.codes, tag_code=self.tag_code, offset=self.offset)
        self.offset += len(chunk)
        parts = [chunk.lost]
        if self.gap_open and t.size:
            parts.insert(0, _lost_event(int(t[0]), OVERFLOW_END))
            self.gap_open = False
        if int(buf.size) >= self.n_max_events:
            self.full_buffers += 1
            parts.append(_lost_event(int(t[-1]), OVERFLOW_BEGIN))
            self.gap_open = True
        if len(parts) > 1:
            chunk.lost = np.concatenate(parts)
        return chunk


class SwabianSource(Source):
    """One Time Tagger = one lab.

    ``device``: the lab's ``[labs.<name>.device]`` table (None: the device is not set up, only read back);
    ``serial``: the device to open (also from the table; both given must agree); ``dry_run``: feed the table's
    ``test_signal_channels`` with the internal test signal.  ``n_max_events``: the stream buffer (events per
    poll); ``poll_interval``: seconds between ``getData()`` calls.  ``raw_path``: when set (before
    :meth:`start`), the vendor's ``FileWriter`` keeps the raw tags of the streamed channels there (``.ttbin``,
    split into ``name.1.ttbin``, ... at ``raw_max_file_size`` bytes).  ``module``: the vendor module or a
    stand-in (:mod:`.fake_swabian`); ``tagger``: an already opened device (not freed on close).
    ``writes_own_raw_tags`` (default: True when the vendor package itself is used) tells the live runner to pass
    ``raw_path`` instead of writing raw tags itself.
    """

    def __init__(self, channels: Sequence[int], *, lab: str = "alice", serial: str = "",
                 device: DeviceConfig | None = None, dry_run: bool = False, n_max_events: int = 20_000_000,
                 poll_interval: float = 0.05, module=None, tagger=None, duration_device_s: float | None = None,
                 raw_path=None, raw_max_file_size: int | None = None, writes_own_raw_tags: bool | None = None):
        super().__init__()
        if not channels:
            raise TimetagError("SwabianSource needs the channels to stream (from the setup's lab)")
        table_serial = device.serial if device is not None else ""
        if serial and table_serial and serial != table_serial:
            raise TimetagError(f"--serial {serial} and [labs.{lab}.device.serial] {table_serial} name different "
                               "Time Taggers")
        if not int(n_max_events) >= 1:
            raise TimetagError(f"the stream buffer must hold at least one event (got {n_max_events})")
        self.channels = [int(c) for c in channels]
        self.labs = (lab,)
        self.serial = serial or table_serial
        self.device = device
        self.dry_run = bool(dry_run)
        self.n_max_events = int(n_max_events)
        self.poll_interval = float(poll_interval)
        self.duration_device_s = duration_device_s
        self.raw_path = raw_path
        self.raw_max_file_size = raw_max_file_size
        self.writes_own_raw_tags = (module is None) if writes_own_raw_tags is None else bool(writes_own_raw_tags)
        self._module = module
        self._tagger = tagger
        self._own_tagger = tagger is None
        self._applied: dict | None = None
        self._stream = None
        self._file_writer = None
        self._reader: StreamBufferReader | None = None
        self.speed = 1.0
        self.description = f"Swabian Time Tagger{(' ' + self.serial) if self.serial else ''} channels {self.channels}"
        self._stats = {"buffers": 0, "events": 0, "device_overflow_buffers": 0, "full_stream_buffers": 0,
                       "missed_events": 0, "device_errors": 0}

    # --- device -------------------------------------------------------------------------------------------------
    def connect(self) -> None:
        """Load the vendor module, open the device and set it up (once; :meth:`start` does it too).  The CLI
        calls it before the run makes its files: a missing package or device, or a set-up the device refuses,
        ends the run with nothing left behind."""
        if self._module is None:
            self._module = import_timetagger()
        if self._tagger is None:
            resolution = self.device.resolution if self.device is not None else "Standard"
            self._tagger = device_setup.open_tagger(self._module, self.serial, resolution)
            self._own_tagger = True
            self._applied = None  # a device opened anew is set up anew
        if self._applied is None:
            try:
                self._applied = device_setup.apply(self._tagger, self.device, lab=self.labs[0],
                                                   stream_channels=self.channels, dry_run=self.dry_run)
            except BaseException:
                self._free_tagger()  # a refused set-up leaves the device free for the next attempt
                raise
            serial = self._applied.get("serial") or self.serial
            model = self._applied.get("model") or "Swabian Time Tagger"
            self.description = (f"{model} {serial}{' (dry run: test signal)' if self.dry_run else ''}, "
                                f"channels {self.channels}")

    def provenance(self) -> dict:
        """What the run's files record about the device: ``{"device": {...}}`` -- the set-up asked for, what the
        device's getters report after it was applied, its own ``getConfiguration()`` record, the stream's
        channels and buffer size.  Opens the device if it is not yet (so call it before any output exists)."""
        if self._applied is None:
            self.connect()
        rec = dict(self._applied)
        rec["stream"] = {"channels": list(self.channels), "n_max_events": self.n_max_events}
        rec["vendor_software"] = str(self._module.getVersion())
        return {"device": rec}

    # --- streaming ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._stream is not None:
            return
        super().start()
        self.connect()
        mod = self._module
        tag_code, codes = type_codes(mod)
        self._reader = StreamBufferReader(self.n_max_events, codes=codes, tag_code=tag_code)
        # the file writer first: started a moment earlier, its file holds every tag the stream will see
        if self.raw_path is not None:
            self._start_file_writer()
        try:
            self._stream = mod.TimeTagStream(self._tagger, self.n_max_events, self.channels)
        except device_setup.VENDOR_ERRORS as exc:
            raise device_setup.DeviceError(f"cannot start the time-tag stream of {self.description}: {exc}") from None

    def _start_file_writer(self) -> None:
        path = Path(self.raw_path)
        if path.exists():  # the vendor's writer would replace it
            raise OutputError(f"{path}: exists; choose another --out (a live run never replaces raw tag files)")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fw = self._module.FileWriter(self._tagger, str(path), self.channels)
            if self.raw_max_file_size:
                fw.setMaxFileSize(int(self.raw_max_file_size))
        except device_setup.VENDOR_ERRORS as exc:
            raise device_setup.DeviceError(f"{path}: the Time Tagger's FileWriter cannot write it: {exc}") from None
        self._file_writer = fw

    def _batches(self) -> Iterator[Batch]:
        next_poll = time.monotonic()
        while not self.stopped:
            next_poll += self.poll_interval
            if not self._sleep_until(next_poll):
                break
            running = self._stream.isRunning()  # asked first: a stream that ends now still hands over its last data
            buf = self._stream.getData()
            arrival = time.monotonic()
            chunk = self._reader.read(buf)
            self._count(buf, chunk)
            t_dev = int(buf.tGetData)
            yield Batch({self.labs[0]: chunk}, arrival=arrival, device_time_ps=t_dev)
            if self.duration_device_s is not None and (t_dev - int(buf.tStart)) * 1e-12 >= self.duration_device_s:
                break
            if not running:
                break

    def _count(self, buf, chunk: TagChunk) -> None:
        s = self._stats
        s["buffers"] += 1
        s["events"] += int(buf.size)
        s["device_overflow_buffers"] += int(bool(buf.hasOverflows))
        s["full_stream_buffers"] = self._reader.full_buffers
        kinds = chunk.lost["kind"]
        s["missed_events"] += int(chunk.lost["count"][kinds == MISSED].sum())
        s["device_errors"] += int(np.count_nonzero(kinds == ERROR))

    def stats(self) -> dict:
        return dict(self._stats)

    def close(self) -> None:
        try:
            for measurement in (self._stream, self._file_writer):
                if measurement is not None:
                    measurement.stop()
        finally:
            self._stream = self._file_writer = None
            self._free_tagger()

    def _free_tagger(self) -> None:
        if self._own_tagger and self._tagger is not None:  # also a device opened by connect() but not run
            self._module.freeTimeTagger(self._tagger)
            self._tagger = None
