"""The rich progress bar of long commands (presentation: the domain code only reports numbers)."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["RecordsBar"]


class RecordsBar:
    """A bar of records done (and rounds made) on stderr; a ``progress(done, total, rounds)`` callback.

    Use as a context manager so the bar is stopped however the command ends."""

    def __init__(self, label: str, *, enabled: bool = True):
        self._bar = None
        self._task = None
        self.label = label
        self.enabled = enabled

    def __enter__(self) -> "RecordsBar":
        if self.enabled:
            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rounds]} rounds"), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=False)
            self._task = self._bar.add_task(self.label, total=None, rounds=0)
            self._bar.start()
        return self

    def __call__(self, done: int, total: int | None, rounds: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, rounds=rounds)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
