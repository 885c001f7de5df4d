"""Heavy task work in a child process, reported back as if it ran on the calling thread.

A worker thread shares the GIL with the GUI, and some core steps hold it for
seconds (UMAP's numba code, clustering): the window would freeze meanwhile.
:func:`run_in_child` runs such a callable in a spawned process (no Qt state is
copied), relays its throttled progress, honours Cancel cooperatively (and
terminates a child that ignores it) and returns its result or raises its error.

A table comes back as an Arrow file rather than through the pipe: unpickling a
5M-row table held the GIL, and so froze the window, for up to a second, where
Arrow reads it with the GIL released.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import tempfile
import time
import traceback

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

from oddscope.core.progress import Cancelled, Progress

CHILD_NICENESS = 10
KILL_AFTER_CANCEL_S = 30.0  # a child process that ignores Cancel this long is terminated


class ChildError(Exception):
    """A failure inside the child process, with the child's traceback."""

    def __init__(self, message: str, details: str):
        super().__init__(message)
        self.details = details


def run_in_child(fn, args, kwargs, *, name: str, title: str, progress: Progress, report, interval: float):
    """Calling thread: run ``fn(*args, progress=..., **kwargs)`` in a child process; returns its result.

    ``report(stage, done, total)`` receives the child's progress (at most one
    report per ``interval`` seconds and stage); ``progress.cancelled`` asks the
    child to stop.  Raises :class:`Cancelled` or :class:`ChildError` as the child
    ended.  The callable, its arguments and its result must pickle.
    """
    context = multiprocessing.get_context("spawn")
    messages, cancel = context.Queue(), context.Event()
    child = context.Process(target=_child_main, args=(fn, args, kwargs, messages, cancel, interval),
                            name=f"oddscope-{name}")  # not a daemon: it may start decoding workers
    child.start()
    cancel_time = None
    try:
        while True:
            if progress.cancelled and cancel_time is None:
                cancel.set()
                cancel_time = time.monotonic()
            if cancel_time is not None and time.monotonic() - cancel_time > KILL_AFTER_CANCEL_S:
                child.terminate()
                raise Cancelled()
            try:
                message = messages.get(timeout=0.1)
            except queue_module.Empty:
                if not child.is_alive():
                    raise RuntimeError(f"the {title.lower()} process stopped unexpectedly "
                                       f"(exit code {child.exitcode})") from None
                continue
            if message[0] == "progress":
                report(*message[1:])
            elif message[0] == "result":
                return message[1]
            elif message[0] == "table":
                return read_table_file(message[1])
            elif message[0] == "cancelled":
                raise Cancelled()
            else:
                raise ChildError(message[1], message[2])
    finally:
        child.join(5)


class _ChildProgress:
    """The child's progress callback: forwards throttled reports and honours the parent's Cancel."""

    def __init__(self, messages, cancel, interval: float):
        self.messages, self.cancel, self.interval = messages, cancel, interval
        self.progress = Progress(self)
        self._last = (None, 0.0)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.cancel.is_set():
            self.progress.cancel()  # update() raises Cancelled right after this call
        now = time.monotonic()
        if stage != self._last[0] or done >= total or now - self._last[1] >= self.interval:
            self._last = (stage, now)
            self.messages.put(("progress", stage, int(done), int(total)))


def _child_main(fn, args, kwargs, messages, cancel, interval) -> None:
    """Entry point of a task's child process."""
    if hasattr(os, "nice"):
        os.nice(CHILD_NICENESS)  # on a busy machine the window's process is served first
    relay = _ChildProgress(messages, cancel, interval)
    try:
        result = fn(*args, progress=relay.progress, **kwargs)
    except Cancelled:
        messages.put(("cancelled",))
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which shows it
        messages.put(("error", str(err) or type(err).__name__, traceback.format_exc()))
    else:
        messages.put(("cancelled",) if relay.progress.cancelled else result_message(result))


def result_message(result) -> tuple:
    """Child: the message carrying ``result``: ``("table", path)`` for a DataFrame that Arrow can hold (written
    to a temporary file that :func:`read_table_file` removes), else ``("result", result)``, pickled - also when
    the temporary folder cannot take the file: slower to receive, but the table still arrives."""
    if isinstance(result, pd.DataFrame):
        handle, path = tempfile.mkstemp(prefix="oddscope-table-", suffix=".arrow")
        os.close(handle)
        try:
            feather.write_feather(result, path, compression="uncompressed")
            return ("table", path)
        except (pa.ArrowException, ValueError, TypeError, OSError):  # mixed types in a column; a full disk
            os.remove(path)
    return ("result", result)


def read_table_file(path: str) -> pd.DataFrame:
    """Parent: the table of a ``("table", path)`` message (Arrow releases the GIL while it reads); the file goes."""
    try:
        return feather.read_table(path, memory_map=False).to_pandas()
    finally:
        os.remove(path)
