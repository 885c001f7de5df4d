"""Progress reporting and cancellation shared by every long step.

Long work in Oddscope (feature extraction, indexing, UMAP, scoring) takes a
:class:`Progress` object.  The CLI wires it to a terminal progress bar, the app
to a Qt progress bar with a Cancel button, tests to a list.  Cancellation is
cooperative: the step calls :meth:`Progress.check` between batches, which
raises :class:`Cancelled` once :meth:`Progress.cancel` was called from any
thread.  Work done before that point is kept (features are flushed per batch),
so a cancelled run resumes where it stopped.
"""

from __future__ import annotations

import threading
from typing import Callable


class Cancelled(Exception):
    """Raised inside a long step when the user asked to stop it."""


ProgressCallback = Callable[[str, int, int], None]


class Progress:
    """Reports ``(stage, done, total)`` to a callback and carries a cancel flag.

    ``callback`` may be ``None`` (silent).  It is called from the thread doing
    the work; a GUI forwards it through a queued signal.
    """

    def __init__(self, callback: ProgressCallback | None = None):
        self._callback = callback
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if a cancel was requested."""
        if self._cancel.is_set():
            raise Cancelled()

    def update(self, stage: str, done: int, total: int) -> None:
        """Report progress, then honour a pending cancel."""
        if self._callback is not None:
            self._callback(stage, done, total)
        self.check()


NOTE_SEPARATOR = " | "  # "features | 3/10 shards": a stage, then a note a terminal shows beside its bar


def with_note(stage: str, note: str) -> str:
    """A stage name carrying a note (shards done, ...) that front ends show beside the stage's bar."""
    return f"{stage}{NOTE_SEPARATOR}{note}"


def split_note(stage: str) -> tuple[str, str]:
    """``(stage, note)`` of a name from :func:`with_note`; the note is empty for a plain stage."""
    name, _, note = stage.partition(NOTE_SEPARATOR)
    return name, note


def as_progress(progress: Progress | ProgressCallback | None) -> Progress:
    """Accept a Progress, a bare callback or None wherever progress is taken."""
    if isinstance(progress, Progress):
        return progress
    return Progress(progress)
