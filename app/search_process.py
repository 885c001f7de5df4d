"""A large project's similar-items searches, answered by a child process that holds the neighbour index.

hnswlib loads a saved index in one C call that keeps the GIL: measured 260-340 ms for 200,000 items x 256
dimensions (224 MB), so seconds for the 5.6 GB reduced index of 5,000,000 items, during which the window
would not repaint.  From :data:`~oddscope.app.model.ASYNC_ITEMS` analysed items on, the neighbours lane's
thread hands each lookup to this process instead and waits on a pipe (a wait that releases the GIL), and the
index lives in the child's memory, not the window's.  Qt-free: the child imports only core.
"""

from __future__ import annotations

import multiprocessing
import threading

from oddscope.core.project.store import Project
from oddscope.core.workflows.retrieval import Neighbours


class SearchProcess:
    """A child process answering :class:`~oddscope.core.workflows.retrieval.Neighbours` calls for the project at
    ``root`` in ``space``; started on construction, ended by :meth:`close` (or when this is garbage collected,
    which closes the pipe it waits on, or with the app: a daemon)."""

    def __init__(self, root, space: str | None = None):
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._process = context.Process(target=_serve, args=(root, space, child_end), daemon=True,
                                        name="oddscope-neighbours")
        self._process.start()
        child_end.close()
        self._lock = threading.Lock()  # one request at a time on the pipe

    def ask(self, method: str, *args):
        """``Neighbours.<method>(*args)`` in the child; its exception is raised here."""
        with self._lock:
            self._conn.send((method, args))
            ok, value = self._conn.recv()
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """End the child now (GUI thread, never waiting): a lookup waiting on it gets EOF and fails, superseded."""
        self._process.terminate()


def _serve(root, space, conn) -> None:
    """The child's loop: one ``(method, args)`` request in, one ``(ok, result or exception)`` answer out."""
    with Project.open(root) as project:
        neighbours = Neighbours(project, space=space)
        while True:
            try:
                method, args = conn.recv()
            except (EOFError, OSError):
                return
            try:
                conn.send((True, getattr(neighbours, method)(*args)))
            except Exception as err:  # noqa: BLE001 - the lookup fails in the window, which shows why
                try:
                    conn.send((False, err))
                except Exception:  # noqa: BLE001 - an exception that does not pickle: its message then
                    conn.send((False, RuntimeError(str(err))))
