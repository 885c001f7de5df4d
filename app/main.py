"""Start the desktop app: ``run_app(project_dir)``, or ``python -m oddscope.app.main [PROJECT]``.

With ``screenshot`` the window renders (offscreen works), waits until the
project is loaded and its first thumbnails and map are drawn, saves a PNG and
exits: the packaging smoke test and the docs use it.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
import traceback
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

log = logging.getLogger("oddscope.app")
SCREENSHOT_WAIT_S = 20.0
# Qt's offscreen and some Wayland plugins say this once per window shown: noise to a user, never a fault
HARMLESS_QT_MESSAGES = ("This plugin does not support propagateSizeHints()",)


def _qt_message(mode, context, message: str) -> None:
    """Qt's messages, written to stderr as Qt would, less the :data:`HARMLESS_QT_MESSAGES`."""
    if message in HARMLESS_QT_MESSAGES:
        return
    print(QtCore.qFormatLogMessage(mode, context, message), file=sys.stderr, flush=True)


def _excepthook(exc_type, exc, tb) -> None:
    """Show unexpected errors in a dialog (details expandable) and log them, instead of only a terminal."""
    details = "".join(traceback.format_exception(exc_type, exc, tb))
    log.error("unexpected error\n%s", details)
    if QtWidgets.QApplication.instance() is None or issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    from oddscope.app.dialogs import show_error

    show_error(QtWidgets.QApplication.activeWindow(), "Oddscope: unexpected error",
               f"{exc_type.__name__}: {exc}\n\nYour labels are saved as you go; nothing was lost. "
               "If this keeps happening, please report it with the details below.", details)


def make_application() -> QtWidgets.QApplication:
    QtCore.qInstallMessageHandler(_qt_message)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setOrganizationName("Oddscope")
    app.setApplicationName("Oddscope")
    app.setApplicationDisplayName("Oddscope")
    from oddscope.app.theme import apply_theme

    apply_theme(app)
    icon = Path(__file__).resolve().parent.parent / "resources" / "oddscope.svg"
    if icon.exists():
        app.setWindowIcon(QtGui.QIcon(str(icon)))
    return app


def freeze_startup_objects() -> None:
    """Exempt everything alive now (modules, classes, Qt wrappers: ~200,000 objects) from garbage collection.

    A full collection walks every tracked object: 130 ms with Oddscope's libraries
    loaded, at a moment nobody chooses, which shows as a frozen window.  What is
    alive after start-up lives as long as the app, so frozen it costs nothing
    (Python's ``gc.freeze`` is meant for exactly this).
    """
    gc.collect()
    gc.freeze()


def _wait_until(predicate, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        QtWidgets.QApplication.processEvents(QtCore.QEventLoop.AllEvents, 50)
        time.sleep(0.01)
    return predicate()


def run_app(project_dir=None, screenshot=None) -> int:
    """Open the main window (on ``project_dir``, else the last project); returns the exit code."""
    from oddscope.app.window import MainWindow

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = make_application()
    if screenshot is None:  # a scripted run reports errors on stderr, never in a dialog
        sys.excepthook = _excepthook
    window = MainWindow(restore_layout=screenshot is None)
    window.headless = screenshot is not None
    if project_dir is None:
        project_dir = window.last_project()
    if project_dir is not None:
        window.open_project(project_dir)
    window.show()
    if screenshot is None:
        freeze_startup_objects()  # (a scripted screenshot run is short: it leaves the collector alone)
        return app.exec()
    ready = _wait_until(lambda: window.is_ready() or bool(window.errors), SCREENSHOT_WAIT_S)
    if window.errors:
        print("\n".join(window.errors), file=sys.stderr)
        window.close()
        return 1
    if not ready:
        log.warning("screenshot taken before the project finished loading (waited %.0f s)", SCREENSHOT_WAIT_S)
    _wait_until(lambda: False, 0.3)  # let the last repaints land
    ok = window.grab().save(str(screenshot))
    window.close()
    if not ok:
        print(f"could not write screenshot {screenshot}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_app(sys.argv[1] if len(sys.argv) > 1 else None))
