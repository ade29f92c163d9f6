"""Headless status: one JSON object per line per status interval (``--json-lines``), for automation."""
from __future__ import annotations

import json
import math
import sys
from typing import IO


def _clean(obj):
    # JSON has no NaN/inf: such values become null so every line parses with a strict reader.
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item"):
        return _clean(obj.item())
    return obj


class JsonLinesWriter:
    """A status callback writing compact JSON lines (``kind`` = 'status' or 'summary')."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout
        self.lines = 0

    def __call__(self, status: dict) -> None:
        self.write({"kind": "status", **status})

    def write(self, obj: dict) -> None:
        self.stream.write(json.dumps(_clean(obj), separators=(",", ":"), sort_keys=False) + "\n")
        self.stream.flush()
        self.lines += 1
