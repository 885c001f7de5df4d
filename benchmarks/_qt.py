"""Shared set-up of the GUI benchmarks: an offscreen QApplication whose settings stay in a temporary folder, the
real main window opened as the app opens it, and waiting while the event loop runs."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def private_app(folder: Path):
    """The QApplication, with QSettings redirected under ``folder`` (the user's settings are left alone)."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    for fmt in (QSettings.NativeFormat, QSettings.IniFormat):
        QSettings.setPath(fmt, QSettings.UserScope, str(Path(folder) / "settings"))
    return QApplication.instance() or QApplication([])


def benchmark_window():
    """The real MainWindow, shown, as ``run_app`` makes it (start-up objects out of the garbage collector's
    way); an error dialog prints to stderr instead of waiting for a click."""
    from oddscope.app import dialogs
    from oddscope.app.main import freeze_startup_objects
    from oddscope.app.window import MainWindow

    dialogs.show_error = lambda *a: print("error:", *a[1:3], file=sys.stderr)
    window = MainWindow(restore_layout=False)
    freeze_startup_objects()
    window.show()
    return window


def wait_until(app, predicate, timeout_s: float) -> bool:
    """Run the event loop until ``predicate()`` holds or ``timeout_s`` passes; whether it holds.  The loop sleeps
    between events as the app's own does (a 10 ms timer wakes it to check): a spinning loop would take a core
    from the workers being measured."""
    from PySide6.QtCore import QEventLoop, QTimer

    end = time.perf_counter() + timeout_s
    wake = QTimer(interval=10)
    wake.start()
    try:
        while not predicate() and time.perf_counter() < end:
            app.processEvents(QEventLoop.AllEvents | QEventLoop.WaitForMoreEvents)
    finally:
        wake.stop()
    return predicate()
