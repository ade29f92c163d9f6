"""The block checksum computed the plain way, from the whole file's bytes (its definition, written out again)."""
from __future__ import annotations

import xxhash


def block_checksum(data: bytes) -> str:
    leaves = b"".join(xxhash.xxh3_128_digest(data[i:i + (1 << 20)]) for i in range(0, len(data), 1 << 20))
    return "xxh3_128_1mib:" + xxhash.xxh3_128_hexdigest(leaves)
