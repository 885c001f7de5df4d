"""Small dialogs: analysis settings, tag entry with completion, the shortcut sheet, messages.

Application settings live in ``QSettings("Oddscope", "Oddscope")``; tests
redirect them with ``QSettings.setPath`` so they never touch the user's.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtCore import QSettings, Qt

from oddscope.app.model import encoder_text
from oddscope.core.models import registry

ENCODERS = registry.ENCODERS.standard()
METRICS = tuple(registry.METRICS)


def _detectors() -> tuple[list[str], list[str]]:
    """(every detector, the default set)."""
    return list(registry.DETECTORS), list(registry.DEFAULT_DETECTORS)


# "detectors": None means the standard set.
DEFAULT_ANALYSIS = {"encoder": registry.DEFAULT_ENCODER, "weights": "", "detectors": None, "k": 5,
                    "metric": registry.METRICS.default}


def app_settings() -> QSettings:
    return QSettings("Oddscope", "Oddscope")


def analysis_settings() -> dict:
    """The analysis settings the user chose last (defaults for anything unset)."""
    s = app_settings()
    out = {}
    for key, default in DEFAULT_ANALYSIS.items():
        value = s.value(f"analysis/{key}", default)
        if key == "detectors":
            value = [v for v in (value if isinstance(value, list) else str(value or "").split(",")) if v] or None
        elif key == "k":
            value = int(value)
        out[key] = value
    return out


def save_analysis_settings(values: dict) -> None:
    s = app_settings()
    for key, value in values.items():
        s.setValue(f"analysis/{key}", ",".join(value or []) if key == "detectors" else value)


class SettingsDialog(QtWidgets.QDialog):
    """Encoder, detectors, k and the neighbour metric; accepting re-runs the analysis in the background."""

    def __init__(self, values: dict, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Analysis settings")
        self.encoder = QtWidgets.QComboBox(editable=True)
        self.encoder.addItems(ENCODERS)
        self.encoder.setToolTip(f"Image encoder: {', '.join(e.label for e in registry.ENCODERS.values())}. "
                                "Changing it computes new features for every image")
        self.weights = QtWidgets.QLineEdit()
        self.weights.setPlaceholderText("bundled weights")
        self.weights.setToolTip("A local weights file for the encoder (empty: the weights shipped with it)")
        browse = QtWidgets.QPushButton("Browse…")
        browse.setToolTip("Choose a weights file")
        browse.clicked.connect(self._browse_weights)
        weights_row = QtWidgets.QHBoxLayout()
        weights_row.addWidget(self.weights, 1)
        weights_row.addWidget(browse)
        self.detectors = QtWidgets.QListWidget()
        self.detectors.setToolTip("Anomaly detectors to score every image with")
        for name in _detectors()[0]:
            item = QtWidgets.QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Unchecked)
            self.detectors.addItem(item)
        self.detectors.setMaximumHeight(170)
        self.k = QtWidgets.QSpinBox(minimum=1, maximum=200)
        self.k.setToolTip("Neighbours used by the kNN detectors")
        self.metric = QtWidgets.QComboBox()
        self.metric.addItems(METRICS)
        self.metric.setToolTip("Distance used to find similar images (neighbours panel)")
        form = QtWidgets.QFormLayout()
        form.addRow("Encoder", self.encoder)
        form.addRow("Weights", weights_row)
        form.addRow("Detectors", self.detectors)
        form.addRow("k (kNN)", self.k)
        form.addRow("Neighbour metric", self.metric)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        note = QtWidgets.QLabel("Changes run in the background; the window stays usable.")
        note.setObjectName("hint")
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(buttons)
        self.set_values(values)

    def _browse_weights(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Encoder weights", "",
                                                        "Weights (*.pt *.pth *.bin *.safetensors);;All files (*)")
        if path:
            self.weights.setText(path)

    def set_values(self, values: dict) -> None:
        self.encoder.setCurrentText(values["encoder"])
        self.weights.setText(values.get("weights") or "")
        chosen = set(values["detectors"] or _detectors()[1])
        for i in range(self.detectors.count()):
            item = self.detectors.item(i)
            item.setCheckState(Qt.Checked if item.text() in chosen else Qt.Unchecked)
        self.k.setValue(int(values["k"]))
        self.metric.setCurrentText(values["metric"])

    def values(self) -> dict:
        detectors = [self.detectors.item(i).text() for i in range(self.detectors.count())
                     if self.detectors.item(i).checkState() == Qt.Checked]
        standard = detectors == _detectors()[1]
        return {"encoder": self.encoder.currentText().strip(), "weights": self.weights.text().strip(),
                "detectors": None if standard else detectors, "k": self.k.value(),
                "metric": self.metric.currentText()}

    def _accept(self) -> None:
        values = self.values()
        if not any(self.detectors.item(i).checkState() == Qt.Checked for i in range(self.detectors.count())):
            QtWidgets.QMessageBox.warning(self, "Analysis settings", "Choose at least one detector.")
            return
        if not values["encoder"]:
            QtWidgets.QMessageBox.warning(self, "Analysis settings", "Name an encoder.")
            return
        self.accept()


class TagDialog(QtWidgets.QDialog):
    """A line edit completing from the tags already used (case-insensitive, anywhere in the tag)."""

    def __init__(self, tags, parent=None, title: str = "Add tag"):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.edit = QtWidgets.QLineEdit()
        self.edit.setPlaceholderText("tag, e.g. ring or artefact")
        self.edit.setToolTip("Type a new tag or pick an existing one; Enter adds it")
        completer = QtWidgets.QCompleter(list(tags), self)
        completer.setCaseSensitivity(Qt.CaseInsensitive)
        completer.setFilterMode(Qt.MatchContains)
        self.edit.setCompleter(completer)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel("Tag for this image:"))
        layout.addWidget(self.edit)
        layout.addWidget(buttons)
        self.setMinimumWidth(320)

    def tag(self) -> str:
        return self.edit.text().strip()


def ask_tag(parent, tags) -> str | None:
    dialog = TagDialog(tags, parent)
    return dialog.tag() or None if dialog.exec() == QtWidgets.QDialog.Accepted else None


# Keys the views handle themselves (they have no window-wide action to list)
VIEW_SHORTCUTS = [("R / L / P (on the map)", "Rectangle / lasso / pan drag mode"),
                  ("Shift-drag / Ctrl-drag (map)", "Add a rectangle / lasso to the selection"),
                  ("Esc (on the map)", "Clear the map selection"),
                  ("F (map or image)", "Fit the view"),
                  ("Wheel / drag (image)", "Zoom / pan; double-click fits"),
                  ("Arrow keys (grid)", "Move through the ranking")]


def shortcut_rows(actions) -> list[tuple[str, str]]:
    """(keys, what) for the shortcut sheet: every one of ``actions`` with a shortcut, then the views' own keys."""
    rows = [(a.shortcut().toString(QtGui.QKeySequence.NativeText), a.text().replace("…", ""))
            for a in actions if not a.shortcut().isEmpty()]
    return rows + VIEW_SHORTCUTS


class ShortcutSheet(QtWidgets.QDialog):
    """Every keyboard shortcut of the window, in one table (Help > Shortcuts, F1)."""

    def __init__(self, rows, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        table = QtWidgets.QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["Keys", "Action"])
        table.verticalHeader().hide()
        table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        for r, (keys, text) in enumerate(rows):
            table.setItem(r, 0, QtWidgets.QTableWidgetItem(keys))
            table.setItem(r, 1, QtWidgets.QTableWidgetItem(text))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        self.table = table
        close = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Close)
        close.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(close)
        self.resize(480, 520)


def show_error(parent, title: str, message: str, details: str = "") -> None:
    """A readable error: the message up front, the technical details behind "Show Details..."."""
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Critical, title, message, QtWidgets.QMessageBox.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.setTextInteractionFlags(Qt.TextSelectableByMouse)
    box.exec()


def show_report(parent, title: str, message: str, details: str = "") -> None:
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Information, title, message, QtWidgets.QMessageBox.Ok,
                                parent)
    if details:
        box.setDetailedText(details)
    box.exec()


def ask_yes_no(parent, title: str, message: str) -> bool:
    answer = QtWidgets.QMessageBox.question(parent, title, message,
                                            QtWidgets.QMessageBox.Yes | QtWidgets.QMessageBox.No)
    return answer == QtWidgets.QMessageBox.Yes



def show_about(parent, project) -> None:
    """Help > About: the version, and the open ``project`` (None: none) with its encoder and weights."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        app_version = version("oddscope")
    except PackageNotFoundError:
        app_version = "development"
    where = f"<p>Project: {project.root}<br>Encoder: {encoder_text(project)}</p>" if project else ""
    QtWidgets.QMessageBox.about(
        parent, "About Oddscope",
        f"<h3>Oddscope {app_version}</h3><p>Find, label and explore anomalies in large image "
        f"collections.</p>{where}<p>Qt {QtCore.qVersion()} · BSD-3-Clause</p>")
