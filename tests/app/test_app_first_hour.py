"""A new user's first hour with the window: every state a project can be left in opens, with advice
instead of a broken or waiting window, and Qt's harmless noise stays out of the terminal."""
import sys
import time

import numpy as np
import pytest
from PIL import Image
from PySide6 import QtCore

from oddscope.app.window import MainWindow
from oddscope.core.project.store import Project


def _project(root, statuses):
    """A project whose items (one image file each) have ``statuses``; never analysed."""
    with Project.create(root / "proj") as project:
        paths = []
        for i, status in enumerate(statuses):
            paths.append(root / f"{i}.png")
            if status == "skipped":
                paths[-1].write_bytes(b"not an image")  # the viewer cannot show it either
            else:
                Image.fromarray(np.full((16, 16, 3), 30 * i, np.uint8)).save(paths[-1])
        project.add_items(paths)
        project.set_status((i, status, "truncated or corrupt image" if status == "skipped" else None)
                           for i, status in enumerate(statuses) if status != "pending")
    return root / "proj"


STATES = {
    "empty": ([], "holds no images yet"),
    "never read": (["pending", "pending", "pending"], "not read yet: the indexing stopped"),
    "too few readable": (["skipped", "ok", "skipped"], "1 of the 3 images could be read"),
    "read, not analysed": (["ok", "ok", "ok"], "not analysed yet"),
}


@pytest.mark.parametrize("state", STATES)
def test_an_unfinished_project_opens_with_advice(qtbot, tmp_path, state):
    statuses, advice = STATES[state]
    root = _project(tmp_path, statuses)
    window = MainWindow(restore_layout=False)
    window.headless = True
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.model.loaded, timeout=30_000):
        assert window.open_project(root)
    qtbot.waitUntil(window.is_ready, timeout=10_000)
    assert advice in window.banner.text() and not window.banner.isHidden()
    assert "oddscope index" in window.banner.text() and not window.errors
    assert window.items_label.text().startswith(f"{len(statuses)} images")
    window.close()


def test_screenshot_of_an_empty_project_does_not_wait(tmp_path, monkeypatch):
    from oddscope.app.main import SCREENSHOT_WAIT_S, run_app

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # run_app installs its own
    root = _project(tmp_path, ["skipped", "ok"])
    start = time.monotonic()
    assert run_app(root, screenshot=tmp_path / "empty.png") == 0
    assert time.monotonic() - start < SCREENSHOT_WAIT_S / 2 and (tmp_path / "empty.png").exists()


def test_only_the_harmless_qt_message_is_filtered(capsys):
    from oddscope.app.main import HARMLESS_QT_MESSAGES, _qt_message

    context = QtCore.QMessageLogContext()
    _qt_message(QtCore.QtMsgType.QtWarningMsg, context, HARMLESS_QT_MESSAGES[0])
    _qt_message(QtCore.QtMsgType.QtWarningMsg, context, "QPainter::begin: Paint device returned engine == 0")
    assert capsys.readouterr().err == "QPainter::begin: Paint device returned engine == 0\n"
