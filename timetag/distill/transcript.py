"""Every public message of a distillation run, in order, with the key information it leaks.

A message has a sender (``alice`` / ``bob``), a kind, named payload arrays and ``leak_bits``: how many bits of
information about the raw key it can reveal, by the rule of its kind (see ``docs/distill.md``):

=================  =========================================================  ===================================
kind               payload                                                    leak_bits
=================  =========================================================  ===================================
``inputs``         pairing (round indices), inputs x and y of every used pair  0 (inputs are independent of keys)
``test_outputs``   a and b of the test rounds                                  0 (test rounds are not key rounds)
``sample_choice``  positions (in the key) disclosed for the QBER estimate     0
``sample_bits``    the disclosed key bits of the sender                       their number
``key_permutation`` seed of the public permutation of the key before framing  0 (independent of the key)
``code_plan``      family version, code, bits per frame, shortened and        0 (a function of public data)
                   punctured positions, frames, blind-round sizes
``syndromes``      packed syndrome of every frame (frames x m bits)           frames x (m - punctured)
``frame_tags``     a public point and a 16-bit tag of every frame's key bits   16 x frames
``frame_status``   one bit per frame (first; then per frame of a blind        its number of bits
                   round): decoded or not
``reveal``         a blind round: the undecoded frames (public already) and   the revealed bits
                   Alice's punctured bits of this round in each
``error_count``    after the first batch of frames: the errors Bob corrected   ceil(log2(bits + 1))
                   in its decoded frames, and their number of bits
``verify_points``  the hash's evaluation points                               0
``verify_tags``    the tags                                                   61 per tag
``verify_result``  1 bit: tags equal                                          1
``pa_seed``        the Toeplitz seed bits (packed), final length               0
=================  =========================================================  ===================================

``transcript.h5`` holds one group per message, ``/messages/NNNN_kind``, with attributes ``sender``, ``kind``,
``leak_bits`` and the payload as datasets (bit arrays packed with ``numpy.packbits``, ``bits`` attribute = length).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Message", "Transcript", "read_h5", "LEAKING_KINDS"]

LEAKING_KINDS = ("sample_bits", "syndromes", "frame_tags", "frame_status", "reveal", "error_count", "verify_tags",
                 "verify_result")


@dataclass
class Message:
    sender: str
    kind: str
    payload: dict
    leak_bits: int = 0
    packed: tuple = ()        # payload names that are bit arrays (stored packed)


@dataclass
class Transcript:
    messages: list = field(default_factory=list)

    def send(self, sender: str, kind: str, payload: dict, leak_bits: int = 0, packed=()) -> Message:
        msg = Message(sender, kind, payload, int(leak_bits), tuple(packed))
        self.messages.append(msg)
        return msg

    @property
    def leak_bits(self) -> int:
        return int(sum(m.leak_bits for m in self.messages))

    def leak_by_kind(self) -> dict:
        out: dict = {}
        for m in self.messages:
            out[m.kind] = out.get(m.kind, 0) + m.leak_bits
        return out

    def get(self, kind: str, sender: str | None = None) -> Message:
        for m in self.messages:
            if m.kind == kind and (sender is None or m.sender == sender):
                return m
        raise KeyError(kind)

    def write_h5(self, path, attrs: dict | None = None) -> None:
        """Write to a new file (never over one): the commands give the ``.partial`` of their custody outputs."""
        import h5py
        with h5py.File(path, "w-") as f:
            f.attrs["format"] = "timetag distill transcript"
            f.attrs["schema"] = 1
            f.attrs["leak_bits"] = self.leak_bits
            for k, v in (attrs or {}).items():
                f.attrs[k] = v
            g = f.create_group("messages")
            for i, m in enumerate(self.messages):
                mg = g.create_group(f"{i:04d}_{m.kind}")
                mg.attrs["sender"] = m.sender
                mg.attrs["kind"] = m.kind
                mg.attrs["leak_bits"] = m.leak_bits
                for name, value in m.payload.items():
                    if name in m.packed:
                        arr = np.asarray(value, np.uint8)
                        ds = mg.create_dataset(name, data=np.packbits(arr, axis=-1), compression="gzip",
                                               compression_opts=1)
                        ds.attrs["bits"] = arr.shape[-1] if arr.ndim else 0
                    elif isinstance(value, str):
                        mg.attrs[name] = value
                    else:
                        arr = np.asarray(value)
                        kw = {"compression": "gzip", "compression_opts": 1} if arr.size > 1024 else {}
                        mg.create_dataset(name, data=arr, **kw)


def read_h5(path) -> list[dict]:
    """The messages of a transcript file as dicts (sender, kind, leak_bits, payload with bit arrays unpacked)."""
    import h5py
    out = []
    with h5py.File(path, "r") as f:
        for key in sorted(f["messages"]):
            mg = f["messages"][key]
            payload = {k: v for k, v in mg.attrs.items() if k not in ("sender", "kind", "leak_bits")}
            for name, ds in mg.items():
                arr = ds[()]
                if "bits" in ds.attrs:
                    arr = np.unpackbits(arr, axis=-1, count=int(ds.attrs["bits"]))
                payload[name] = arr
            out.append({"sender": str(mg.attrs["sender"]), "kind": str(mg.attrs["kind"]),
                        "leak_bits": int(mg.attrs["leak_bits"]), "payload": payload})
    return out
