"""Shared set-up of the GUI benchmarks: an offscreen QApplication whose settings stay in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def private_app(folder: Path):
    """The QApplication, with QSettings redirected under ``folder`` (the user's settings are left alone)."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    for fmt in (QSettings.NativeFormat, QSettings.IniFormat):
        QSettings.setPath(fmt, QSettings.UserScope, str(Path(folder) / "settings"))
    return QApplication.instance() or QApplication([])
