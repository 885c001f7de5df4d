"""Fixtures for every Qt test: private settings, no modal error dialogs, windows destroyed between tests."""
import gc

import pytest
from PySide6 import QtCore
from PySide6.QtCore import QSettings
from windows import open_window

from oddscope.app import dialogs


@pytest.fixture(autouse=True)
def private_settings(tmp_path):
    """QSettings go to tmp_path: tests never read or write the user's."""
    for fmt in (QSettings.NativeFormat, QSettings.IniFormat):
        QSettings.setPath(fmt, QSettings.UserScope, str(tmp_path / "settings"))
    yield
    dialogs.app_settings().clear()


@pytest.fixture(autouse=True)
def collect_windows(qtbot):
    """Destroy this test's windows before the next test starts.

    Windows live in reference cycles (signal lambdas); left to the garbage
    collector, a whole window tree would be torn down at a random allocation
    inside the next test, while that test's worker threads run.
    """
    yield
    qtbot.wait(20)
    gc.collect()
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)
    gc.collect()


@pytest.fixture(autouse=True)
def errors_fail_the_test(monkeypatch):
    """An error dialog would block a test in a modal loop: record the error and fail instead."""
    errors = []
    monkeypatch.setattr(dialogs, "show_error", lambda parent, title, message, details="": errors.append(
        f"{title}: {message}\n{details}"))
    yield errors
    assert not errors, errors[0]


@pytest.fixture
def window(qtbot, demo_project):
    win = open_window(qtbot, demo_project)
    yield win
    win.close()
