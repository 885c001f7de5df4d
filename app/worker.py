"""Background tasks: core work off the GUI thread, reported back through Qt signals.

The GUI thread must never run inference, index building, UMAP or bulk decoding
(a frozen window looks like a crash).  A :class:`Task` runs a callable on a
thread pool with a core :class:`~oddscope.core.progress.Progress`; progress,
the result and errors come back as queued signals, so every slot runs on the
GUI thread.  Progress is throttled: a loop reporting every item would otherwise
flood the event loop with queued signals and stall it just the same.

A thread still shares the GIL with the GUI, and some core steps hold it for
seconds (UMAP's numba code, clustering): the window would freeze meanwhile.
Heavy steps (indexing, analysis) therefore run with ``in_process=True``: in a
child process (spawned, so no Qt state is copied) that sends progress and the
result back through a queue, and stops cooperatively when cancelled.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import time
import traceback

from PySide6 import QtWidgets
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from oddscope.core.progress import Cancelled, Progress

RELEASE_AFTER_MS = 5_000
_LIVE: set = set()  # started tasks, until RELEASE_AFTER_MS after they ended (see Task._release_later)
PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress signals a second reach the GUI
CHILD_NICENESS = 10
KILL_AFTER_CANCEL_S = 30.0  # a child process that ignores Cancel this long is terminated


class Task(QObject):
    """``fn(*args, progress=Progress, **kwargs)`` run on a thread pool (or, ``in_process``, in a child process).

    Exactly one of ``finished(result)``, ``failed(message, details)`` or
    ``cancelled()`` is emitted, then ``done(outcome)`` ("finished", "failed"
    or "cancelled").  Connect before :meth:`start`: a fast task may be over
    before a later connection is made.  ``fn`` must not touch Qt
    widgets; it gets a :class:`Progress` whose ``update`` is thread-safe.  With
    ``in_process`` the callable, its arguments and its result must pickle.
    """

    progress = Signal(str, int, int)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    done = Signal(str)

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
        self.running = False
        self.outcome: str | None = None  # "finished", "failed" or "cancelled" once done

    def start(self) -> "Task":
        """Run on the pool.  Call on the GUI thread."""
        self.running = True
        _LIVE.add(self)
        self.done.connect(self._release_later)
        self._pool.start(_Runnable(self))
        return self

    def _release_later(self, _outcome: str) -> None:
        """GUI thread: drop the registry's reference a while after the task ended.

        Whoever drops the last reference destroys the QObject.  That must be the
        GUI thread, which owns it, and only once the pool thread has let go (it
        does so right after emitting ``done``): were it the pool thread, the
        object would die there while its queued signals are still on their way.
        """
        QTimer.singleShot(RELEASE_AFTER_MS, lambda: _LIVE.discard(self))

    def cancel(self) -> None:
        """Ask the work to stop at its next progress check (cooperative)."""
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
        """Worker thread: run the callable (here or in a child process) and emit how it ended."""
        try:
            if self.in_process:
                result = self._run_in_process()
            else:
                result = self._fn(*self._args, progress=self._progress, **self._kwargs)
        except Cancelled:
            self.outcome = "cancelled"
            self.cancelled.emit()
        except Exception as err:  # noqa: BLE001 - every failure is shown to the user
            details = err.details if isinstance(err, _ChildError) else traceback.format_exc()
            self.outcome = "failed"
            self.failed.emit(str(err) or type(err).__name__, details)
        else:
            self.outcome = "cancelled" if self._progress.cancelled else "finished"
            if self.outcome == "cancelled":
                self.cancelled.emit()
            else:
                self.finished.emit(result)
        self.done.emit(self.outcome)

    def _run_in_process(self):
        """Start the child, relay its messages as if the work ran here; returns its result."""
        context = multiprocessing.get_context("spawn")
        messages, cancel = context.Queue(), context.Event()
        child = context.Process(target=_child_main, args=(self._fn, self._args, self._kwargs, messages, cancel),
                                name=f"oddscope-{self.kind}")  # not a daemon: it may start decoding workers
        child.start()
        cancel_time = None
        try:
            while True:
                if self._progress.cancelled and cancel_time is None:
                    cancel.set()
                    cancel_time = time.monotonic()
                if cancel_time is not None and time.monotonic() - cancel_time > KILL_AFTER_CANCEL_S:
                    child.terminate()
                    raise Cancelled()
                try:
                    message = messages.get(timeout=0.1)
                except queue_module.Empty:
                    if not child.is_alive():
                        raise RuntimeError(f"the {self.title.lower()} process stopped unexpectedly "
                                           f"(exit code {child.exitcode})") from None
                    continue
                if message[0] == "progress":
                    self._report(*message[1:])
                elif message[0] == "result":
                    return message[1]
                elif message[0] == "cancelled":
                    raise Cancelled()
                else:
                    raise _ChildError(message[1], message[2])
        finally:
            child.join(5)


class _ChildError(Exception):
    """A failure inside the child process, with the child's traceback."""

    def __init__(self, message: str, details: str):
        super().__init__(message)
        self.details = details


class _ChildProgress:
    """The child's progress callback: forwards throttled reports and honours the parent's Cancel."""

    def __init__(self, messages, cancel):
        self.messages, self.cancel = messages, cancel
        self.progress = Progress(self)
        self._last = (None, 0.0)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.cancel.is_set():
            self.progress.cancel()  # update() raises Cancelled right after this call
        now = time.monotonic()
        if stage != self._last[0] or done >= total or now - self._last[1] >= PROGRESS_INTERVAL_S:
            self._last = (stage, now)
            self.messages.put(("progress", stage, int(done), int(total)))


def _child_main(fn, args, kwargs, messages, cancel) -> None:
    """Entry point of a task's child process."""
    if hasattr(os, "nice"):
        os.nice(CHILD_NICENESS)  # on a busy machine the window's process is served first
    relay = _ChildProgress(messages, cancel)
    try:
        result = fn(*args, progress=relay.progress, **kwargs)
    except Cancelled:
        messages.put(("cancelled",))
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which shows it
        messages.put(("error", str(err) or type(err).__name__, traceback.format_exc()))
    else:
        messages.put(("cancelled",) if relay.progress.cancelled else ("result", result))


class _Runnable(QRunnable):
    def __init__(self, task: Task):
        super().__init__()
        self._task = task  # handed to run(); the registry (_LIVE) is what keeps the Task alive

    def run(self) -> None:
        task, self._task = self._task, None
        task._run()  # the registry keeps it alive: dropping this reference here never destroys it


class TaskManager(QObject):
    """Runs at most one task per kind and tracks what is running for the status bar.

    Holds a reference to each running task (an unreferenced QObject would be
    collected before its queued signals arrive).
    """

    started = Signal(object)  # Task
    ended = Signal(object)  # Task

    def __init__(self, parent=None, max_threads: int = 2):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self._running: dict[str, Task] = {}

    def run(self, kind: str, title: str, fn, *args, on_finished=None, on_failed=None, on_cancelled=None,
            on_done=None, in_process: bool = False, **kwargs) -> Task | None:
        """Start ``fn`` unless a task of ``kind`` runs already (then return None).

        The callbacks are connected before the task starts; ``on_done(outcome)`` runs last.
        """
        if kind in self._running:
            return None
        task = Task(kind, title, fn, *args, pool=self.pool, in_process=in_process, **kwargs)
        for signal, slot in ((task.finished, on_finished), (task.failed, on_failed),
                             (task.cancelled, on_cancelled)):
            if slot is not None:
                signal.connect(slot)
        task.done.connect(lambda _outcome: self._end(task))
        if on_done is not None:
            task.done.connect(on_done)
        self._running[kind] = task
        self.started.emit(task)
        return task.start()

    def _end(self, task: Task) -> None:
        task.running = False
        if self._running.get(task.kind) is task:
            del self._running[task.kind]
        self.ended.emit(task)

    def running(self, kind: str | None = None):
        """The running task of ``kind`` (None if idle), or all running tasks."""
        return self._running.get(kind) if kind else list(self._running.values())

    def cancel_all(self, wait_ms: int = 10_000) -> bool:
        """Cancel everything and wait for the threads; True when all stopped."""
        for task in list(self._running.values()):
            task.cancel()
        return self.pool.waitForDone(wait_ms)


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

