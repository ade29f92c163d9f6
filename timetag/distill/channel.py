"""The public channel of a distillation run: messages framed, authenticated (HMAC-SHA256) and recorded.

Both parties hold a :class:`Channel`; ``send`` and ``recv`` move one transcript message (sender, kind, named
payload arrays, ``leak_bits``) and append it to the party's own :class:`~.transcript.Transcript`, in the canonical
form the wire gives it (so the sender's and the receiver's transcripts are equal, and the one-process form's
equals the two-party form's).  Two transports, one protocol:

* :class:`MemoryChannel` (:func:`memory_pair`): two queues, for the one-process form (both roles in threads);
* :class:`SocketChannel` (:func:`listen`, :func:`connect`): a TCP connection between the two labs.

Wire format, per message: ``length (4 bytes, big-endian) | body | tag (32 bytes)``; body = ``header length (4) |
header (JSON) | payload bytes``, header = sequence number, sender, kind, leak_bits and per payload field its
dtype, shape and byte count (bit arrays travel packed).  ``tag = HMAC-SHA256(psk, "timetag-distill/1" | session |
sender | seq | body)``; ``session`` = the two 16-byte nonces exchanged in clear when the connection opens, so a
message of another session, another position or the other direction does not verify.  A tag that does not verify,
a message out of order or of an unexpected kind, a lost connection: :class:`ChannelError` (one line), the run is
aborted and no key is written.

Key consumed by authentication: HMAC under a reused pre-shared key is computationally secure.  An
information-theoretically secure system authenticates with Wegman-Carter tags, each of which consumes fresh key
bits; the report accounts for it as ``AUTH_BITS_PER_TAG`` (256) bits per message (``auth_bits``), to be paid from
the key the run produces (``net_length = final_length - auth_bits``).
"""
from __future__ import annotations

import abc
import hashlib
import hmac
import json
import os
import queue
import socket
import struct
import time

import numpy as np

from ..errors import TimetagError
from .transcript import Message, Transcript

PROTOCOL = b"timetag-distill/1"
TAG_BYTES = 32
AUTH_BITS_PER_TAG = 8 * TAG_BYTES
NONCE_BYTES = 16
MAX_BODY = 1 << 31              # 2 GiB: a larger length prefix is a corrupted stream, not a message
MIN_PSK_BYTES = 32
DEFAULT_TIMEOUT_S = 600.0
_ALLOWED_KINDS = "biuf"          # dtypes a payload may have (no objects)


class ChannelError(TimetagError):
    """The public channel failed: lost connection, unauthenticated or unexpected message."""


class AuthenticationError(ChannelError):
    """A message's tag does not verify under the pre-shared key."""


# -- message <-> bytes ------------------------------------------------------------------------------------------

def encode(msg: Message, seq: int) -> bytes:
    fields, blobs = [], []
    for name, value in msg.payload.items():
        if isinstance(value, str):
            fields.append({"name": name, "str": value})
            continue
        arr = np.asarray(value)
        if name in msg.packed:
            arr = np.asarray(value, np.uint8)
            bits = int(arr.shape[-1]) if arr.ndim else 0
            data = (np.packbits(arr, axis=-1) if arr.ndim else arr.reshape(1)).tobytes(order="C")
            fields.append({"name": name, "packed": True, "shape": list(arr.shape), "bits": bits,
                           "nbytes": len(data)})
        else:
            if arr.dtype.kind not in _ALLOWED_KINDS:
                raise ChannelError(f"message {msg.kind}: payload {name!r} has dtype {arr.dtype}, not sendable")
            data = arr.tobytes(order="C")  # (ascontiguousarray would make a 0-d array 1-d)
            fields.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape), "nbytes": len(data)})
        blobs.append(data)
    header = json.dumps({"seq": int(seq), "sender": msg.sender, "kind": msg.kind, "leak_bits": int(msg.leak_bits),
                         "fields": fields}, separators=(",", ":")).encode()
    return struct.pack(">I", len(header)) + header + b"".join(blobs)


def decode(body: bytes) -> tuple[int, Message]:
    try:
        (hl,) = struct.unpack(">I", body[:4])
        h = json.loads(body[4:4 + hl].decode())
        pos = 4 + hl
        payload, packed = {}, []
        for f in h["fields"]:
            name = f["name"]
            if "str" in f:
                payload[name] = str(f["str"])
                continue
            raw = body[pos:pos + int(f["nbytes"])]
            if len(raw) != int(f["nbytes"]):
                raise ValueError("payload shorter than its header says")
            pos += len(raw)
            shape = tuple(int(s) for s in f["shape"])
            if f.get("packed"):
                packed_arr = np.frombuffer(raw, np.uint8)
                if not shape:
                    payload[name] = packed_arr.reshape(())
                else:
                    pshape = shape[:-1] + ((shape[-1] + 7) // 8,)
                    payload[name] = np.unpackbits(packed_arr.reshape(pshape), axis=-1, count=int(f["bits"]))
                packed.append(name)
            else:
                dt = np.dtype(f["dtype"])
                if dt.kind not in _ALLOWED_KINDS:
                    raise ValueError(f"dtype {dt} not allowed")
                payload[name] = np.frombuffer(raw, dt).reshape(shape).copy()
        if pos != len(body):
            raise ValueError("trailing bytes")
        return int(h["seq"]), Message(str(h["sender"]), str(h["kind"]), payload, int(h["leak_bits"]), tuple(packed))
    except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as exc:
        raise ChannelError(f"malformed message on the public channel ({exc})") from None


def mac(psk: bytes, session: bytes, sender: str, seq: int, body: bytes) -> bytes:
    h = hmac.new(psk, digestmod=hashlib.sha256)
    for part in (PROTOCOL, session, sender.encode(), struct.pack(">Q", seq), body):
        h.update(struct.pack(">Q", len(part)))
        h.update(part)
    return h.digest()


def read_psk(path) -> bytes:
    """The pre-shared key: the file's bytes (at least 32 of them, e.g. ``head -c 32 /dev/urandom > psk``)."""
    from pathlib import Path
    p = Path(path)
    try:
        key = p.read_bytes()
    except OSError as exc:
        raise ChannelError(f"{p}: cannot read the pre-shared key ({exc.strerror or exc})") from None
    if len(key) < MIN_PSK_BYTES:
        raise ChannelError(f"{p}: pre-shared key of {len(key)} bytes; at least {MIN_PSK_BYTES} are needed")
    return key


# -- channels ---------------------------------------------------------------------------------------------------

class Channel(abc.ABC):
    """One party's end: ``send`` / ``recv`` transcript messages in protocol order; counts authenticated tags."""

    authenticated = False

    def __init__(self, role: str):
        if role not in ("alice", "bob"):
            raise ValueError(role)
        self.role = role
        self.peer = "bob" if role == "alice" else "alice"
        self.transcript = Transcript()
        self.seq = 0
        self.tags = 0           # authentication tags sent and received

    def send(self, kind: str, payload: dict, leak_bits: int = 0, packed=()) -> Message:
        msg = Message(self.role, kind, payload, int(leak_bits), tuple(packed))
        body = encode(msg, self.seq)
        self._send_body(body)
        _, canon = decode(body)
        self.seq += 1
        self.tags += 1
        self.transcript.messages.append(canon)
        return canon

    def recv(self, kind: str) -> Message:
        body = self._recv_body()
        seq, msg = decode(body)
        if seq != self.seq or msg.sender != self.peer:
            raise ChannelError(f"protocol error: expected message {self.seq} from {self.peer}, got {seq} from "
                               f"{msg.sender}")
        if msg.kind != kind:
            raise ChannelError(f"protocol error: expected {self.peer}'s {kind!r}, got {msg.kind!r}")
        self.seq += 1
        self.tags += 1
        self.transcript.messages.append(msg)
        return msg

    def close(self) -> None:
        pass

    @abc.abstractmethod
    def _send_body(self, body: bytes) -> None:
        """Deliver one encoded message to the peer (the transport's part)."""

    @abc.abstractmethod
    def _recv_body(self) -> bytes:
        """The peer's next encoded message."""


_CLOSED = object()


class MemoryChannel(Channel):
    """In-memory transport of the one-process form (no MAC: both ends are one process)."""

    def __init__(self, role: str, inbox: queue.Queue, outbox: queue.Queue, timeout: float | None = None):
        super().__init__(role)
        self.inbox, self.outbox, self.timeout = inbox, outbox, timeout
        self.closed = False

    def _send_body(self, body: bytes) -> None:
        if self.closed:
            raise ChannelError("public channel closed")
        self.outbox.put(body)

    def _recv_body(self) -> bytes:
        try:
            item = self.inbox.get(timeout=self.timeout)
        except queue.Empty:
            raise ChannelError(f"no message from {self.peer} within {self.timeout:g} s") from None
        if item is _CLOSED:
            raise ChannelError(f"connection lost: {self.peer} closed the public channel")
        return item

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.outbox.put(_CLOSED)


def memory_pair(timeout: float | None = None) -> tuple[MemoryChannel, MemoryChannel]:
    a2b, b2a = queue.Queue(), queue.Queue()
    return MemoryChannel("alice", b2a, a2b, timeout), MemoryChannel("bob", a2b, b2a, timeout)


class SocketChannel(Channel):
    """A TCP connection, every message authenticated with HMAC-SHA256 under the pre-shared key."""

    authenticated = True

    def __init__(self, role: str, sock: socket.socket, psk: bytes, timeout: float = DEFAULT_TIMEOUT_S):
        super().__init__(role)
        if len(psk) < MIN_PSK_BYTES:
            raise ChannelError(f"pre-shared key of {len(psk)} bytes; at least {MIN_PSK_BYTES} are needed")
        self.sock, self.psk = sock, bytes(psk)
        sock.settimeout(timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mine = os.urandom(NONCE_BYTES)
        self._sendall(PROTOCOL + mine)
        theirs = self._recv_exact(len(PROTOCOL) + NONCE_BYTES)
        if theirs[:len(PROTOCOL)] != PROTOCOL:
            raise ChannelError("the peer does not speak the timetag distill protocol")
        theirs = theirs[len(PROTOCOL):]
        self.session = mine + theirs if role == "alice" else theirs + mine

    def _sendall(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise ChannelError(f"connection to {self.peer} timed out") from None
        except OSError as exc:
            raise ChannelError(f"connection lost: sending to {self.peer} failed ({exc.strerror or exc})") from None

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            except socket.timeout:
                raise ChannelError(f"no message from {self.peer} within {self.sock.gettimeout():g} s") from None
            except OSError as exc:
                raise ChannelError(f"connection lost: receiving from {self.peer} failed "
                                   f"({exc.strerror or exc})") from None
            if not chunk:
                raise ChannelError(f"connection lost: {self.peer} closed the connection")
            buf += chunk
        return bytes(buf)

    def _send_body(self, body: bytes) -> None:
        tag = mac(self.psk, self.session, self.role, self.seq, body)
        self._sendall(struct.pack(">I", len(body)) + body + tag)

    def _recv_body(self) -> bytes:
        (n,) = struct.unpack(">I", self._recv_exact(4))
        if n > MAX_BODY:
            raise ChannelError(f"message of {n} bytes announced by {self.peer}: the stream is corrupted")
        body = self._recv_exact(n)
        tag = self._recv_exact(TAG_BYTES)
        if not hmac.compare_digest(tag, mac(self.psk, self.session, self.peer, self.seq, body)):
            raise AuthenticationError(f"message {self.seq} from {self.peer} failed authentication (HMAC-SHA256): "
                                      "altered in transit or a different pre-shared key; run aborted")
        return body

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ChannelError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def listen(address: str, psk: bytes, *, on_listening=None, timeout: float = DEFAULT_TIMEOUT_S) -> SocketChannel:
    """Alice's end: bind HOST:PORT (port 0: any free port), call ``on_listening(host, port)``, accept Bob."""
    host, port = parse_address(address)
    try:
        srv = socket.create_server((host, port))
    except OSError as exc:
        raise ChannelError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    with srv:
        srv.settimeout(timeout)
        if on_listening is not None:
            on_listening(*srv.getsockname()[:2])
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            raise ChannelError(f"bob did not connect to {host}:{srv.getsockname()[1]} within {timeout:g} s") from None
    try:
        return SocketChannel("alice", conn, psk, timeout)
    except BaseException:
        conn.close()
        raise


def connect(address: str, psk: bytes, *, retry_s: float = 30.0, timeout: float = DEFAULT_TIMEOUT_S) -> SocketChannel:
    """Bob's end: connect to Alice at HOST:PORT, retrying for ``retry_s`` while she is not listening yet."""
    host, port = parse_address(address)
    deadline = time.monotonic() + retry_s
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=min(timeout, 10.0))
            break
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ChannelError(f"cannot connect to alice at {host}:{port} ({exc.strerror or exc})") from None
            time.sleep(0.2)
    try:
        return SocketChannel("bob", sock, psk, timeout)
    except BaseException:
        sock.close()
        raise
