"""The active-learning loop of the app: every label re-ranks the collection in the background.

An :class:`~oddscope.core.workflows.active_session.ActiveSession` (features and a
prepared ranker) is built once in a worker thread; after that each refit costs
milliseconds (the Oddscope ranker; NeighbourScore and Protege take longer).
Requests that arrive while a refit runs are folded into one follow-up, so fast
labelling never queues up stale work.  Results come back through a queued
signal and are applied (and saved) on the main thread.  The worker reads the
project through a read-only connection of its own: a sqlite3 connection must
not be used by two threads at once.
"""

from __future__ import annotations

import threading

import numpy as np
from PySide6.QtCore import QObject, Signal

from oddscope.core.workflows.active_session import ActiveSession
from oddscope.core.project.store import Project


class ActiveLearner(QObject):
    """Refits one active-learning method on the project's labels, off the main thread."""

    updated = Signal(str, object, object, float)  # method, per-item scores, relevance (or None), seconds
    failed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._lock = threading.Lock()
        self._session: ActiveSession | None = None
        self._pending = None  # (project root, method, labels) waiting for the running refit
        self._running = False

    def request(self, root, method: str, labels) -> None:
        """Refit ``method`` on ``labels`` (``project.labels()`` of the project at ``root``) as soon as possible."""
        with self._lock:
            self._pending = (root, method, labels)
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._work, name="oddscope-active-learning", daemon=True).start()

    def has_session(self, method: str) -> bool:
        with self._lock:
            return self._session is not None and self._session.method == method

    def set_session(self, session: ActiveSession) -> None:
        """Use this prepared session (from :func:`oddscope.app.jobs.prepare_session`) for the next refits."""
        with self._lock:
            self._session = session

    def reset(self) -> None:
        """Forget the prepared session (another project, or the features changed)."""
        with self._lock:
            self._session = None

    def _work(self) -> None:
        import time

        while True:
            with self._lock:
                job, self._pending = self._pending, None
                if job is None:
                    self._running = False
                    return
                session = self._session
            root, method, labels = job
            try:
                t0 = time.perf_counter()
                if session is None or session.method != method:
                    with Project.open(root) as project:
                        session = ActiveSession(project, method)
                    with self._lock:
                        self._session = session
                scores, relevance = session.refit(labels)
                self.updated.emit(method, np.asarray(scores), relevance, time.perf_counter() - t0)
            except Exception as err:  # noqa: BLE001 - reported in the window, the loop keeps going
                self.failed.emit(f"Re-ranking with {method} failed: {err}")
