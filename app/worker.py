"""Background tasks: one mechanism for all work off the GUI thread, reported back through Qt signals.

The GUI thread must never run inference, index building, UMAP or bulk decoding
(a frozen window looks like a crash).  A :class:`Task` runs a callable on a
worker thread with a core :class:`~oddscope.core.progress.Progress` (progress
and cooperative Cancel); progress comes back as queued signals and the outcome
(result, error or cancel) is delivered on the GUI thread, so every slot runs
there.  Progress is throttled: a loop reporting every item would otherwise
flood the event loop with queued signals and stall it just the same.  Heavy
steps (indexing, analysis) run with ``in_process=True``, in a child process
(see :mod:`oddscope.app.child_process`).

Tasks run in named :class:`Lane` s, each with its own threads, so one sort of
work never queues behind another (thumbnails behind an index build, say):
``project`` holds the status bar's tasks (:class:`TaskManager`, at most one per
kind), ``interactive`` short jobs like thumbnails, and the latest-wins lanes
(``neighbours``, ``learner``, ``map``, ``pixel_maps``, ``table``, ``filter``) run only the newest
request.  Tasks have no Qt parent: a registry on the GUI thread keeps each one alive until a while
after it ended, so none is ever destroyed on a worker thread while its queued
signals are in flight (that crashed the interpreter).
"""

from __future__ import annotations

import os
import threading
import time
import traceback

from PySide6 import QtWidgets
from PySide6.QtCore import QElapsedTimer, QObject, QRunnable, QThread, QThreadPool, QTimer, Signal

from oddscope.app.child_process import ChildError, run_in_child
from oddscope.core.progress import Cancelled, Progress

RELEASE_AFTER_MS = 5_000
_LIVE: set = set()  # started tasks, until RELEASE_AFTER_MS after they ended (see Task._release_later)
PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress signals a second reach the GUI
# Worker threads run at this niceness (Linux: niceness is per thread), as child processes do: when three of
# them and the GUI thread share two cores, the scheduler serves the GUI thread first
WORKER_NICENESS = 5

LANES = {  # name: (threads, latest wins)
    "project": (2, False),  # the status bar's tasks: indexing, analysis, loading, export...
    "interactive": (min(4, max(2, QThread.idealThreadCount() // 2)), False),  # thumbnails: short decodes
    "neighbours": (1, True),  # one thread: two first lookups never build the same index twice
    "learner": (1, True),  # active-learning refits: only the newest labels matter
    "map": (1, True),  # the map's picking index, for the points shown now
    "map_render": (1, True),  # a big map's colouring and the image of its view
    "colours": (1, True),  # the values a big map is coloured by, read from the table
    "table": (1, True),  # a large project table prepared or re-sorted (opening, a new ranking)
    "filter": (1, True),  # the ranking grid's filters over a large table
    "pixel_maps": (1, True),  # the anomaly map of the image on screen
    "defects": (1, False),  # painted defect masks: read and written in the order asked
}


class Task(QObject):
    """``fn(*args, progress=Progress, **kwargs)`` run on a thread pool (or, ``in_process``, in a child process).

    Exactly one of ``finished(result)``, ``failed(message, details)`` or
    ``cancelled()`` is emitted on the GUI thread, then ``done(outcome)``
    ("finished", "failed" or "cancelled").  Connect before :meth:`start`: a
    fast task may be over before a later connection is made.  ``fn`` must not
    touch Qt widgets; it gets a :class:`Progress` whose ``update`` is
    thread-safe.  A task cancelled before it starts never runs; one cancelled
    before its result reached the GUI thread reports ``cancelled``.  With
    ``in_process`` the callable, its arguments and its result must pickle.
    """

    progress = Signal(str, int, int)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    done = Signal(str)
    _ended = Signal(str, object)  # worker thread -> GUI thread: outcome and its payload

    def __init__(self, kind: str, title: str, fn, *args, pool: QThreadPool | None = None,
                 in_process: bool = False, **kwargs):
        super().__init__()
        self.in_process = in_process
        self.kind = kind
        self.title = title
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._pool = pool or QThreadPool.globalInstance()
        self._progress = Progress(self._report)
        self._last_report = 0.0
        self._last_stage = None
        self._ended.connect(self._deliver)
        self.running = False
        self.outcome: str | None = None  # "finished", "failed" or "cancelled" once done

    def start(self, pool: QThreadPool | None = None) -> "Task":
        """Run on ``pool`` (default: the one given at construction).  Call on the GUI thread."""
        self.running = True
        _LIVE.add(self)
        self.done.connect(self._release_later)
        (pool or self._pool).start(_Runnable(self))
        return self

    def _release_later(self, _outcome: str) -> None:
        """GUI thread: drop the registry's reference a while after the task ended.

        Whoever drops the last reference destroys the QObject.  That must be the
        GUI thread, which owns it, and only once the pool thread has let go (it
        does so right after reporting the outcome): were it the pool thread, the
        object would die there while its queued signals are still on their way.
        """
        QTimer.singleShot(RELEASE_AFTER_MS, lambda: _LIVE.discard(self))

    def cancel(self) -> None:
        """Ask the work to stop at its next progress check (cooperative); a queued task never starts."""
        self._progress.cancel()

    @property
    def cancel_requested(self) -> bool:
        return self._progress.cancelled

    def _report(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if stage == self._last_stage and done < total and now - self._last_report < PROGRESS_INTERVAL_S:
            return
        self._last_report, self._last_stage = now, stage
        self.progress.emit(stage, int(done), int(total))

    def _run(self) -> None:
        """Worker thread: run the callable (here or in a child process) and report how it ended."""
        try:
            self._progress.check()  # cancelled (or superseded) while queued: skip the work
            if self.in_process:
                result = run_in_child(self._fn, self._args, self._kwargs, name=self.kind, title=self.title,
                                      progress=self._progress, report=self._report,
                                      interval=PROGRESS_INTERVAL_S)
            else:
                result = self._fn(*self._args, progress=self._progress, **self._kwargs)
        except Cancelled:
            outcome, payload = "cancelled", None
        except Exception as err:  # noqa: BLE001 - every failure is shown to the user
            details = err.details if isinstance(err, ChildError) else traceback.format_exc()
            outcome, payload = "failed", (str(err) or type(err).__name__, details)
        else:
            outcome, payload = "finished", result
        try:
            self._ended.emit(outcome, payload)
        except RuntimeError:  # the application is shutting down and the task is gone: nobody to tell
            pass

    def _deliver(self, outcome: str, payload) -> None:
        """GUI thread: emit the outcome; a cancel that came in meanwhile wins over a result."""
        if outcome == "finished" and self._progress.cancelled:
            outcome = "cancelled"
        self.outcome, self.running = outcome, False
        if outcome == "finished":
            self.finished.emit(payload)
        elif outcome == "failed":
            self.failed.emit(*payload)
        else:
            self.cancelled.emit()
        self.done.emit(outcome)


class _Runnable(QRunnable):
    def __init__(self, task: Task):
        super().__init__()
        self._task = task  # handed to run(); the registry (_LIVE) is what keeps the Task alive

    def run(self) -> None:
        _lower_this_threads_priority()
        task, self._task = self._task, None
        task._run()  # the registry keeps it alive: dropping this reference here never destroys it


def _lower_this_threads_priority() -> None:
    """Pool thread: run at :data:`WORKER_NICENESS` from now on (once per thread; elsewhere than Linux a
    niceness is the whole process's, so nothing changes there)."""
    if not hasattr(os, "setpriority") or not os.uname().sysname == "Linux":
        return
    thread = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, thread) < WORKER_NICENESS:
            os.setpriority(os.PRIO_PROCESS, thread, WORKER_NICENESS)
    except OSError:  # not permitted here: the threads keep the process's priority
        pass


class Lane(QObject):
    """A named pool of worker threads for one sort of work (see :data:`LANES`).

    Lanes never wait for each other.  In a ``latest_wins`` lane, submitting a
    task cancels the lane's older ones: queued ones never run, a running one is
    asked to stop and reports ``cancelled`` (whatever it still computes is
    dropped), so only the newest request's outcome is delivered.
    """

    def __init__(self, name: str, threads: int | None = None, latest_wins: bool | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        default_threads, default_latest = LANES[name]
        self.name = name
        self.latest_wins = default_latest if latest_wins is None else latest_wins
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads or default_threads)
        self._tasks: list[Task] = []  # submitted and not done yet, oldest first

    def submit(self, task: Task) -> Task:
        """Start ``task`` in this lane (GUI thread); connect its signals first."""
        if self.latest_wins:
            for older in self._tasks:
                older.cancel()
        self._tasks.append(task)
        task.done.connect(lambda _outcome: self._tasks.remove(task) if task in self._tasks else None)
        return task.start(self.pool)

    def run(self, kind: str, title: str, fn, *args, **kwargs) -> Task:
        """Make a :class:`Task` of ``fn`` and submit it (for callers that need no signal before the start)."""
        return self.submit(Task(kind, title, fn, *args, **kwargs))

    def tasks(self) -> list[Task]:
        """The tasks submitted and not done yet, oldest first."""
        return list(self._tasks)

    def cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until the lane's threads are idle (-1: no limit); True when they are."""
        return self.pool.waitForDone(timeout_ms)


class TaskManager(QObject):
    """The window's lanes; runs its status-bar tasks (at most one per kind) in the ``project`` lane.

    ``started``/``ended`` report the project lane's tasks, for the status bar.
    """

    started = Signal(object)  # Task
    ended = Signal(object)  # Task

    def __init__(self, parent=None, max_threads: int = 2):
        super().__init__(parent)
        self._lanes: dict[str, Lane] = {"project": Lane("project", threads=max_threads, parent=self)}
        self.pool = self._lanes["project"].pool
        self._running: dict[str, Task] = {}

    def lane(self, name: str) -> Lane:
        """The lane ``name`` (one of :data:`LANES`), made on first use."""
        if name not in self._lanes:
            self._lanes[name] = Lane(name, parent=self)
        return self._lanes[name]

    def run(self, kind: str, title: str, fn, *args, on_finished=None, on_failed=None, on_cancelled=None,
            on_done=None, in_process: bool = False, **kwargs) -> Task | None:
        """Start ``fn`` unless a task of ``kind`` runs already (then return None).

        The callbacks are connected before the task starts; ``on_done(outcome)`` runs last.
        """
        if kind in self._running:
            return None
        task = Task(kind, title, fn, *args, in_process=in_process, **kwargs)
        for signal, slot in ((task.finished, on_finished), (task.failed, on_failed),
                             (task.cancelled, on_cancelled)):
            if slot is not None:
                signal.connect(slot)
        task.done.connect(lambda _outcome: self._end(task))
        if on_done is not None:
            task.done.connect(on_done)
        self._running[kind] = task
        self.started.emit(task)
        return self._lanes["project"].submit(task)

    def _end(self, task: Task) -> None:
        if self._running.get(task.kind) is task:
            del self._running[task.kind]
        self.ended.emit(task)

    def running(self, kind: str | None = None):
        """The running status-bar task of ``kind`` (None if idle), or all of them."""
        return self._running.get(kind) if kind else list(self._running.values())

    def cancel_all(self, wait_ms: int = 10_000) -> bool:
        """Cancel every lane's tasks and wait (``wait_ms`` in all) for their threads; True when all stopped."""
        for lane in self._lanes.values():
            lane.cancel_all()
        clock = QElapsedTimer()
        clock.start()
        return all([lane.wait(max(0, wait_ms - clock.elapsed())) for lane in self._lanes.values()])


class TaskBar(QtWidgets.QWidget):
    """Status-bar strip: stage label, progress bar and Cancel for the newest running task."""

    def __init__(self, tasks: TaskManager, parent=None):
        super().__init__(parent)
        self._tasks = tasks
        self._task: Task | None = None
        self.label = QtWidgets.QLabel()
        self.bar = QtWidgets.QProgressBar()
        self.bar.setFixedWidth(180)
        self.bar.setTextVisible(True)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop this task; work already done is kept and resumes next time")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.label, self.bar, self.cancel_button):
            layout.addWidget(widget)
        tasks.started.connect(self._started)
        tasks.ended.connect(self._ended)
        self.hide()

    def _started(self, task: Task) -> None:
        task.progress.connect(lambda stage, done, total, t=task: self._update(t, stage, done, total))
        self._show(task)

    def _show(self, task: Task) -> None:
        self._task = task
        self.label.setText(f"{task.title}…")
        self.bar.setRange(0, 0)  # busy until the first report
        self.cancel_button.setEnabled(True)
        self.show()

    def _update(self, task: Task, stage: str, done: int, total: int) -> None:
        if task is not self._task:
            return
        self.label.setText(f"{task.title}: {stage}")
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
            self.bar.setFormat(f"{done:,}/{total:,}")
        else:
            self.bar.setRange(0, 0)

    def _ended(self, task: Task) -> None:
        remaining = self._tasks.running()
        if remaining:
            self._show(remaining[-1])
        else:
            self._task = None
            self.hide()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.label.setText(f"{self._task.title}: cancelling…")
            self.cancel_button.setEnabled(False)

