"""The completion state every output records, written last, and how readers check it."""
from __future__ import annotations

import enum

#: HDF5 attribute names of the completion record (on the file's root group).
STATE_ATTR = "completion"
REASON_ATTR = "completion_reason"


class Completion(str, enum.Enum):
    """How the run that wrote a file ended."""

    #: Being written now, or the writer was killed before it could say how it ended.
    RUNNING = "running"
    #: Every input was processed; the file holds the whole result.
    COMPLETE = "complete"
    #: Stopped on request (Ctrl-C, SIGTERM, ``--duration``) before the input ended; what was made is kept.
    INTERRUPTED = "interrupted"
    #: Stopped by an error (bad record, disk full, ...); the reason says where and why.
    FAILED = "failed"
    #: Saved from a killed writer's partial file by ``timetag recover``.
    RECOVERED = "recovered"

    def __str__(self) -> str:
        return self.value


def read_state(attrs) -> tuple[Completion, str]:
    """(state, reason) from a file's attributes.

    Files written before the completion record existed count as complete when they carry the run summary
    (which was written only at a clean end) and as running otherwise.
    """
    raw = attrs.get(STATE_ATTR)
    if raw is None:
        return (Completion.COMPLETE, "") if "summary" in attrs else (Completion.RUNNING, "no summary: never finished")
    if isinstance(raw, bytes):
        raw = raw.decode()
    reason = attrs.get(REASON_ATTR, "")
    if isinstance(reason, bytes):
        reason = reason.decode()
    try:
        return Completion(str(raw)), str(reason)
    except ValueError:
        return Completion.RUNNING, f"unknown completion state {raw!r}"


def write_state(attrs, state: Completion, reason: str = "") -> None:
    attrs[REASON_ATTR] = reason
    attrs[STATE_ATTR] = str(state)


def describe(state: Completion, reason: str) -> str:
    if state is Completion.RUNNING:
        return "never finished: still being written, or its writer was killed"
    return str(state) + (f": {reason}" if reason else "")
