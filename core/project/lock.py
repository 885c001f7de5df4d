"""The writer lock: one process at a time may write a project, any number may read it.

An exclusive OS lock on a file, not a marker file: the OS drops it when the
holder dies (crash, SIGKILL, power loss), so a dead writer never locks a
project out.  The file's text says who holds it, for the message to whoever
is refused.
"""

from __future__ import annotations

from pathlib import Path


class LockHeld(OSError):
    """Another process holds the lock; ``holder`` is its description (as it wrote it)."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


class WriterLock:
    """An exclusive, non-blocking OS lock on the file at ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = None

    def acquire(self, holder: str) -> None:
        """Take the lock and record ``holder`` in the file; raises :class:`LockHeld` if taken."""
        fh = open(self.path, "a+")
        try:
            _lock_file(fh)
        except OSError:
            fh.seek(0)
            held_by = fh.read().strip() or "another process"
            fh.close()
            raise LockHeld(held_by) from None
        fh.seek(0)
        fh.truncate()
        fh.write(holder)
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the lock
            self._fh = None


def _lock_file(fh) -> None:
    try:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # Windows
        import msvcrt

        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
