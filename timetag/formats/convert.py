"""Stream a tag file into another format, chunk by chunk (what ``timetag convert`` does)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..chunk import DEFAULT_CHUNK_SIZE
from ..custody import AtomicOutput
from ..errors import SetupError
from ..provenance import provenance
from . import _check_format_name, _format_from_extension, open_tags, writer_for


def convert(src, dst, format: str | None = None, in_format: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
            drop_lost: bool = False, tolerance_ps: int = 0, swmr: bool = False, force: bool = False, *,
            progress: Callable[[int, int | None], None] | None = None,
            on_open: Callable[[Path], None] | None = None) -> dict:
    """Convert ``src`` to ``dst`` chunk by chunk; returns a small summary (tags written, formats).

    The output goes through custody (:class:`~timetag.custody.AtomicOutput`): written as ``<dst>.partial`` and
    renamed to ``dst`` when complete; ``dst`` is never the input (also through a link), an existing ``dst`` is
    replaced only with ``force`` (and stays whole until then), and a failed conversion leaves nothing behind.
    With ``swmr`` the partial file is the one to follow while it grows.

    ``progress(tags_written, records_in_input)`` is called after every chunk (``records_in_input`` is None when
    the reader learns it only at the end); ``on_open(partial_path)`` once the output file exists.
    """
    src, dst = Path(src), Path(dst)
    # the partial file's extension is '.partial': the format comes from the target, decided here
    fmt = _check_format_name(format.lower()) if format else _format_from_extension(dst)
    if swmr and fmt != "h5":
        raise SetupError("--swmr applies to HDF5 output only", key="swmr")
    opts = {"tolerance_ps": tolerance_ps} if tolerance_ps else {}
    n = 0
    with AtomicOutput(dst, inputs=[src], force=force) as out:
        reader = open_tags(src, chunk_size=chunk_size, format=in_format, **opts)
        if tolerance_ps and reader.format != "qutag":  # the other readers would ignore it without a word
            raise SetupError(f"--tolerance-ps reorders quTAG files only; {src} is {reader.format}",
                             key="tolerance_ps")
        meta = {"resolution_ps": reader.resolution_ps, "name": dst,  # name: for messages, not the partial file's
                "provenance": provenance(inputs=[src], converted_from=reader.format)}
        if drop_lost:
            meta["drop_lost"] = True
        if swmr:
            meta["swmr"] = True
        writer = writer_for(out.partial, fmt, **meta)
        if on_open is not None:
            on_open(out.partial)
        with writer:
            for chunk in reader:
                writer.write(chunk)
                n += len(chunk)
                if progress is not None:
                    progress(n, reader.records)
    return {"tags": n, "from": reader.format, "to": fmt, "output": str(dst),
            "lost_dropped": getattr(writer, "lost_dropped", 0)}


__all__ = ["convert"]
