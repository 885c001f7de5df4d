"""The main window's layout: default panel sizes, and saving and restoring what the user made of them."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

DEFAULT_SIZE = (1600, 980)
DEFAULT_COLUMNS = (470, 640, 490)  # map, ranking, viewer
DEFAULT_ROWS = (730, 210)  # top panels, neighbours
DEFAULT_VIEWER = (520, 200)  # image, metadata


class WindowLayout:
    """The window's geometry, toolbar state and splitters, under the keys ``window/<name>`` of the settings."""

    def __init__(self, window: QtWidgets.QMainWindow, columns: QtWidgets.QSplitter, rows: QtWidgets.QSplitter,
                 viewer: QtWidgets.QSplitter):
        self.window = window
        self.splitters = {"columns": columns, "rows": rows, "viewer": viewer}

    def reset(self) -> None:
        for key, sizes in (("columns", DEFAULT_COLUMNS), ("rows", DEFAULT_ROWS), ("viewer", DEFAULT_VIEWER)):
            self.splitters[key].setSizes(list(sizes))

    def restore(self, settings: QtCore.QSettings) -> None:
        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.window.restoreGeometry(geometry)
        state = settings.value("window/state")
        if state is not None:
            self.window.restoreState(state)
        for key, splitter in self.splitters.items():
            value = settings.value(f"window/{key}")
            if value is not None:
                splitter.restoreState(value)

    def save(self, settings: QtCore.QSettings) -> None:
        settings.setValue("window/geometry", self.window.saveGeometry())
        settings.setValue("window/state", self.window.saveState())
        for key, splitter in self.splitters.items():
            settings.setValue(f"window/{key}", splitter.saveState())
