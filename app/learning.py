"""The active-learning loop of the app: every label re-ranks the collection in the background.

An :class:`~oddscope.core.workflows.active_session.ActiveSession` (features and a
prepared ranker) is built once in a worker thread; after that each refit costs
milliseconds (the Oddscope ranker; NeighbourScore and Protege take longer).
Refits are tasks in a latest-wins lane: requests that arrive while a refit runs
supersede each other, so fast labelling never queues up stale work.  Results
come back on the main thread, where they are applied (and saved).  The worker reads the
project through a read-only connection of its own: a sqlite3 connection must
not be used by two threads at once.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from PySide6.QtCore import QObject, Signal

from oddscope.app.worker import Lane, Task
from oddscope.core.progress import Cancelled
from oddscope.core.project.store import Project
from oddscope.core.workflows.active_session import ActiveSession


class ActiveLearner(QObject):
    """Refits one active-learning method on the project's labels, off the main thread.

    Refits run as tasks in a latest-wins lane (``learner``): a request cancels
    the ones before it, so a refit still queued never runs, and one that was
    superseded while running does not report.  ``updated`` is emitted by the
    refit's thread the moment it is done (benchmarks time it there; slots
    connected the usual way run on the GUI thread), ``failed`` on the GUI thread.
    """

    updated = Signal(str, object, object, float)  # method, per-item scores, relevance (or None), seconds
    failed = Signal(str)

    def __init__(self, parent=None, lane: Lane | None = None):
        super().__init__(parent)
        self._lane = lane or Lane("learner", parent=self)
        self._lock = threading.Lock()  # the session is read and replaced by the refit thread too
        self._session: ActiveSession | None = None

    def request(self, root, method: str, labels) -> None:
        """Refit ``method`` on ``labels`` (``project.labels()`` of the project at ``root``) as soon as possible."""
        task = Task("refit", f"Re-ranking with {method}", self._refit, root, method, labels)
        task.failed.connect(self._on_failed)
        self._lane.submit(task)

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

    def _refit(self, root, method: str, labels, progress=None) -> None:
        """Task function (worker thread): refit and emit ``updated`` unless superseded meanwhile."""
        t0 = time.perf_counter()
        with self._lock:
            session = self._session
        try:
            if session is None or session.method != method:
                with Project.open(root) as project:
                    session = ActiveSession(project, method)  # not cancelled: kept for the next request
                with self._lock:
                    self._session = session
            progress.check()
            scores, relevance = session.refit(labels)
        except Cancelled:
            raise
        except Exception as err:
            raise RuntimeError(f"Re-ranking with {method} failed: {err}") from err
        if not progress.cancelled:
            self.updated.emit(method, np.asarray(scores), relevance, time.perf_counter() - t0)

    def _on_failed(self, message: str, _details: str) -> None:
        self.failed.emit(message)  # shown in the window; the next request tries again
